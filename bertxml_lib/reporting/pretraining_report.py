"""Notebook 03 — the pretraining loss curve and Figure 1 (masked-LM predictions on a dev note; paper 4.2.1)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from bertxml_lib.core.atomic import write_csv
from bertxml_lib.core.figures import new_figure, save_figure


def save_loss_curve(curve: pd.DataFrame, csv_path: str | Path, png_path: str | Path, title: str) -> None:
    """Loss curve table and figure (train per step, dev per epoch)."""
    # tokens/s is a wall-clock rate that differs between runs: the table keeps what the seed fixes.
    write_csv(csv_path, curve.drop(columns=["tokens_per_s"], errors="ignore"))
    fig = new_figure(6, 3.5, dpi=120)
    ax = fig.add_subplot()
    train, dev = curve[curve["split"] == "train"], curve[curve["split"] == "dev"]
    if len(train):
        smooth = train["loss"].rolling(max(1, len(train) // 30), min_periods=1).mean()
        ax.plot(train["step"], smooth, label="train (smoothed)")
    ax.plot(dev["step"], dev["loss"], "o-", label="dev")
    ax.set(xlabel="optimizer step", ylabel="MLM loss", title=title)
    ax.legend()
    fig.tight_layout()
    save_figure(fig, png_path)


def mlm_example_figure(example: pd.DataFrame, png_path: str | Path, title: str, show_text: bool = True,
                       chars_per_line: int = 130, fontsize: float = 8.5) -> None:
    """Render Figure 1: the note's tokens in reading order, model predictions for [MASK] highlighted
    (green: the original token, orange: another token). Without `show_text` only positions are drawn."""
    words: list[tuple[str, str | None]] = []  # (text, highlight colour)
    for row in example.itertuples():
        shown = row.predicted if row.masked else row.token
        if not show_text:
            shown = "[MASK]" if row.masked else "▪"
        colour = ("#7fd37f" if row.correct else "#f5a55a") if row.masked else None
        if shown.startswith("##") and words and colour is None and words[-1][1] is None:
            words[-1] = (words[-1][0] + shown[2:], None)
        else:
            words.append((shown, colour))
    lines, line, width = [], [], 0
    for w, c in words:
        if width + len(w) + 1 > chars_per_line and line:
            lines.append(line)
            line, width = [], 0
        line.append((w, c))
        width += len(w) + 1
    lines.append(line)
    width_in = 11.0
    char_w = 0.6 * fontsize / (72 * width_in * 0.98)  # a monospace glyph is ~0.6 em wide, in axes units
    fig = new_figure(width_in, 0.28 * len(lines) + 0.9, dpi=120)
    ax = fig.add_axes([0.01, 0.01, 0.98, 0.98 - 0.5 / fig.get_figheight()])
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(len(lines) + 0.5, -0.2)
    for y, ln in enumerate(lines):
        x = 0.0
        for w, c in ln:
            bbox = {"facecolor": c, "edgecolor": "none", "pad": 1.5} if c else None
            ax.text(x, y + 0.5, w, family="monospace", fontsize=fontsize, va="center", bbox=bbox)
            x += (len(w) + 1) * char_w
    n_masked = int(example["masked"].sum())
    acc = example.loc[example["masked"], "correct"].mean() if n_masked else float("nan")
    fig.suptitle(f"{title} — {n_masked} masked tokens, {acc:.0%} predicted exactly "
                 "(green: original token, orange: other token)", fontsize=9)
    save_figure(fig, png_path)
