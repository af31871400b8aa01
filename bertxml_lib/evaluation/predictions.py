"""The one scoring interface: every model (BERT rows and baselines) writes dev/test probabilities here.

`predictions/<row>.npz` holds `codes (L,)`, `dev_note_ids (n_dev,)`, `dev_probs (n_dev, L)`,
`test_note_ids (n_test,)`, `test_probs (n_test, L)`; notebook 06 computes every metric from these files.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bertxml_lib.core.atomic import atomic_path


@dataclass
class Predictions:
    row: str
    codes: np.ndarray
    dev_note_ids: np.ndarray
    dev_probs: np.ndarray
    test_note_ids: np.ndarray
    test_probs: np.ndarray


def save_predictions(path: str | Path, codes, dev_note_ids, dev_probs, test_note_ids, test_probs) -> None:
    codes = np.asarray(codes, dtype=str)
    dev_probs = np.asarray(dev_probs, dtype=np.float32)
    test_probs = np.asarray(test_probs, dtype=np.float32)
    if dev_probs.shape != (len(dev_note_ids), len(codes)) or test_probs.shape != (len(test_note_ids), len(codes)):
        raise ValueError(
            f"{path}: probability shapes {dev_probs.shape}/{test_probs.shape} do not match "
            f"{len(dev_note_ids)}/{len(test_note_ids)} notes x {len(codes)} codes"
        )
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                codes=codes,
                dev_note_ids=np.asarray(dev_note_ids, dtype=str),
                dev_probs=dev_probs,
                test_note_ids=np.asarray(test_note_ids, dtype=str),
                test_probs=test_probs,
            )


def load_predictions(path: str | Path) -> Predictions:
    path = Path(path)
    with np.load(path, allow_pickle=False) as z:
        return Predictions(
            row=path.stem,
            codes=z["codes"],
            dev_note_ids=z["dev_note_ids"],
            dev_probs=z["dev_probs"],
            test_note_ids=z["test_note_ids"],
            test_probs=z["test_probs"],
        )
