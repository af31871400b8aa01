"""Notebook 01 at scale: the cohort of paper 4.1 built in two streaming passes over the raw notes.

`cohort.build_cohort` calls `build_cohort_streaming`, which gives exactly what the in-memory rules of
`cohort` give (`cohort.build_cohort_in_memory`, the reference the parity tests compare against) while
never holding the note texts of a Parquet source in memory:

1. **Scan** the raw notes in record batches of about `BATCH_BYTES` of text, keeping only the small
   columns of the notes that pass the filters (patient_id, note_id, note_date, note_type, a given split,
   the raw row, the word count). Splits, chronic imputation and the label set are decided on these and
   on the codes table, held as two integer arrays (note position, code id; ~4.5 codes per note).
2. **Write** `cohort/notes.parquet` batch by batch with a `ParquetWriter` to a temporary path, renamed
   when complete: each batch of raw rows gets its split, codes and labels. Rows go out in the cohort's
   order (patient_id, note_date, note_id). A synthetic source is already in that order and streams
   straight through; a table held in memory (real sources) is taken in output order; an unsorted Parquet
   file is first distributed into on-disk buckets of consecutive output positions (`BUCKET_BYTES` of
   text each), each then sorted in memory.

Peak memory therefore grows with the number of notes only through the small columns and code arrays
(~1 GB at a million notes, see `python -m bertxml_lib.bench cohort`), not with the text.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from bertxml_lib.core.atomic import atomic_path, write_json
from bertxml_lib.core.paths import RunPaths
from bertxml_lib.data import icd
from bertxml_lib.data.loaders import describe_code, normalize_code
from bertxml_lib.data.splits import SPLITS, assign_splits

#: Note text per record batch in both passes, and per on-disk bucket when an unsorted Parquet file is reordered.
BATCH_BYTES = 16 << 20
BUCKET_BYTES = 256 << 20
_SMALL = ["patient_id", "note_id", "note_date", "note_type"]


class _RawNotes:
    """The raw notes as record batches: a Parquet file (streamed) or a DataFrame (real sources, in memory)."""

    def __init__(self, raw: pd.DataFrame | str | os.PathLike):
        self.frame, self.file, self._table = None, None, None
        if isinstance(raw, pd.DataFrame):
            self.frame = raw.reset_index(drop=True)
            self.columns = [str(c) for c in self.frame.columns]
            self.n_rows = len(self.frame)
        else:
            self.file = pq.ParquetFile(raw)
            self.columns = list(self.file.schema_arrow.names)
            self.n_rows = self.file.metadata.num_rows
        missing = [c for c in _SMALL + ["text"] if c not in self.columns]
        if missing:
            raise ValueError(f"cohort: the raw notes lack column(s) {missing}; expected {_SMALL + ['text']}")

    def batch_rows(self, chars_per_row: float) -> int:
        return int(min(65536, max(1, BATCH_BYTES // max(chars_per_row, 1.0))))

    def frames(self, columns: list[str]) -> Iterator[pd.DataFrame]:
        """Pass 1: pandas frames of `columns`, in raw order (one frame for a DataFrame source)."""
        if self.frame is not None:
            yield self.frame[columns]
            return
        md = self.file.metadata
        size = sum(md.row_group(i).total_byte_size for i in range(md.num_row_groups))
        for batch in self.file.iter_batches(batch_size=self.batch_rows(size / max(self.n_rows, 1)), columns=columns):
            yield batch.to_pandas()

    def table(self) -> pa.Table:
        if self._table is None:
            self._table = pa.Table.from_pandas(self.frame, preserve_index=False)
        return self._table

    def batches(self, rows: int) -> Iterator[pa.RecordBatch]:
        """Pass 2: every column, in raw order."""
        if self.file is not None:
            yield from self.file.iter_batches(batch_size=rows)
        else:
            yield from self.table().to_batches(max_chunksize=rows)


def _scan_notes(raw: _RawNotes, min_chars: int, excluded_types: Sequence[str]) -> tuple[pd.DataFrame, dict]:
    """Pass 1: the small columns of the notes kept by `cohort.filter_notes`'s rules (same pandas
    expressions, batch by batch), with `_row` (raw row), `_words` (whitespace words) and `_chars`."""
    excluded = {t.lower() for t in excluded_types}
    small = _SMALL + (["split"] if "split" in raw.columns else [])
    parts, n_type, n_short, start = [], 0, 0, 0
    for df in raw.frames(small + ["text"]):
        by_type = df["note_type"].str.lower().isin(excluded)
        too_short = ~by_type & (df["text"].str.strip().str.len() < min_chars)
        keep = (~by_type & ~too_short).to_numpy(dtype=bool)
        n_type, n_short = n_type + int(by_type.sum()), n_short + int(too_short.sum())
        texts = df["text"][keep]
        kept = df.loc[keep, small].reset_index(drop=True)
        kept["_row"] = np.flatnonzero(keep) + start
        kept["_words"] = count_words(texts)
        kept["_chars"] = texts.str.len().fillna(0).to_numpy(dtype=np.int64)
        parts.append(kept)
        start += len(df)
    meta = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=small + ["_row", "_words", "_chars"])
    return meta, {"excluded_type": n_type, "too_short": n_short, "kept": len(meta)}


# Python's str.split() splits on these ASCII bytes (str.isspace): \t \n \v \f \r, \x1c-\x1f and space.
_ASCII_SPACE = np.zeros(256, dtype=bool)
_ASCII_SPACE[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True


def count_words(texts: pd.Series) -> np.ndarray:
    """`texts.str.split().str.len()` as float64 (NaN for a missing text) without building the word lists:
    ASCII texts are counted on their UTF-8 bytes (a word starts at a non-space byte after a space or at
    the text's start), others with Python's `str.split`."""
    arr = pa.array(texts, from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not pa.types.is_string(arr.type) and not pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.large_string())
    out = np.full(len(arr), np.nan)
    if len(arr) == 0:
        return out
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64 if pa.types.is_large_string(arr.type) else np.int32)
    offsets = offsets[arr.offset:arr.offset + len(arr) + 1].astype(np.int64)
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8)[offsets[0]:offsets[-1]] if offsets[-1] > offsets[0] \
        else np.zeros(0, dtype=np.uint8)
    offsets -= offsets[0]
    space = _ASCII_SPACE[data]
    prev_space = np.empty_like(space)
    prev_space[:1], prev_space[1:] = True, space[:-1]
    prev_space[offsets[:-1][offsets[:-1] < len(data)]] = True      # every text starts afresh
    np.logical_not(space, out=space)
    word_starts = np.flatnonzero(np.logical_and(space, prev_space, out=space))  # ~1 int64 per word
    counts = (np.searchsorted(word_starts, offsets[1:]) - np.searchsorted(word_starts, offsets[:-1])).astype(np.float64)
    ascii_ = pc.string_is_ascii(arr).fill_null(False).to_numpy(zero_copy_only=False)
    out[ascii_] = counts[ascii_]
    for i in np.flatnonzero(~ascii_ & arr.is_valid().to_numpy(zero_copy_only=False)):
        out[i] = len(arr[int(i)].as_py().split())
    return out


def _read_codes(raw_codes: pd.DataFrame | str | os.PathLike,
                icd_version: int) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """(note_id, code id) per code row and the sorted distinct normalised codes; each distinct raw
    string is normalised once (`loaders.normalize_code`)."""

    if isinstance(raw_codes, pd.DataFrame):
        table = pa.Table.from_pandas(raw_codes[["note_id", "code"]], preserve_index=False)
    else:
        table = pq.read_table(raw_codes, columns=["note_id", "code"])
    code = table.column("code").combine_chunks()
    if code.null_count:
        raise ValueError(f"cohort: {code.null_count} code row(s) have no code")
    encoded = pc.dictionary_encode(code)
    normalised = np.array([normalize_code(c, icd_version) for c in encoded.dictionary.to_pylist()], dtype=object)
    names, inverse = np.unique(normalised, return_inverse=True) if len(normalised) else (np.array([], dtype=object),
                                                                                         np.array([], dtype=np.int64))
    code_id = inverse.astype(np.int32)[encoded.indices.to_numpy(zero_copy_only=False)]
    return table.column("note_id").combine_chunks(), code_id, names


def _impute(note_pos: np.ndarray, code_id: np.ndarray, n_codes: int, patient: np.ndarray, day: np.ndarray,
            chronic: np.ndarray, min_count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`cohort.impute_chronic` on integer arrays: returns (note position, code id, imputed) of every
    (note, code), sorted by note position then code id. `day` is int64 with NaT as `_NAT`."""
    observed = np.unique(note_pos.astype(np.int64) * n_codes + code_id)
    obs_note, obs_code = observed // n_codes, observed % n_codes
    is_chronic = chronic[obs_code]
    c_patient, c_code, c_day = patient[obs_note[is_chronic]], obs_code[is_chronic], day[obs_note[is_chronic]]
    # Per (patient, code): how many notes carry it, and the earliest dated one (NaT dates are skipped).
    pair = c_patient.astype(np.int64) * n_codes + c_code
    pairs, inv, size = np.unique(pair, return_inverse=True, return_counts=True)
    onset = np.full(len(pairs), _NAT, dtype=np.int64)
    dated = c_day != _NAT
    sentinel = np.full(len(pairs), np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(sentinel, inv[dated], c_day[dated])
    onset[sentinel != np.iinfo(np.int64).max] = sentinel[sentinel != np.iinfo(np.int64).max]
    use = (size >= min_count) & (onset != _NAT)
    pairs, onset = pairs[use], onset[use]
    p_patient, p_code = pairs // n_codes, pairs % n_codes
    # Every note of that patient dated on or after the onset (NaT dates never qualify).
    by_patient = np.argsort(patient, kind="stable")
    first = np.searchsorted(patient[by_patient], np.arange(patient.max() + 2 if len(patient) else 1))
    counts = (first[p_patient + 1] - first[p_patient]).astype(np.int64)
    # Candidates (a pair's patient's notes) in chunks of ~CANDIDATES_PER_CHUNK: patients with many notes and
    # many chronic codes make this the largest intermediate of notebook 01, so it never exists whole.
    ends = np.cumsum(counts)
    carried_parts, lo = [], 0
    while lo < len(p_patient):
        hi = max(int(np.searchsorted(ends, (ends[lo - 1] if lo else 0) + CANDIDATES_PER_CHUNK, "right")), lo + 1)
        c = counts[lo:hi]
        offsets = np.concatenate([[0], np.cumsum(c)])
        cand_note = by_patient[np.repeat(first[p_patient[lo:hi]] - offsets[:-1], c) + np.arange(offsets[-1])]
        cand_day = day[cand_note]
        ok = (cand_day != _NAT) & (cand_day >= np.repeat(onset[lo:hi], c))
        carried_parts.append(cand_note[ok].astype(np.int64) * n_codes + np.repeat(p_code[lo:hi], c)[ok])
        lo = hi
    carried = np.concatenate(carried_parts) if carried_parts else np.zeros(0, dtype=np.int64)
    keys = np.union1d(observed, carried)
    imputed = ~np.isin(keys, observed, assume_unique=True)
    return keys // n_codes, (keys % n_codes).astype(np.int32), imputed


_NAT = np.iinfo(np.int64).min
#: (note, chronic code) candidates per chunk in `_impute` (a few int64 arrays of this length at a time).
CANDIDATES_PER_CHUNK = 1 << 20


def _gather(ks: np.ndarray, starts: np.ndarray, counts: np.ndarray, values: np.ndarray,
            names: pa.Array) -> pa.ListArray:
    """list<string> column: for each kept position in `ks`, names[values[starts[k]:starts[k]+counts[k]]]."""
    c = counts[ks].astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(c)])
    flat = np.repeat(starts[ks] - offsets[:-1], c) + np.arange(offsets[-1])
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), names.take(pa.array(values[flat])))


