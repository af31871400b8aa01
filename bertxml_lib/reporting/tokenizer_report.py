"""Notebook 02 — the OOV comparison beside the paper's (§3.2: 49.2 general vs 0.93 EHR OOV words per note)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from bertxml_lib.core.figures import save_figure
from bertxml_lib.evaluation.paper_results import paper_facts

LABELS = {"ehr_wordpiece": "EHR WordPiece (ours, train split)", "general_bert_base_uncased": "general bert-base-uncased"}


def oov_vs_paper(summary: pd.DataFrame) -> pd.DataFrame:
    """OOV words per note for both vocabularies, ours beside the paper's, and the ratio of the two."""
    oov = paper_facts()["oov_words_per_note"]
    paper = {"ehr_wordpiece": oov["ehr"], "general_bert_base_uncased": oov["general"]}
    table = summary.assign(
        vocabulary=summary["tokenizer"].map(LABELS),
        paper_oov_words_per_note=summary["tokenizer"].map(paper),
    )[["vocabulary", "vocab_size", "notes", "oov_words_per_note", "paper_oov_words_per_note",
       "split_words_per_note", "unk_per_note", "tokens_per_note", "tokens_per_word"]]
    ours = summary.set_index("tokenizer")["oov_words_per_note"]
    table.attrs["ratio_ours"] = float(ours["general_bert_base_uncased"] / max(ours["ehr_wordpiece"], 1e-9))
    table.attrs["ratio_paper"] = paper["general_bert_base_uncased"] / paper["ehr_wordpiece"]
    return table


def oov_figure(per_note: pd.DataFrame, png_path: str | Path):
    """Histogram of OOV words per note under each vocabulary."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.8), dpi=110)
    for name, df in per_note.groupby("tokenizer"):
        ax.hist(df["oov_words"], bins=40, alpha=0.6, label=f"{LABELS.get(name, name)} (mean {df['oov_words'].mean():.1f})")
    ax.set(xlabel="OOV words per note (split into sub-words or [UNK])", ylabel="notes",
           title="Out-of-vocabulary words per dev note")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, png_path)
    return fig
