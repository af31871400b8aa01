"""Notebooks 04-05 (and the floor/ceiling rows): record one Table 2 row — its dev/test probabilities in
`predictions/<row>.npz` (the one scoring interface) and its metrics record `metrics/<row>.json`."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from bertxml_lib.core.atomic import write_json
from bertxml_lib.core.paths import RunPaths
from bertxml_lib.core.rows import Row
from bertxml_lib.data.cohort import Cohort
from bertxml_lib.evaluation import metrics
from bertxml_lib.evaluation.predictions import save_predictions


def record_row(out_dir: str | Path, cohort: Cohort, row: Row, dev_probs: np.ndarray, test_probs: np.ndarray,
               **fields) -> dict:
    """Write the row's predictions and metrics record; return the record.

    The record holds the row's identity (`model, family, encoder, max_len, status`), test micro and macro AUC,
    dev micro AUC (what model selection saw), and `fields` (training time, chosen epoch, sizes, ...)."""
    paths = RunPaths(out_dir)
    dev, test = cohort.split("dev"), cohort.split("test")
    save_predictions(paths.predictions_file(row.name), cohort.codes, dev["note_id"], dev_probs, test["note_id"],
                     test_probs)
    y_test = cohort.label_matrix(test)
    macro, skipped = metrics.macro_auc(y_test, test_probs)
    record = {"model": row.name, "family": row.family, "encoder": row.encoder, "max_len": row.max_len,
              "status": "ok", "micro_auc": metrics.micro_auc(y_test, test_probs), "macro_auc": macro,
              "n_codes_skipped": skipped, "dev_micro_auc": metrics.micro_auc(cohort.label_matrix(dev), dev_probs)}
    if row.head:
        record["head"] = row.head
    record.update(fields)
    write_json(paths.metrics_file(row.name), record)
    return record
