"""The token-wise masker returns Drain3's LogMasker text exactly, so templates and event ids are unchanged."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from drain3.masking import LogMasker, MaskingInstruction

from fedlog.data.loaders import load_silo
from fedlog.parse.accuracy import read_structured
from fedlog.parse.drain import FORMAT_SETTINGS, EventParser, ParserSettings
from fedlog.parse.masking import TokenMasker, token_local

KEY = b"test-key"


def _drain3(rules) -> LogMasker:
    return LogMasker([MaskingInstruction(p, m) for p, m in rules], "<", ">")


def _loghub_contents(shared_data: Path, system: str) -> list[str]:
    contents, _ = read_structured(shared_data / "loghub-2k" / system / f"{system}_2k.log_structured.csv")
    return contents


def _hdfs_contents(shared_data: Path, count: int = 40_000) -> list[str]:
    return [r.content for r in load_silo("hdfs", shared_data / "hdfs" / "HDFS_2pct.log", None, False).records][:count]


@pytest.mark.parametrize(
    ("pattern", "local"),
    [
        (r"(?<![\w.-])[-+]?\d+(?:\.\d+)?(?![\w.])", True),
        (r"\b0[xX][0-9a-fA-F]+\b", True),
        (r"blk_-?\d+(?:\s+blk_-?\d+)*", False),  # a list of blocks spans spaces
        (r"0x.*?\s", False),
        (r"<\d+ sec\b", False),
        (r"(?<=bytes )\d+", False),  # looks back across a space
        (r"^\d+", False),  # a token's start is not the line's
        (r"\d*", False),  # matches the empty string
        (r"[^a-z]+", False),  # a negated set includes the space
    ],
)
def test_token_local_rules(pattern: str, local: bool) -> None:
    assert token_local(re.compile(pattern), "<X>") is local


def test_tricky_rules_mask_as_drain3_does() -> None:
    """Lookarounds at token edges, rule order and whole-line rules between token runs."""
    rules = (
        (r"(?<![\w.])\d+(?![\w.])", "NUM"),
        (r"blk_\d+(?:\s+blk_\d+)*", "BLK"),
        (r"\bNUM\b", "WORD"),
        (r"(?<=<)N", "*"),
        (r"(?<=at )\d", "AT"),
    )
    lines = ["a 1 b2 3.4 .5 6. 7", "blk_1 blk_2  blk_3 x", "at 9 NUM <NUM> at  8", "", " ", "  12  ", "x\t3 4\t"]
    masker = TokenMasker(rules)
    assert [masker.mask(line) for line in lines] == [_drain3(rules).mask(line) for line in lines]


@pytest.mark.parametrize("fmt", sorted(FORMAT_SETTINGS))
def test_every_format_masks_real_lines_as_drain3(shared_data, fmt: str) -> None:
    systems = {p.name.lower(): p.name for p in (shared_data / "loghub-2k").iterdir()}
    if fmt in systems:
        contents = _loghub_contents(shared_data, systems[fmt])
    elif fmt in ("hdfs", "bgl", "thunderbird", "hadoop"):
        path = {"bgl": "bgl/BGL_20k_resampled.log", "thunderbird": "thunderbird/Thunderbird_19k.log"}
        contents = [r.content for r in load_silo(fmt, shared_data / path.get(fmt, fmt), None, False).records]
    else:
        pytest.skip(f"no real {fmt} lines")
    rules = FORMAT_SETTINGS[fmt].masking
    assert [TokenMasker(rules).mask(c) for c in contents] == [_drain3(rules).mask(c) for c in contents]


class _Drain3Masked(EventParser):
    """The parser as it was, with Drain3's own masker: the reference for templates and ids."""

    def __init__(self, settings: ParserSettings, key: bytes) -> None:
        super().__init__(settings, key)
        self._masker = _drain3(settings.masking)


@pytest.mark.parametrize(("fmt", "system"), [("hdfs", None), ("openssh", "OpenSSH"), ("zookeeper", "Zookeeper")])
def test_templates_and_ids_equal_drain3_masking(shared_data, fmt: str, system: str | None) -> None:
    """Mined on the first half, matched on all: the same templates and the same id for every line."""
    contents = _hdfs_contents(shared_data) if system is None else _loghub_contents(shared_data, system)
    ours, reference = EventParser(FORMAT_SETTINGS[fmt], KEY), _Drain3Masked(FORMAT_SETTINGS[fmt], KEY)
    for parser in (ours, reference):
        parser.mine(contents[: len(contents) // 2])
    assert ours.templates == reference.templates
    assert ours.match_all(contents) == reference.match_all(contents)
