"""A window as text: its event ids joined by spaces, what the models read and SHAP explains."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import numpy as np

from fedlog.data.records import NORMAL
from fedlog.windows import Window

UNKNOWN_WORD = "unknown"  # an event no template matched
ID_RE = re.compile(r"\b[0-9a-f]{8}\b")


def window_text(window: Window) -> str:
    return " ".join(e if e is not None else UNKNOWN_WORD for e in window.events)


def events_of_text(text: str) -> list[str | None]:
    """Inverse of ``window_text``. Any other word (SHAP's mask token) is dropped, so a masked
    event is an absent event: the same question the occlusion ``line_scores`` asks."""
    out: list[str | None] = []
    for word in text.split():
        if ID_RE.fullmatch(word):
            out.append(word)
        elif word == UNKNOWN_WORD:
            out.append(None)
    return out


def text_scorer(score: Callable[[Sequence[Window]], np.ndarray]) -> Callable[[Sequence[str]], np.ndarray]:
    """A detector's window scorer as a function of window texts (what SHAP's text masker calls)."""

    def score_texts(texts: Sequence[str]) -> np.ndarray:
        return score([Window("text", 0.0, 0.0, [], [], NORMAL, events_of_text(str(t))) for t in texts])

    return score_texts
