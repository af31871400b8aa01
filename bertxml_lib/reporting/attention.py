"""Notebook 07 — Figure 3 (BERT-XML label attention over a note) and Figure 4 (last-layer heads) (paper 4.5).

Figure 3 shows eq. 2's attention a_ij of one code j over the tokens of a test note: WordPieces are
merged back into words (a word's weight is the sum over its pieces) and coloured by weight relative
to the largest, darker = higher. `show_text=False` draws only positions and weights (privacy mode for
real notes): no word reaches the PNG or the HTML.

Figure 4 shows the last encoder layer's self-attention of every head on one long test note; the
colour scale is logarithmic and shared by all heads, brighter = higher.
"""
from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from bertxml_lib.core import runtime
from bertxml_lib.core.atomic import read_json, write_text
from bertxml_lib.core.figures import new_figure, save_figure
from bertxml_lib.core.paths import RunPaths
from bertxml_lib.data.cohort import load_cohort
from bertxml_lib.evaluation.analysis import align_probs, row_meta
from bertxml_lib.evaluation.predictions import load_predictions
from bertxml_lib.models.modeling import BertForIcdCoding
from bertxml_lib.training.finetune import predict_with_attention

SPECIAL_TOKENS = frozenset({"[CLS]", "[SEP]", "[PAD]"})
# Figure 3 prefers notes of at most this many tokens, so the whole note fits a readable figure.
FIGURE3_MAX_TOKENS = 400
_DPI = 120


