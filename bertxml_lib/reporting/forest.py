"""Reporting — Table 2 (paper 4.4) as a forest plot: micro and macro AUC of every row with its 95% bootstrap
interval, one colour per row family (`core.figures.row_colour`), the floor and ceiling rows marked.
Written as PNG and SVG."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bertxml_lib.core.atomic import atomic_path
from bertxml_lib.core.figures import new_figure, row_colour, save_figure
from bertxml_lib.reporting.findings import (
    REFERENCE_ROLES,
    is_missing,
    not_run_reason,
    row_label,
)

METRICS = (("micro_auc", "micro AUC"), ("macro_auc", "macro AUC"))


def forest_figure(table2: pd.DataFrame, png_path: str | Path, svg_path: str | Path | None = None,
                  title: str = "Table 2: test AUC with 95% bootstrap intervals"):
    """Two panels (micro, macro AUC), one line per Table 2 row in table order; rows that were not run are
    listed with their reason. Returns the figure."""
    if not len(table2):
        raise ValueError("forest_figure needs at least one Table 2 row")
    records = table2.to_dict("records")
    n = len(records)
    fig = new_figure(12, 0.34 * n + 1.5, dpi=110)  # 1,320 px wide: fits a 1,400-px window
    axes = fig.subplots(1, 2, sharey=True)
    y = np.arange(n)[::-1]
    ran = [r for r in records if not not_run_reason(r) and not is_missing(r.get("micro_auc"))]
    lows = [r.get(f"{m}_ci_low", r[m]) for r in ran for m, _ in METRICS]
    values = [v for v in [*lows, *(r[m] for r in ran for m, _ in METRICS)] if not is_missing(v)]
    left = max(0.0, np.floor((min(values, default=0.5) - 0.02) * 20) / 20)
    for ax, (metric, name) in zip(axes, METRICS):
        for yi, r in zip(y, records):
            reason = not_run_reason(r)
            if reason or is_missing(r.get(metric)):
                ax.text(left + 0.005, yi, (reason or "no value").split(" (")[0][:60], va="center", fontsize=7.5,
                        color="#777777")
                continue
            colour, role = row_colour(r["model"]), REFERENCE_ROLES.get(str(r["model"]))
            lo, hi = r.get(f"{metric}_ci_low"), r.get(f"{metric}_ci_high")
            if not (is_missing(lo) or is_missing(hi)):
                ax.hlines(yi, lo, hi, color=colour, linewidth=2)
            ax.plot(r[metric], yi, marker="s" if role else "o", markersize=6, color=colour,
                    markerfacecolor="white" if role else colour, markeredgewidth=1.5)
            if role:
                ax.axvline(r[metric], color=colour, linestyle=":", linewidth=1)
            ax.annotate(f"{r[metric]:.3f}", (r[metric], yi), xytext=(0, 5), textcoords="offset points",
                        ha="center", fontsize=7, color=colour)
        ax.set_xlim(left, 1.015)
        ax.set_xlabel(f"test {name} (dot) and 95% interval (bar)")
        ax.set_title(name, fontsize=11)
        ax.grid(axis="x", color="#e5e5e5")
        ax.set_ylim(-0.7, n - 0.3)
    axes[0].set_yticks(y, [row_label(r["model"]) for r in records], fontsize=8.5)
    for tick, r in zip(axes[0].get_yticklabels(), records):
        tick.set_color(row_colour(r["model"]) if not not_run_reason(r) else "#777777")
    fig.suptitle(title + ("; hollow squares and dotted lines: floor/ceiling reference rows"
                          if any(str(r["model"]) in REFERENCE_ROLES for r in records) else ""), fontsize=11)
    fig.tight_layout()
    save_figure(fig, png_path)
    if svg_path is not None:
        with atomic_path(svg_path) as tmp:
            fig.savefig(tmp, format="svg")
    return fig
