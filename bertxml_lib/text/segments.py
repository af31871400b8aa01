"""Notebooks 03/04/07: note segmenting, length-bucketed batching and segment max-pooling (paper 4.1), and the
notes-of-segments inputs of hierarchical BERT (Ji et al., seed 003).

Paper 4.1: notes longer than the maximum length are split into consecutive segments, each padded to
the maximum length; a note's probability for a code is the highest over its segments. Padding every
segment to `max_len` wastes most of the compute on short notes, so batches here group segments of
similar length under a token budget instead; padded positions are masked everywhere (encoder and
XML attention), so the results equal padding to `max_len`.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from bertxml_lib.text.token_cache import note_token_ids

# Segments are sorted by length inside shuffled chunks of this many items: big enough that batches
# hold near-equal lengths (little padding), small enough that batch composition still varies by epoch.
_SHUFFLE_CHUNK = 2048


def split_into_segments(token_ids: list[int], max_len: int, cls_id: int, sep_id: int) -> list[list[int]]:
    """Split one note's token ids into `[CLS] <= max_len-2 tokens [SEP]` segments, in order.

    An empty note gives one segment `[CLS] [SEP]`, so every note has at least one prediction.
    """
    if max_len < 3:
        raise ValueError(f"max_len must be >= 3 to hold [CLS], one token and [SEP]; got {max_len}")
    content = max_len - 2
    if not token_ids:
        return [[cls_id, sep_id]]
    return [[cls_id, *token_ids[i:i + content], sep_id] for i in range(0, len(token_ids), content)]


def _note_token_ids(tokenizer, texts: list[str], batch_size: int, cache_dir=None):
    """Each note's token ids (fast tokenizer, batched, no special tokens, no truncation), in order; with
    `cache_dir`, read from / stored in the on-disk token cache (`token_cache`)."""

    if tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
        raise ValueError("tokenizer must define [CLS] and [SEP] tokens (a BERT WordPiece tokenizer)")
    return note_token_ids(tokenizer, list(texts), batch_size, cache_dir)  # list: a Series would slice by label


def encode_notes(tokenizer, texts: list[str], max_len: int, batch_size: int = 256,
                 cache_dir=None) -> tuple[list[list[int]], np.ndarray]:
    """Tokenize notes (fast tokenizer, batched, no truncation) and split them into segments.

    Returns `(segments, segment_note_index)`: all segments in note order and, per segment, the
    position in `texts` of the note it came from. With `cache_dir` (a run's
    `RunPaths.token_cache_dir`), token ids are cached on disk by tokenizer and notes (not `max_len`).
    """
    segments: list[list[int]] = []
    note_index: list[int] = []
    for note, note_ids in enumerate(_note_token_ids(tokenizer, texts, batch_size, cache_dir)):
        note_segments = split_into_segments(note_ids, max_len, tokenizer.cls_token_id, tokenizer.sep_token_id)
        segments.extend(note_segments)
        note_index.extend([note] * len(note_segments))
    return segments, np.asarray(note_index, dtype=np.int64)


def n_hier_segments(max_len: int, segment_len: int) -> int:
    """Segments a hierarchical model needs for a note's first `max_len` tokens: ceil(max_len / (segment_len - 2))."""
    if segment_len < 3 or max_len < 1:
        raise ValueError(f"need segment_len >= 3 and max_len >= 1, got {segment_len}, {max_len}")
    return -(-max_len // (segment_len - 2))


def encode_notes_hierarchical(tokenizer, texts: list[str], max_len: int, segment_len: int,
                              batch_size: int = 256, cache_dir=None) -> list[list[list[int]]]:
    """Per note, its first `max_len` tokens split into `[CLS] <= segment_len-2 tokens [SEP]` segments
    (hierarchical BERT: one prediction per note, nothing after `max_len` tokens is read)."""
    n_hier_segments(max_len, segment_len)  # validates
    cls_id, sep_id = tokenizer.cls_token_id, tokenizer.sep_token_id
    return [split_into_segments(ids[:max_len], segment_len, cls_id, sep_id)
            for ids in _note_token_ids(tokenizer, texts, batch_size, cache_dir)]


def pad_hier_batch(notes: list[list[list[int]]], pad_id: int) -> tuple[torch.LongTensor, torch.LongTensor]:
    """Notes of segments -> `(input_ids, attention_mask)`, both `(batch, n_segments, seq)`: segments are
    right-padded to the longest segment, notes to the most segments with absent (all-padding) segments."""
    if not notes or any(not segments for segments in notes):
        raise ValueError("pad_hier_batch needs at least one note, each with at least one segment")
    n_segments = max(len(segments) for segments in notes)
    seq = max(len(s) for segments in notes for s in segments)
    input_ids = torch.full((len(notes), n_segments, seq), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(notes), n_segments, seq), dtype=torch.long)
    for row, segments in enumerate(notes):
        for k, segment in enumerate(segments):
            input_ids[row, k, :len(segment)] = torch.as_tensor(segment, dtype=torch.long)
            attention_mask[row, k, :len(segment)] = 1
    return input_ids, attention_mask


def hier_note_lengths(notes: list[list[list[int]]]) -> np.ndarray:
    """A note's padded size as a hierarchical input, `n_segments * longest segment`, for token budgets."""
    return np.array([len(segments) * max(len(s) for s in segments) for segments in notes], dtype=np.int64)