def merge_wordpieces(tokens: Sequence[str], weights: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Words and their attention `(n_words,)`: `##` pieces join the previous word and add their weight;
    [CLS]/[SEP]/[PAD] are left out (they are not note text)."""
    weights = np.asarray(weights, dtype=float)
    if weights.ndim != 1 or len(tokens) != len(weights):
        raise ValueError(f"need one weight per token: {len(tokens)} tokens, weights of shape {weights.shape}")
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError("attention weights must be finite and non-negative")
    words: list[str] = []
    mass: list[float] = []
    for token, w in zip(tokens, weights):
        if token in SPECIAL_TOKENS:
            continue
        if token.startswith("##") and words:
            words[-1] += token[2:]
            mass[-1] += w
        else:
            words.append(token)
            mass.append(w)
    return words, np.asarray(mass)


def xml_attention_figure(tokens: Sequence[str], weights: np.ndarray, code: str, description: str,
                         png_path: str | Path, html_path: str | Path, show_text: bool = True):
    """Figure 3 as a PNG (words in coloured boxes, wrapped) and a standalone HTML page; returns the Figure."""
    from matplotlib import colormaps
    from matplotlib.font_manager import FontProperties

    words, mass = merge_wordpieces(tokens, weights)
    if not words:
        raise ValueError("no note tokens to draw (only special tokens were given)")
    intensity = mass / mass.max() if mass.max() > 0 else np.zeros_like(mass)
    cmap = colormaps["Reds"]
    title = f"Figure 3 (paper 4.5): BERT-XML attention for {code} — {description}"
    if show_text:
        width_px, margin, line_px, size = 10 * _DPI, 12, 24, 10
        fig = new_figure(10, 2, dpi=_DPI)
        renderer, font = fig.canvas.get_renderer(), FontProperties(size=size)
        space = renderer.get_text_width_height_descent("x x", font, ismath=False)[0] - \
            renderer.get_text_width_height_descent("xx", font, ismath=False)[0]
        positions, x, line = [], margin, 0
        for word in words:
            w = renderer.get_text_width_height_descent(word, font, ismath=False)[0] + 4
            if x + w > width_px - margin and x > margin:
                x, line = margin, line + 1
            positions.append((x, line))
            x += w + space
        height_px = 60 + (line + 1) * line_px + 30
        fig.set_size_inches(10, height_px / _DPI)
        for word, level, (x, line) in zip(words, intensity, positions):
            # parse_math=False: a note's "$" is text, never the start of mathtext.
            fig.text(x / width_px, 1 - (60 + line * line_px) / height_px, word, fontproperties=font, va="top",
                     color="white" if level > 0.6 else "black", parse_math=False,
                     bbox={"facecolor": cmap(level), "edgecolor": "none", "pad": 1.5})
        fig.text(0.5, 1 - 14 / height_px, title, ha="center", va="top", fontsize=11, wrap=True, parse_math=False)
        fig.text(0.01, 8 / height_px, f"darker = higher attention; a word's weight is the sum over its WordPieces "
                 f"(max {mass.max():.3f})", fontsize=8, va="bottom")
    else:
        fig = new_figure(10, 3.2, dpi=_DPI)
        strip, bars = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [1, 3]})
        strip.imshow(intensity[None, :], aspect="auto", cmap=cmap, vmin=0, vmax=1)
        strip.set_yticks([])
        bars.bar(np.arange(len(mass)), mass, width=1.0, color=cmap(0.8))
        bars.set(xlabel="word position in the note (text hidden)", ylabel="attention")
        fig.suptitle(title + " (text hidden)", fontsize=10, parse_math=False)
        fig.tight_layout()
    save_figure(fig, png_path)
    write_text(html_path, _attention_html(words, mass, intensity, title, show_text))
    return fig


def _attention_html(words: list[str], mass: np.ndarray, intensity: np.ndarray, title: str, show_text: bool) -> str:
    spans = []
    for i, (word, w, level) in enumerate(zip(words, mass, intensity)):
        style = f"background-color: rgba(203, 24, 29, {level:.3f}); color: {'white' if level > 0.6 else 'black'}"
        text = html.escape(word) if show_text else "&nbsp;"
        spans.append(f'<span class="w" style="{style}" title="word {i}: {w:.4f}">{text}</span>')
    hidden = "" if show_text else " Text hidden: one box per word, in note order."
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;max-width:900px;margin:2em auto;line-height:2}}
span.w{{padding:2px 3px;margin:0 1px;border-radius:3px;{'' if show_text else 'display:inline-block;width:8px;'}}}</style>
</head><body><h2>{html.escape(title)}</h2>
<p>Darker = higher attention (eq. 2). Hover a word for its weight.{hidden}</p>
<p>{' '.join(spans)}</p>
</body></html>
"""


def attention_heads_figure(attn: np.ndarray, png_path: str | Path, title: str):
    """Figure 4: one `(seq, seq)` map per head of `attn (heads, seq, seq)`, query rows × key columns."""
    from matplotlib.colors import LogNorm

    attn = np.asarray(attn, dtype=float)
    if attn.ndim != 3 or attn.shape[1] != attn.shape[2] or attn.shape[0] == 0:
        raise ValueError(f"attn must be (heads, seq, seq), got shape {attn.shape}")
    if not np.isfinite(attn).all():
        raise ValueError("attn holds non-finite values")
    heads = attn.shape[0]
    cols = math.ceil(math.sqrt(heads))
    rows = math.ceil(heads / cols)
    fig = new_figure(max(3 * cols, 8), 3 * rows + 0.8)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    # Log colour scale shared by all heads, from the 1st percentile (at least max/1e4) to the max: it
    # shows both sharp heads (mass on a few keys) and the faint spread of far-away keys.
    vmax = max(float(attn.max()), 1e-12)
    norm = LogNorm(vmin=min(max(float(np.quantile(attn, 0.01)), vmax * 1e-4), vmax * 0.999), vmax=vmax, clip=True)
    for h, ax in enumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        if h >= heads:
            ax.axis("off")
            continue
        # Exact zeros have no logarithm: draw them at the bottom of the scale.
        ax.imshow(np.maximum(attn[h], norm.vmin), cmap="viridis", norm=norm, interpolation="nearest")
        ax.set_title(f"head {h}", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save_figure(fig, png_path)
    return fig


def head_statistics(attn: np.ndarray, local: int = 3, header: int = 16) -> pd.DataFrame:
    """Per head: mean query-key distance, mass within `local` positions, mass on the first `header`
    note tokens (positions 1..header, after [CLS]) — paper 4.5's local vs long-range heads."""
    attn = np.asarray(attn, dtype=float)
    seq = attn.shape[-1]
    distance = np.abs(np.arange(seq)[:, None] - np.arange(seq)[None, :])  # (seq, seq)
    per_query = attn.sum(axis=-1, keepdims=True)
    attn = attn / np.where(per_query > 0, per_query, 1)
    return pd.DataFrame({
        "head": np.arange(attn.shape[0]),
        "mean_distance": (attn * distance).sum(axis=(1, 2)) / seq,
        "local_mass": (attn * (distance <= local)).sum(axis=(1, 2)) / seq,
        "header_mass": attn[:, :, 1:header + 1].sum(axis=(1, 2)) / seq,
    })


def pick_note_for_code(probs: np.ndarray, labels: np.ndarray, eligible: np.ndarray | None = None) -> tuple[int, int]:
    """`(note, code)` of the most confident true positive among `eligible` notes: the highest probability
    over (note, code) pairs with label 1; ties go to the lowest note, then code, index."""
    probs, labels = np.asarray(probs, dtype=float), np.asarray(labels)
    if probs.shape != labels.shape or probs.ndim != 2:
        raise ValueError(f"probs and labels must both be (n_notes, n_codes), got {probs.shape} and {labels.shape}")
    mask = labels > 0
    if eligible is not None:
        mask &= np.asarray(eligible, dtype=bool)[:, None]
    if not mask.any():
        raise ValueError("no eligible note has a positive label to explain")
    scored = np.where(mask, probs, -np.inf)
    note, code = np.unravel_index(int(np.argmax(scored)), scored.shape)
    return int(note), int(code)


def pick_long_note(lengths: Sequence[int], min_tokens: int) -> int:
    """Index of the shortest note with at least `min_tokens` tokens (paper: 735); the longest if none is."""
    lengths = np.asarray(lengths)
    if lengths.size == 0:
        raise ValueError("no notes to choose from")
    long_enough = np.flatnonzero(lengths >= min_tokens)
    if not len(long_enough):
        return int(np.argmax(lengths))
    return int(long_enough[np.argmin(lengths[long_enough])])


def best_xml_row(metrics_dir: str | Path) -> str:
    """The XML row with the highest recorded test micro AUC (`attention.row: ""` in the profiles)."""

    records = [read_json(p) for p in sorted(Path(metrics_dir).glob("*.json"))] if Path(metrics_dir).exists() else []
    xml = [r for r in records if r.get("family") == "xml"]
    if not xml:
        raise FileNotFoundError(f"{metrics_dir}: no metrics of an XML row; run notebook 04 with variant xml first")
    return max(xml, key=lambda r: (r["micro_auc"], r["model"]))["model"]


def run_attention(out_dir: str | Path, row: str = "", min_tokens: int = 600, show_text: bool = True,
                  device: str = "auto") -> dict:
    """Notebook 07: Figures 3 and 4 from the fine-tuned XML model `models/<row>/` on test notes.

    Figure 3: the most confident true positive (note, code) among test notes that fit one segment
    (preferring notes of at most `FIGURE3_MAX_TOKENS` tokens), so the first segment's attention is the
    whole prediction. Figure 4: the shortest test note of at least `min_tokens` tokens, cut to the
    row's max_len.
    """
    import torch
    from transformers import AutoTokenizer

    paths = RunPaths(out_dir)
    row = row or best_xml_row(paths.metrics_dir)
    if not (paths.model_dir(row) / "config.json").exists():
        raise FileNotFoundError(f"{paths.model_dir(row)}: no fine-tuned model; run notebook 04 for row {row!r}")
    metrics_file = paths.metrics_file(row)
    max_len = row_meta(row, read_json(metrics_file) if metrics_file.exists() else None)["max_len"]
    model = BertForIcdCoding.from_pretrained(paths.model_dir(row), attn_implementation="eager").eval()
    if model.config.icd_head != "xml":
        raise ValueError(f"row {row!r} has a {model.config.icd_head!r} head; Figure 3 needs an xml row")
    max_len = min(max_len or model.config.max_position_embeddings, model.config.max_position_embeddings)
    tokenizer = AutoTokenizer.from_pretrained(paths.model_dir(row))
    cohort = load_cohort(out_dir)
    codes = list(model.config.icd_codes)
    test = cohort.split("test")
    texts, note_ids = test["text"].tolist(), test["note_id"].astype(str).tolist()
    if set(codes) - set(cohort.codes):
        raise ValueError(f"model {row!r} codes {sorted(set(codes) - set(cohort.codes))[:3]} are not in the cohort's label set")
    probs = align_probs(load_predictions(paths.predictions_file(row)), note_ids, codes)
    labels = cohort.label_matrix(test)[:, [cohort.codes.index(c) for c in codes]]
    lengths = np.array([len(ids) for ids in tokenizer(texts, add_special_tokens=False, verbose=False)["input_ids"]])

    one_segment = lengths <= max_len - 2
    short = one_segment & (lengths <= FIGURE3_MAX_TOKENS)
    eligible = next((m for m in (short, one_segment) if (labels[m] > 0).any()), None)
    note, code_index = pick_note_for_code(probs, labels, eligible)
    code = codes[code_index]
    tokens, _, weights = predict_with_attention(model, tokenizer, texts[note], max_len, code_index, device=device)
    description = cohort.descriptions.get(code, code)
    xml_attention_figure(tokens, weights, code, description, paths.figure("figure3_xml_attention.png"),
                         paths.figure("figure3_xml_attention.html"), show_text=show_text)

    long_note = pick_long_note(lengths, min_tokens)
    ids = tokenizer(texts[long_note], add_special_tokens=False, verbose=False)["input_ids"][:max_len - 2]
    segment = torch.tensor([[tokenizer.cls_token_id, *ids, tokenizer.sep_token_id]])
    torch_device = runtime.get_device(device)
    model.to(torch_device)
    with torch.inference_mode():
        out = model(segment.to(torch_device), torch.ones_like(segment).to(torch_device), output_attentions=True)
    attn = out.attentions[-1][0].float().cpu().numpy()  # last layer, (heads, seq, seq)
    attention_heads_figure(attn, paths.figure("figure4_attention_heads.png"),
                           f"Figure 4 (paper 4.5): last-layer self-attention per head ({row})\n"
                           f"test note of {int(lengths[long_note])} tokens "
                           f"({'all' if len(ids) == lengths[long_note] else f'first {len(ids)}'} shown); "
                           f"rows = queries, columns = keys; brighter = higher (log scale)")
    result = {
        "row": row, "code": code, "description": description, "note_id": note_ids[note],
        "probability": float(probs[note, code_index]), "note_tokens": int(lengths[note]),
        "long_note_id": note_ids[long_note], "long_note_tokens": int(lengths[long_note]),
        "figure4_tokens": int(segment.shape[1]), "n_heads": int(attn.shape[0]), "head_stats": head_statistics(attn),
        "figure3_png": str(paths.figure("figure3_xml_attention.png")),
        "figure3_html": str(paths.figure("figure3_xml_attention.html")),
        "figure4_png": str(paths.figure("figure4_attention_heads.png")),
    }
    if show_text:
        words, mass = merge_wordpieces(tokens, weights)
        result["top_words"] = ", ".join(words[i] for i in np.argsort(-mass, kind="stable")[:8])
    return result
