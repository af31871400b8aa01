"""Notebook 05 — words as the baselines' tokens (paper 4.3: every baseline sees the first 512 tokens).

A baseline has no WordPiece vocabulary, so a token is a word: a lowercase run of letters/digits/underscore
(`WORD_PATTERN`, scikit-learn's word notion without its two-character minimum).
"""
from __future__ import annotations

import re
from itertools import islice

import numpy as np

WORD_PATTERN = re.compile(r"(?u)\b\w+\b")


def first_words(text: str, max_tokens: int) -> list[str]:
    """The first `max_tokens` lowercase words of `text` (the baseline's tokens, paper 4.3)."""
    return [m.group() for m in islice(WORD_PATTERN.finditer(text.lower()), max_tokens)]


def word_spans(text: str, max_tokens: int) -> list[tuple[str, int, int]]:
    """`(word, start, end)` of the first `max_tokens` words: the words of `first_words`, offsets into `text`."""
    lowered = text.lower()
    if len(lowered) == len(text):
        starts = None
    else:  # a few characters lowercase to two (e.g. U+0130): map lowered offsets back to `text`
        starts = np.cumsum([0] + [len(ch.lower()) for ch in text])
    out = []
    for match in WORD_PATTERN.finditer(lowered):
        if len(out) == max_tokens:
            break
        start, end = match.span()
        if starts is not None:
            start, end = int(np.searchsorted(starts, start, "right") - 1), int(np.searchsorted(starts, end, "left"))
        out.append((match.group(), start, end))
    return out
