"""Notebook 01 — cohort statistics beside the paper's (§4.1), the overview figure and the label-set table."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .atomic import atomic_path, read_json, write_csv
from .cohort import load_cohort
from .paths import RunPaths
from .paper_results import paper_facts


def stats_vs_paper(out_dir: str | Path) -> pd.DataFrame:
    """Our cohort's numbers next to the paper's; written to `tables/cohort_stats.csv`."""
    paths = RunPaths(out_dir)
    stats = read_json(paths.cohort_dir / "stats.json")
    facts = paper_facts()
    share = stats["note_type_share"]
    p90_tokens = _p90_tokens(paths)
    rows = [
        ("notes", facts["cohort"]["notes"], stats["notes"]),
        ("patients", facts["cohort"]["patients"], stats["patients"]),
        ("median words per note", facts["cohort"]["median_words"], stats["median_words"]),
        ("90th percentile WordPiece tokens per note (general vocabulary)", facts["cohort"]["p90_tokens"], p90_tokens),
        ("share of progress notes", facts["cohort"]["note_type_share"]["progress note"], share.get("progress note", 0.0)),
        ("share of telephone encounters", facts["cohort"]["note_type_share"]["telephone encounter"], share.get("telephone encounter", 0.0)),
        ("share of patient instructions", facts["cohort"]["note_type_share"]["patient instructions"], share.get("patient instructions", 0.0)),
        ("note types", facts["cohort"]["note_types"], len(share)),
        ("train/dev/test notes", "70/10/20 % by patient",
         "/".join(f"{100 * stats['split_notes'][s] / stats['notes']:.0f}" for s in ("train", "dev", "test")) + " % by patient"),
        ("label set size (codes)", facts["cohort"]["label_set_size"], stats["label_set_size"]),
        ("label threshold (training notes)", facts["cohort"]["min_train_count"], read_json(paths.label_set)["min_train_count"]),
        ("codes per training note", facts["cohort"]["codes_per_note"], round(stats["codes_per_note_train"], 2)),
        ("in-scope labels per training note", None, round(stats["labels_per_note_train"], 2)),
        ("notes with no in-scope code", None, round(stats["notes_without_labels"], 3)),
        ("imputed chronic code rows", None, stats["imputed_code_rows"]),
        ("notes dropped (excluded type / < 50 chars)", None,
         f"{stats['dropped']['excluded_type']} / {stats['dropped']['too_short']}"),
    ]
    table = pd.DataFrame(rows, columns=["quantity", "paper", "ours"]).astype({"paper": object, "ours": object})
    write_csv(paths.table("cohort_stats.csv"), table)
    return table


def _p90_tokens(paths: RunPaths, sample: int = 2000) -> float:
    """p90 note length in WordPiece tokens, with the general bert-base-uncased tokenizer (notebook 01
    runs before our vocabulary exists; notebook 02 reports the same quantile with ours)."""
    from .offshelf import load_offshelf_tokenizer
    from .tokenizer import token_length_quantiles

    notes = pd.read_parquet(paths.cohort_notes, columns=["text"])
    texts = notes["text"].sample(n=min(sample, len(notes)), random_state=0).tolist()
    return token_length_quantiles(load_offshelf_tokenizer(), texts)["p90"]


def label_set_table(out_dir: str | Path) -> pd.DataFrame:
    """Label-set codes by training count with description and chronic flag."""
    from .icd import is_chronic

    cohort = load_cohort(out_dir)
    return pd.DataFrame({
        "code": cohort.codes,
        "description": [cohort.descriptions[c] for c in cohort.codes],
        "train_notes": [cohort.train_counts[c] for c in cohort.codes],
        "chronic": [is_chronic(c) for c in cohort.codes],
    })


def generator_properties() -> pd.DataFrame:
    """The realism properties the synthetic generator builds in, each beside the paper's."""
    from .synthetic import GENERATOR_PROPERTIES

    return pd.DataFrame(GENERATOR_PROPERTIES)


def cohort_figure(out_dir: str | Path):
    """Note-type mix, note length (words, log scale) and the long tail of code frequencies."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    paths = RunPaths(out_dir)
    cohort = load_cohort(out_dir)
    notes = cohort.notes
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), dpi=110)
    notes["note_type"].value_counts(normalize=True).head(14).iloc[::-1].plot.barh(ax=axes[0])
    axes[0].set(title="note types (share of notes)", xlabel="share")
    words = notes["text"].str.split().str.len()
    axes[1].hist(words, bins=np.logspace(np.log10(max(words.min(), 5)), np.log10(words.max() + 1), 40))
    axes[1].set_xscale("log")
    axes[1].axvline(words.median(), color="k", ls="--", label=f"median {words.median():.0f} words (paper ≈150)")
    axes[1].set(title="note length", xlabel="words per note (log scale)", ylabel="notes")
    axes[1].legend()
    counts = notes.loc[notes["split"] == "train", "codes"].explode().value_counts()
    axes[2].loglog(np.arange(1, len(counts) + 1), counts.values, ".")
    axes[2].axhline(read_json(paths.label_set)["min_train_count"], color="r", ls="--", label="label-set threshold")
    axes[2].set(title="code frequency (training notes)", xlabel="code rank", ylabel="training notes")
    axes[2].legend()
    fig.tight_layout()
    with atomic_path(paths.figure("cohort_overview.png")) as tmp:
        fig.savefig(tmp, format="png")
    return fig
