"""Notebook 08 — the scaling figure: test micro and macro AUC against training patients, one fitted curve per
model, 95% patient-bootstrap intervals on every point, and the BERT-XML / LogReg crossing when there is one."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bertxml_lib.core.figures import new_figure, save_figure
from bertxml_lib.evaluation.scaling import CurveFit

METRICS = (("micro_auc", "micro AUC"), ("macro_auc", "macro AUC"))
STYLE = {"prior": ("#9a9a9a", "s"), "oracle": ("#2b2b2b", "*"), "logreg": ("#1f77b4", "o"),
         "xml": ("#d62728", "D"), "cls": ("#ff7f0e", "^")}
LABELS = {"prior": "label prior", "oracle": "oracle", "logreg": "LogReg", "xml": "BERT-XML", "cls": "BERT [CLS]"}


def scaling_figure(table: pd.DataFrame, fits: dict[tuple[str, str], CurveFit], crossings: dict[str, float | None],
                   png_path: str | Path, title: str) -> Path:
    """Two panels (micro, macro AUC) over training patients on a log axis.

    `table` has the columns of `tables/scaling.csv`; `fits[(model, metric)]` is that model's fitted curve;
    `crossings[metric]` the BERT-XML / LogReg crossing in training patients (None or NaN: none in range)."""
    fig = new_figure(11, 4.2, dpi=120)
    low, high = float(table["n_train_patients"].min()), float(table["n_train_patients"].max())
    grid = np.geomspace(low, high, 200)
    for k, (metric, label) in enumerate(METRICS):
        ax = fig.add_subplot(1, 2, k + 1)
        for model, rows in table.groupby("model", sort=False):
            colour, marker = STYLE.get(model, ("#555555", "o"))
            rows = rows.sort_values("n_train_patients")
            y = rows[metric].to_numpy(dtype=float)
            err = np.vstack([y - rows[f"{metric}_ci_low"].to_numpy(dtype=float),
                             rows[f"{metric}_ci_high"].to_numpy(dtype=float) - y])
            ax.errorbar(rows["n_train_patients"], y, yerr=np.clip(np.nan_to_num(err), 0, None), fmt=marker,
                        color=colour, capsize=3, ms=5, label=LABELS.get(model, model))
            fit = fits.get((model, metric))
            if fit is not None:
                ax.plot(grid, fit(grid), "-" if fit.form == "power" else "--", color=colour, lw=1.2, alpha=0.8)
        cross = crossings.get(metric)
        if cross is not None and np.isfinite(cross):
            ax.axvline(cross, color="#555555", ls=":", lw=1)
            ax.annotate(f"XML = LogReg\n~{cross:.0f} patients", (cross, ax.get_ylim()[0]), xytext=(4, 8),
                        textcoords="offset points", fontsize=8, color="#333333")
        ax.set_xscale("log")
        sizes = sorted(int(n) for n in table["n_train_patients"].unique())
        ax.set_xticks(sizes, [str(n) for n in sizes], minor=False)  # the measured sizes, not powers of ten
        ax.set_xticks([], minor=True)
        ax.set(xlabel="training patients (log scale)", ylabel=f"test {label}", title=f"test {label}")
        ax.grid(alpha=0.3, which="both")
        if k == 0:
            ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, png_path)
