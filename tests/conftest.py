"""Shared fixtures: tiny cohorts built by hand, a tiny tokenizer, paths to the repo."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture
def hand_notes() -> pd.DataFrame:
    """Two patients, five notes, dates chosen so the imputation rule can be checked by hand."""
    return pd.DataFrame({
        "patient_id": ["p1", "p1", "p1", "p1", "p2"],
        "note_id": ["n1", "n2", "n3", "n4", "n5"],
        "note_date": pd.to_datetime(["2020-01-01", "2020-02-01", "2020-03-01", "2020-04-01", "2020-01-15"]),
        "note_type": ["progress note"] * 5,
        "text": ["x" * 60] * 5,
    })
