"""Figures for every notebook: a matplotlib figure on an explicit Agg canvas (no pyplot state, nothing shown
by accident) and one atomic PNG writer."""
from __future__ import annotations

from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bertxml_lib.core.atomic import atomic_path
from bertxml_lib.core.rows import parse_row

DPI = 110

#: One colour per Table 2 row family, used by every figure that draws rows (Figure 2, frequency bins, the
#: site's forest plot), so a model keeps its colour across figures. Okabe-Ito hues first (colour-blind safe);
#: the floor and ceiling rows are grey and black.
FAMILY_COLOURS = {
    "logreg": "#E69F00", "mha": "#D55E00", "cnn": "#CC79A7", "offshelf": "#56B4E9", "clinical": "#0072B2",
    "cls": "#009E73", "xml": "#6A3D9A", "lan": "#B15928", "hier": "#8E8E00", "prior": "#8C8C8C", "oracle": "#000000",
}
OTHER_COLOUR = "#444444"


def family_colour(family: str) -> str:
    return FAMILY_COLOURS.get(family, OTHER_COLOUR)


def row_colour(row: str) -> str:
    """The colour of a Table 2 row (`ehr_tiny_xml_1024`, `logreg_512`, `prior`, ...): its family's."""
    parsed = parse_row(str(row))
    return family_colour(parsed.family if parsed else "")


def row_styles(rows) -> dict[str, dict]:
    """Line styles for rows drawn together: the family's colour; a second, third ... row of one family gets a
    dashed, dotted ... line so rows of one family stay apart."""
    dashes, seen, out = ("-", "--", ":", "-."), {}, {}
    for row in rows:
        colour = row_colour(row)
        out[row] = {"color": colour, "linestyle": dashes[seen.get(colour, 0) % len(dashes)]}
        seen[colour] = seen.get(colour, 0) + 1
    return out


def new_figure(width_in: float, height_in: float, dpi: int = DPI) -> Figure:
    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, png_path: str | Path) -> Path:
    """Write `fig` as a PNG, write-then-rename; returns the path. The canvas grows to hold every title, label
    and legend (`bbox_inches="tight"`), so no text is cut at an edge."""
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight", pad_inches=0.08)
    return Path(png_path)