def build_cohort_streaming(raw_notes, raw_codes, out_dir: str | Path, *, seed: int, min_chars: int,
                           excluded_types: Sequence[str], split_fractions: Sequence[float], chronic_min_count: int,
                           min_train_count: int, icd_version: int = 10) -> dict:
    """`cohort.build_cohort` (see there) on a Parquet file or a DataFrame of raw notes and codes."""

    paths = RunPaths(out_dir)
    code_note_ids, code_ids, code_names = _read_codes(raw_codes, icd_version)
    raw = _RawNotes(raw_notes)
    meta, dropped = _scan_notes(raw, min_chars, excluded_types)
    given = "split" in raw.columns
    split = meta["split"] if given else assign_splits(meta, seed, split_fractions)
    for name in SPLITS:
        if not (split == name).any():
            hint = "the source's split column assigns none" if given else "use more patients"
            raise ValueError(f"cohort: the {name} split has no notes ({len(meta)} notes in all); {hint}")
    if not given:
        meta["split"] = split
    note_ids = pa.array(meta["note_id"], from_pandas=True)
    if pc.count_distinct(note_ids).as_py() != len(note_ids):
        dup = pd.Series(meta["note_id"]).loc[meta["note_id"].duplicated()].iloc[0]
        raise ValueError(f"cohort: note_id {dup!r} occurs more than once among the notes; note ids must be unique")

    # Codes of kept notes only (an inner join on note_id), then chronic imputation.
    pos = pc.index_in(code_note_ids, value_set=note_ids)
    known = pos.is_valid().to_numpy(zero_copy_only=False)
    note_pos = pos.fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)[known]
    code_ids = code_ids[known]
    del code_note_ids, pos, known
    n_codes = max(len(code_names), 1)
    patient = pd.factorize(meta["patient_id"])[0].astype(np.int64)
    dates = meta["note_date"]
    day = np.where(dates.isna().to_numpy(), _NAT, dates.to_numpy().astype("datetime64[ns]").astype(np.int64)) \
        if len(meta) else np.zeros(0, dtype=np.int64)
    chronic = np.array([icd_version == 10 and bool(icd.is_chronic(c)) for c in code_names], dtype=bool)
    note_all, code_all, imputed = _impute(note_pos, code_ids, n_codes, patient, day, chronic, chronic_min_count)
    del note_pos, code_ids

    # Label set: codes with >= min_train_count training notes, by count then code.
    train = (meta["split"] == "train").to_numpy(dtype=bool)
    train_counts_all = np.bincount(code_all[train[note_all]], minlength=n_codes)
    code_index = {str(c): i for i, c in enumerate(code_names)}
    kept = np.flatnonzero((train_counts_all >= min_train_count) & (train_counts_all > 0))
    label_codes = sorted((str(code_names[k]) for k in kept), key=lambda c: (-int(train_counts_all[code_index[c]]), c))
    if not label_codes:
        most = train_counts_all.max() if train[note_all].any() else float("nan")
        raise ValueError(
            f"cohort: no code has at least cohort.min_train_count={min_train_count} training notes; "
            f"lower cohort.min_train_count (most frequent code has {most} notes)")
    train_counts = {c: int(train_counts_all[code_index[c]]) for c in label_codes}
    in_scope = np.zeros(n_codes, dtype=bool)
    in_scope[[code_index[c] for c in label_codes]] = True

    n = len(meta)
    n_all = np.bincount(note_all, minlength=n)
    start_all = np.concatenate([[0], np.cumsum(n_all)[:-1]]).astype(np.int64)
    lab = in_scope[code_all]
    code_lab, n_lab = code_all[lab], np.bincount(note_all[lab], minlength=n)
    start_lab = np.concatenate([[0], np.cumsum(n_lab)[:-1]]).astype(np.int64)
    names = pa.array(code_names.tolist(), type=pa.string())
    order = meta.sort_values(["patient_id", "note_date", "note_id"]).index.to_numpy()
    split_names = None if given else np.asarray(meta["split"].to_numpy(dtype=object))

    def extra(ks: np.ndarray) -> dict[str, pa.Array]:
        cols = {} if given else {"split": pa.array(split_names[ks], type=pa.string())}
        return cols | {"codes": _gather(ks, start_all, n_all, code_all, names),
                       "labels": _gather(ks, start_lab, n_lab, code_lab, names)}

    _write_notes(paths.cohort_notes, raw, meta, order, extra)
    write_json(paths.label_set, {
        "codes": label_codes, "descriptions": {c: describe_code(c, icd_version) for c in label_codes},
        "icd_version": icd_version, "train_counts": train_counts, "min_train_count": min_train_count,
    })
    stats = _statistics(meta, n_all, n_lab, train, dropped, label_codes, int(len(np.unique(code_all))),
                        int(imputed.sum()))
    stats["split_hash"] = _split_hash(note_ids, pa.array(meta["split"], from_pandas=True))
    stats["split_source"] = "given" if given else "patient_hash"
    stats["patients_in_several_splits"] = int((meta.groupby("patient_id")["split"].nunique() > 1).sum())
    write_json(paths.cohort_dir / "stats.json", stats)
    return stats