def hier_pad_fraction(notes: list[list[list[int]]], batches: list[np.ndarray]) -> float:
    """Share of encoded positions that are padding: each batch encodes its present segments at its longest segment."""
    computed = real = 0
    for batch in batches:
        segments = [s for b in batch for s in notes[b]]
        computed += len(segments) * max(len(s) for s in segments)
        real += sum(len(s) for s in segments)
    return 0.0 if computed == 0 else 1.0 - real / computed


def length_bucketed_batches(lengths: Sequence[int], batch_tokens: int, shuffle: bool, seed: int,
                            max_batch_size: int = 256) -> list[np.ndarray]:
    """Group item indices into batches whose padded size `len(batch) * max length` stays <= batch_tokens.

    With `shuffle`, items are permuted (by `seed`), sorted by length within chunks of the permutation,
    cut into batches, and the batch order permuted again: little padding, random order. Without it,
    items are sorted by length once (longest first, so memory problems show up at the first batch).
    An item longer than `batch_tokens` forms a batch of its own. Every index appears exactly once.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.ndim != 1:
        raise ValueError(f"lengths must be a 1-D sequence, got shape {lengths.shape}")
    if batch_tokens <= 0 or max_batch_size <= 0:
        raise ValueError(f"batch_tokens and max_batch_size must be positive, got {batch_tokens}, {max_batch_size}")
    rng = np.random.default_rng(seed)
    if shuffle:
        order = rng.permutation(len(lengths))
        chunks = [order[i:i + _SHUFFLE_CHUNK] for i in range(0, len(order), _SHUFFLE_CHUNK)]
    else:
        chunks = [np.arange(len(lengths))]
    batches: list[np.ndarray] = []
    for chunk in chunks:
        # Stable sort, longest first: ties keep the (seeded) permutation order.
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        current: list[int] = []
        current_max = 0
        for idx in chunk:
            new_max = max(current_max, int(lengths[idx]))
            if current and ((len(current) + 1) * new_max > batch_tokens or len(current) >= max_batch_size):
                batches.append(np.asarray(current, dtype=np.int64))
                current, new_max = [], int(lengths[idx])
            current.append(int(idx))
            current_max = new_max
        if current:
            batches.append(np.asarray(current, dtype=np.int64))
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def pad_batch(segments: list[list[int]], pad_id: int) -> tuple[torch.LongTensor, torch.LongTensor]:
    """Right-pad segments to the longest one: `(input_ids, attention_mask)`, both `(batch, seq)`."""
    if not segments:
        raise ValueError("pad_batch needs at least one segment")
    seq = max(len(s) for s in segments)
    input_ids = torch.full((len(segments), seq), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(segments), seq), dtype=torch.long)
    for row, segment in enumerate(segments):
        input_ids[row, :len(segment)] = torch.as_tensor(segment, dtype=torch.long)
        attention_mask[row, :len(segment)] = 1
    return input_ids, attention_mask


def pack_segments(segments: list[list[int]]) -> tuple[torch.LongTensor, torch.LongTensor, torch.LongTensor]:
    """Segments concatenated into one row with no padding: `(input_ids (T,), position_ids (T,), lengths (n,))`.

    Positions restart at 0 in every segment, so each segment is embedded as if it were alone; the packed
    encoder (`models.packed`) keeps segments apart in attention by `lengths`. Equal lengths that follow each
    other (length-bucketed batches come longest first) share one attention call."""
    if not segments or any(not s for s in segments):
        raise ValueError("pack_segments needs at least one segment, none of them empty")
    lengths = torch.tensor([len(s) for s in segments], dtype=torch.long)
    input_ids = torch.tensor([t for s in segments for t in s], dtype=torch.long)
    position_ids = torch.cat([torch.arange(n) for n in lengths.tolist()])
    return input_ids, position_ids, lengths


def pad_fraction(lengths: Sequence[int], batches: list[np.ndarray]) -> float:
    """Share of computed positions that are padding, over all `batches`."""
    lengths = np.asarray(lengths, dtype=np.int64)
    padded = sum(len(b) * int(lengths[b].max()) for b in batches if len(b))
    real = sum(int(lengths[b].sum()) for b in batches)
    return 0.0 if padded == 0 else 1.0 - real / padded


def max_pool_segments(segment_probs: np.ndarray, segment_note_index: np.ndarray, n_notes: int) -> np.ndarray:
    """Note-level probabilities `(n_notes, L)`: the max over each note's segments (paper 4.1)."""
    segment_probs = np.asarray(segment_probs)
    segment_note_index = np.asarray(segment_note_index, dtype=np.int64)
    if segment_probs.ndim != 2 or segment_note_index.shape != (segment_probs.shape[0],):
        raise ValueError(f"segment_probs must be (n_segments, L) and segment_note_index (n_segments,); "
                         f"got {segment_probs.shape} and {segment_note_index.shape}")
    if len(segment_note_index) and (segment_note_index.min() < 0 or segment_note_index.max() >= n_notes):
        raise ValueError(f"segment_note_index must lie in [0, {n_notes}), got "
                         f"[{segment_note_index.min()}, {segment_note_index.max()}]")
    if n_notes == 0 and len(segment_note_index) == 0:
        return np.zeros((0, segment_probs.shape[1]), dtype=segment_probs.dtype)
    order = np.argsort(segment_note_index, kind="stable")
    sorted_index = segment_note_index[order]
    notes, starts = np.unique(sorted_index, return_index=True)
    if len(notes) != n_notes:
        missing = sorted(set(range(n_notes)) - set(notes.tolist()))[:5]
        raise ValueError(f"every note needs at least one segment; notes without one include {missing}")
    # One reduceat over runs of equal note index instead of a Python loop over notes.
    return np.maximum.reduceat(segment_probs[order], starts, axis=0)
