"""Notebook 01 — cohort statistics beside the paper's (§4.1), the overview figure and the label-set table."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from bertxml_lib.core.atomic import read_json, write_csv
from bertxml_lib.core.figures import save_figure
from bertxml_lib.core.paths import RunPaths
from bertxml_lib.data.icd import is_chronic
from bertxml_lib.data.synthetic import GENERATOR_PROPERTIES
from bertxml_lib.evaluation.paper_results import paper_facts
from bertxml_lib.models.offshelf import load_offshelf_tokenizer
from bertxml_lib.text.tokenizer import token_length_quantiles


def stats_vs_paper(out_dir: str | Path) -> pd.DataFrame:
    """Our cohort's numbers next to the paper's; written to `tables/cohort_stats.csv`."""
    paths = RunPaths(out_dir)
    stats = read_json(paths.cohort_dir / "stats.json")
    facts = paper_facts()
    share = stats["note_type_share"]
    p90_tokens = _p90_tokens(paths)
    icd_version = read_json(paths.label_set).get("icd_version", 10)
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
         "/".join(f"{100 * stats['split_notes'][s] / stats['notes']:.0f}" for s in ("train", "dev", "test"))
         + (" % (the source's split)" if stats.get("split_source") == "given" else " % by patient")),
        ("label set size (codes)", facts["cohort"]["label_set_size"], stats["label_set_size"]),
        ("label threshold (training notes)", facts["cohort"]["min_train_count"], read_json(paths.label_set)["min_train_count"]),
        ("codes per training note", facts["cohort"]["codes_per_note"], round(stats["codes_per_note_train"], 2)),
        ("in-scope labels per training note", None, round(stats["labels_per_note_train"], 2)),
        ("notes with no in-scope code", None, round(stats["notes_without_labels"], 3)),
        ("imputed chronic code rows", None,
         stats["imputed_code_rows"] if icd_version == 10 else "n.a. (ICD-9 labels: no chronic imputation)"),
        ("notes dropped (excluded type / < 50 chars)", None,
         f"{stats['dropped']['excluded_type']} / {stats['dropped']['too_short']}"),
    ]
    table = pd.DataFrame(rows, columns=["quantity", "paper", "ours"]).astype({"paper": object, "ours": object})
    write_csv(paths.table("cohort_stats.csv"), table)
    return table


def _p90_tokens(paths: RunPaths, sample: int = 2000) -> float:
    """p90 note length in WordPiece tokens, with the general bert-base-uncased tokenizer (notebook 01
    runs before our vocabulary exists; notebook 02 reports the same quantile with ours)."""

    n = pq.ParquetFile(paths.cohort_notes).metadata.num_rows
    # The rows `notes["text"].sample(n=..., random_state=0)` picks (they depend on the length only), read
    # row group by row group: a million-note cohort's text is never loaded whole.
    picked = pd.RangeIndex(n).to_series().sample(n=min(sample, n), random_state=0).to_numpy()
    return token_length_quantiles(load_offshelf_tokenizer(), _texts_at(paths.cohort_notes, picked))["p90"]


def _texts_at(path: Path, positions) -> list[str]:
    """The `text` of the rows at `positions` (in that order) of a Parquet file."""
    import numpy as np
    import pyarrow as pa

    pf = pq.ParquetFile(path)
    wanted, found, start = np.sort(np.asarray(positions, dtype=np.int64)), {}, 0
    for i in range(pf.metadata.num_row_groups):
        rows = pf.metadata.row_group(i).num_rows
        lo, hi = np.searchsorted(wanted, [start, start + rows])
        if hi > lo:
            texts = pf.read_row_group(i, columns=["text"]).column("text").take(pa.array(wanted[lo:hi] - start))
            found.update(zip(wanted[lo:hi].tolist(), texts.to_pylist()))
        start += rows
    return [found[int(p)] for p in positions]


def _word_counts(path: Path) -> pd.Series:
    """Whitespace words per note (`text.str.split().str.len()`), streamed over the text column."""
    counts: list[int] = []
    for batch in pq.ParquetFile(path).iter_batches(batch_size=8192, columns=["text"]):
        counts += [len(t.split()) if t is not None else 0 for t in batch.column(0).to_pylist()]
    return pd.Series(counts, dtype="int64")


def label_set_table(out_dir: str | Path) -> pd.DataFrame:
    """Label-set codes by training count with description and chronic flag. The chronic list is defined on
    ICD-10-CM (`icd.is_chronic`), so for ICD-9 labels (`label_set.json` "icd_version": 9) the flag is NA."""

    label_set = read_json(RunPaths(out_dir).label_set)  # not load_cohort: no note is needed here
    codes, icd10 = list(label_set["codes"]), label_set.get("icd_version", 10) == 10
    return pd.DataFrame({
        "code": codes,
        "description": [label_set["descriptions"][c] for c in codes],
        "train_notes": [int(label_set["train_counts"][c]) for c in codes],
        "chronic": pd.array([is_chronic(c) if icd10 else pd.NA for c in codes], dtype="boolean"),
    })


def generator_properties() -> pd.DataFrame:
    """The realism properties the synthetic generator builds in, each beside the paper's."""

    return pd.DataFrame(GENERATOR_PROPERTIES)


def cohort_figure(out_dir: str | Path):
    """Note-type mix, note length (words, log scale) and the long tail of code frequencies. Reads only the
    columns it needs (texts streamed for the word counts), so it runs on a million-note cohort."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import pyarrow.compute as pc

    paths = RunPaths(out_dir)
    small = pq.read_table(paths.cohort_notes, columns=["note_type", "split", "codes"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), dpi=110)
    small.column("note_type").to_pandas().value_counts(normalize=True).head(14).iloc[::-1].plot.barh(ax=axes[0])
    axes[0].set(title="note types (share of notes)", xlabel="share")
    words = _word_counts(paths.cohort_notes)
    axes[1].hist(words, bins=np.logspace(np.log10(max(words.min(), 5)), np.log10(words.max() + 1), 40))
    axes[1].set_xscale("log")
    axes[1].axvline(words.median(), color="k", ls="--", label=f"median {words.median():.0f} words (paper ≈150)")
    axes[1].set(title="note length", xlabel="words per note (log scale)", ylabel="notes")
    axes[1].legend()
    train_codes = pc.list_flatten(small.filter(pc.equal(small.column("split"), "train")).column("codes"))
    counts = np.sort(pc.value_counts(train_codes).field("counts").to_numpy())[::-1]
    axes[2].loglog(np.arange(1, len(counts) + 1), counts, ".")
    axes[2].axhline(read_json(paths.label_set)["min_train_count"], color="r", ls="--", label="label-set threshold")
    axes[2].set(title="code frequency (training notes)", xlabel="code rank", ylabel="training notes")
    axes[2].legend()
    fig.tight_layout()
    save_figure(fig, paths.figure("cohort_overview.png"))
    return fig