def _statistics(meta: pd.DataFrame, n_all: np.ndarray, n_lab: np.ndarray, train: np.ndarray, dropped: dict,
                label_codes: list[str], distinct_codes: int, imputed_rows: int) -> dict:
    """`cohort.cohort_statistics` from the scanned columns and per-note code counts."""

    words, n_labels, split = meta["_words"], pd.Series(n_lab), meta["split"]
    return {
        "notes": int(len(meta)),
        "patients": int(meta["patient_id"].nunique()),
        "dropped": dropped,
        "split_notes": {s: int((split == s).sum()) for s in SPLITS},
        "split_patients": {s: int(meta.loc[split == s, "patient_id"].nunique()) for s in SPLITS},
        "median_words": float(words.median()),
        "p90_words": float(words.quantile(0.9)),
        "distinct_codes": distinct_codes,
        "label_set_size": len(label_codes),
        "imputed_code_rows": imputed_rows,
        "codes_per_note_train": float(pd.Series(n_all[train]).mean()),
        "labels_per_note_train": float(n_labels[train].mean()),
        "notes_without_labels": float((n_labels == 0).mean()),
        "note_type_share": {k: float(v) for k, v in meta["note_type"].value_counts(normalize=True).round(4).items()},
    }


def _split_hash(note_ids: pa.Array, splits: pa.Array) -> str:
    """`cohort.split_hash` without a Python list of a million tuples: Arrow sorts (UTF-8 byte order is
    code-point order, as Python's), the digest is fed in slices."""
    table = pa.table({"n": note_ids, "s": splits})
    order = pc.sort_indices(table, sort_keys=[("n", "ascending"), ("s", "ascending")])
    h = hashlib.sha256()
    for lo in range(0, len(order), 65536):
        part = table.take(order[lo:lo + 65536])
        h.update("".join(f"{n}:{s}\n" for n, s in zip(part["n"].to_pylist(), part["s"].to_pylist())).encode())
    return h.hexdigest()[:16]


