"""Figures for every notebook: a matplotlib figure on an explicit Agg canvas (no pyplot state, nothing shown
by accident) and one atomic PNG writer."""
from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bertxml_lib.core.atomic import atomic_path

DPI = 110


def new_figure(width_in: float, height_in: float, dpi: int = DPI) -> Figure:
    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, png_path: str | Path) -> Path:
    """Write `fig` as a PNG, write-then-rename; returns the path."""
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png")
    return Path(png_path)
