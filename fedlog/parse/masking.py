"""Drain3's masking, computed per space-separated token where that provably gives the same text.

Drain3's ``LogMasker`` runs one ``re.sub`` per masking rule over the whole line;
on HDFS that is half of raw Drain3's time per line. Most rules (numbers, IPs,
hex) can never match a space, nor look across one: for such a *token-local*
rule, masking the line equals masking each space-separated token on its own,
and tokens repeat far more than lines do (a line is unique by its block id and
port; its tokens mostly are not). So a run of consecutive token-local rules is
applied once per distinct token (cached) and the line is joined back; a rule
that may match a space (HDFS's block list, Windows' ``0x.*?\\s``) still runs
over the whole line, in its place in the order. The output is the same string
``LogMasker.mask`` returns (the same regexes, replacement and order), so
templates and event ids do not change; ``tests/test_parse.py`` checks this on
real lines of every format.

Why the token split is exact (separator: one space, ``str.split(" ")``): a
rule is token-local when (1) it cannot match the empty string, (2) no
character it may consume can be a space, (3) every lookaround inside it
obeys (2) too, and (4) its only anchors are ``\\b``/``\\B``. Then every match
lies inside one token; an assertion that would look past a token's edge meets
a space in the line and the string's end in the token, and fails (or, negated,
passes) at both, since it cannot match a space; ``\\b`` treats both as a
non-word character. A replacement containing a space is not split (rule kept
whole-line). A pattern this module cannot analyse is treated as whole-line.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence

try:  # the stdlib's own regex parser (private, so any failure means "not provably local")
    from re import _constants as sre_c
    from re import _parser as sre_parse
except ImportError:  # pragma: no cover - Python < 3.11
    import sre_constants as sre_c  # type: ignore[no-redef]
    import sre_parse  # type: ignore[no-redef]

SPACE = ord(" ")
TOKEN_CACHE_LIMIT = 500_000  # distinct tokens remembered; cleared when full (memory stays bounded)
_SPACE_CATEGORIES = {sre_c.CATEGORY_SPACE, sre_c.CATEGORY_NOT_DIGIT, sre_c.CATEGORY_NOT_WORD}
_NO_SPACE_CATEGORIES = {sre_c.CATEGORY_DIGIT, sre_c.CATEGORY_WORD, sre_c.CATEGORY_NOT_SPACE}
_REPEATS = {sre_c.MAX_REPEAT, sre_c.MIN_REPEAT, getattr(sre_c, "POSSESSIVE_REPEAT", sre_c.MAX_REPEAT)}


def _set_may_match_space(items: list) -> bool:
    negate = False
    hit = False
    for op, av in items:
        if op is sre_c.NEGATE:
            negate = True
        elif op is sre_c.LITERAL:
            hit |= av == SPACE
        elif op is sre_c.RANGE:
            hit |= av[0] <= SPACE <= av[1]
        elif op is sre_c.CATEGORY and av in _NO_SPACE_CATEGORIES:
            pass
        elif op is sre_c.CATEGORY and av in _SPACE_CATEGORIES:
            hit = True
        else:
            return True  # unknown set item: assume the worst
    return hit != negate


def _no_space(items) -> bool:
    """True when nothing in this parsed (sub)pattern can consume a space or anchor at a line edge."""
    for op, av in items:
        if op is sre_c.LITERAL:
            ok = av != SPACE
        elif op is sre_c.NOT_LITERAL:
            ok = av == SPACE
        elif op is sre_c.IN:
            ok = not _set_may_match_space(av)
        elif op is sre_c.AT:
            ok = av in (sre_c.AT_BOUNDARY, sre_c.AT_NON_BOUNDARY)
        elif op is sre_c.SUBPATTERN:
            ok = _no_space(av[-1])
        elif op in _REPEATS:
            ok = _no_space(av[2])
        elif op is sre_c.BRANCH:
            ok = all(_no_space(branch) for branch in av[1])
        elif op in (sre_c.ASSERT, sre_c.ASSERT_NOT):
            ok = _no_space(av[1])
        elif op is sre_c.GROUPREF:
            ok = True  # the group itself is checked where it is defined
        elif op is sre_c.GROUPREF_EXISTS:
            ok = _no_space(av[1]) and (av[2] is None or _no_space(av[2]))
        elif op is getattr(sre_c, "ATOMIC_GROUP", None):
            ok = _no_space(av)
        else:
            ok = False  # ANY (.), CATEGORY outside a set, anything new: may match a space
        if not ok:
            return False
    return True


def token_local(regex: re.Pattern[str], replacement: str) -> bool:
    """Whether ``regex.sub(replacement, line)`` equals masking each space-separated token alone."""
    if " " in replacement or regex.flags & re.VERBOSE:  # verbose: keep the analysis simple
        return False
    try:
        parsed = sre_parse.parse(regex.pattern, regex.flags)
        return parsed.getwidth()[0] >= 1 and _no_space(parsed)
    except Exception:  # noqa: BLE001 - a private API may change: fall back to the whole-line sub
        return False


class TokenMasker:
    """``drain3.masking.LogMasker(rules, "<", ">").mask`` with the same output, faster.

    ``rules`` are (pattern, mask name) pairs as in ``ParserSettings.masking``.
    """

    def __init__(self, rules: Sequence[tuple[str, str]], prefix: str = "<", suffix: str = ">") -> None:
        self._steps: list[Callable[[str], str]] = []
        run: list[tuple[re.Pattern[str], str]] = []
        for pattern, name in rules:
            regex, replacement = re.compile(pattern), prefix + name + suffix
            if token_local(regex, replacement):
                run.append((regex, replacement))
                continue
            if run:
                self._steps.append(self._token_step(run))
                run = []
            self._steps.append(functools.partial(regex.sub, replacement))  # regex.sub(replacement, text)
        if run:
            self._steps.append(self._token_step(run))

    @staticmethod
    def _token_step(rules: list[tuple[re.Pattern[str], str]]) -> Callable[[str], str]:
        """One pass over the tokens for a run of consecutive token-local rules, each token masked once."""
        cache: dict[str, str] = {}

        def mask_token(token: str) -> str:
            masked = token
            for regex, replacement in rules:
                masked = regex.sub(replacement, masked)
            if len(cache) >= TOKEN_CACHE_LIMIT:
                cache.clear()
            cache[token] = masked
            return masked

        get = cache.get

        def step(text: str) -> str:
            tokens = text.split(" ")
            try:  # every token seen before: one pass in C
                return " ".join(map(get, tokens))
            except TypeError:  # a miss (None) among them
                return " ".join([masked if (masked := get(t)) is not None else mask_token(t) for t in tokens])

        return step

    def mask(self, content: str) -> str:
        for step in self._steps:
            content = step(content)
        return content