def _write_notes(path: Path, raw: _RawNotes, meta: pd.DataFrame, order: np.ndarray, extra) -> None:
    """Pass 2: raw rows in output `order` (positions into `meta`), with `extra(ks)`'s columns, to `path`."""
    rows = meta["_row"].to_numpy(dtype=np.int64)
    chars = meta["_chars"].to_numpy(dtype=np.int64)
    batch = raw.batch_rows(chars.mean() if len(chars) else 1.0)
    writer: list = [None]

    def emit(table: pa.Table, ks: np.ndarray, out) -> None:
        for name, column in extra(ks).items():
            if name in table.schema.names:
                table = table.set_column(table.schema.get_field_index(name), name, column)
            else:
                table = table.append_column(name, column)
        if writer[0] is None:
            writer[0] = pq.ParquetWriter(out, table.schema.remove_metadata())
        writer[0].write_table(table.replace_schema_metadata(None))

    with atomic_path(path) as tmp:
        try:
            if np.array_equal(order, np.arange(len(order))):
                # Already in output order (the synthetic source): stream raw batches straight through.
                start = 0
                for b in raw.batches(batch):
                    lo, hi = np.searchsorted(rows, [start, start + b.num_rows])
                    if hi > lo:
                        emit(pa.Table.from_batches([b]).take(pa.array(rows[lo:hi] - start)), np.arange(lo, hi), tmp)
                    start += b.num_rows
            elif raw.frame is not None:
                table = raw.table()
                for lo in range(0, len(order), batch):
                    ks = order[lo:lo + batch]
                    emit(table.take(pa.array(rows[ks])), ks, tmp)
            else:
                _write_reordered(raw, rows, chars, order, batch, lambda t, ks: emit(t, ks, tmp), tmp.parent)
            if writer[0] is None:  # no notes: an empty table with the output columns
                empty = pa.Table.from_batches([], schema=raw.file.schema_arrow if raw.file else raw.table().schema)
                emit(empty, np.zeros(0, dtype=np.int64), tmp)
        finally:
            if writer[0] is not None:
                writer[0].close()


