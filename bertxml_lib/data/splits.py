"""Notebook 01 — the patient-level 70/10/20 split of paper 4.1: every note of a patient in one split."""
from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np
import pandas as pd

SPLITS = ("train", "dev", "test")


def split_of_patient(patient_id: str, seed: int, fractions: Sequence[float] = (0.7, 0.1, 0.2)) -> str:
    """Deterministic patient-level split from a hash of (seed, patient id): every note of a patient
    lands in the same split, and adding patients never moves existing ones."""
    digest = hashlib.sha256(f"{seed}:{patient_id}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    edges = np.cumsum(fractions)
    for name, edge in zip(SPLITS, edges):
        if u < edge:
            return name
    return SPLITS[-1]


def assign_splits(notes: pd.DataFrame, seed: int, fractions: Sequence[float]) -> pd.Series:
    """The split of every note, computed once per patient."""
    if abs(sum(fractions) - 1.0) > 1e-6 or len(fractions) != 3:
        raise ValueError(f"cohort.split_fractions must be three fractions summing to 1, got {list(fractions)}")
    patients = notes["patient_id"].drop_duplicates()
    mapping = {p: split_of_patient(p, seed, fractions) for p in patients}
    return notes["patient_id"].map(mapping)