def _write_reordered(raw: _RawNotes, rows: np.ndarray, chars: np.ndarray, order: np.ndarray, batch: int, emit,
                     spill_dir: Path) -> None:
    """An unsorted Parquet source: one pass distributes kept rows into Arrow IPC buckets of consecutive
    output positions (~BUCKET_BYTES of text each); each bucket is then sorted in memory and emitted."""
    n = len(order)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    before = np.concatenate([[0], np.cumsum(chars[order])[:-1]])
    bucket_of_pos = before // BUCKET_BYTES
    bucket = bucket_of_pos[rank]                       # per kept position
    n_buckets = int(bucket_of_pos[-1]) + 1 if n else 0
    with tempfile.TemporaryDirectory(prefix=".cohort-buckets.", dir=spill_dir) as spill:
        writers: dict[int, pa.ipc.RecordBatchFileWriter] = {}
        start = 0
        try:
            for b in raw.batches(batch):
                lo, hi = np.searchsorted(rows, [start, start + b.num_rows])
                if hi > lo:
                    sub = b.take(pa.array(rows[lo:hi] - start)).append_column("__pos", pa.array(rank[lo:hi]))
                    for k in np.unique(bucket[lo:hi]):
                        if k not in writers:
                            writers[k] = pa.ipc.new_file(os.path.join(spill, f"{k}.arrow"), sub.schema)
                        writers[k].write_batch(sub.filter(pa.array(bucket[lo:hi] == k)))
                start += b.num_rows
        finally:
            for w in writers.values():
                w.close()
        for k in range(n_buckets):
            if k not in writers:
                continue
            with pa.memory_map(os.path.join(spill, f"{k}.arrow")) as source:
                table = pa.ipc.open_file(source).read_all()
            pos = table.column("__pos").to_numpy()
            table = table.take(pa.array(np.argsort(pos, kind="stable"))).drop_columns(["__pos"])
            pos = np.sort(pos)
            for lo in range(0, len(pos), batch):
                emit(table.slice(lo, batch), order[pos[lo:lo + batch]])
            del table
            os.remove(os.path.join(spill, f"{k}.arrow"))

