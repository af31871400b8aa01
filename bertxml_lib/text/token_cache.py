"""Notebooks 03/04: the notes' WordPiece ids, tokenized in batches and cached on disk.

Every pretraining and fine-tuning run tokenizes the same notes with the same vocabulary (notebook 04
runs once per Table 2 row); the fast tokenizer's batch call spreads a batch over the cores (Rust, unless
TOKENIZERS_PARALLELISM=false), and the ids are kept under the run folder
(`paths.RunPaths.token_cache_dir`) as `<key>.npz`, one entry per (tokenizer, list of notes):

* the key is a sha256 of the tokenizer's full definition (`tokenizer.json`: vocabulary, normalizer,
  pre-tokenizer, added tokens; its call-time truncation/padding state left out), the tokenizer class and
  every note's text in order, so a different vocabulary or different notes never read a wrong entry;
  `max_len` is not part of it: entries hold whole notes, segmented after loading;
* an entry is written to a temporary file and renamed when complete (`atomic.atomic_path`), and holds
  its key and a digest of its arrays: a partial, corrupted or foreign file is ignored (recomputed and
  replaced), so the cache changes speed only, never results (tests check both).
"""
from __future__ import annotations

import hashlib
import json
import warnings
import zipfile
from pathlib import Path
from typing import Iterable

import numpy as np

from bertxml_lib.core.atomic import atomic_path

FORMAT = 1          # bump when the entry layout or what is tokenized changes
BATCH_SIZE = 256    # notes per fast-tokenizer batch call


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of what decides the ids: the backend definition minus call-time truncation/padding, and the class."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    spec.pop("truncation", None)
    spec.pop("padding", None)
    blob = json.dumps(spec, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(type(tokenizer).__name__.encode() + b"\0" + blob).hexdigest()


def cache_key(tokenizer, texts: list[str]) -> str:
    """The entry name of `texts` tokenized by `tokenizer` (length-prefixed texts: no two lists collide)."""
    h = hashlib.sha256(f"token-cache v{FORMAT}\0{tokenizer_fingerprint(tokenizer)}\0{len(texts)}\0".encode())
    for t in texts:
        b = str(t).encode("utf-8", "surrogatepass")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()[:32]


def tokenize_batched(tokenizer, texts: list[str], batch_size: int = BATCH_SIZE) -> Iterable[list[int]]:
    """Each note's ids (no special tokens, no truncation), one fast-tokenizer batch call per `batch_size` notes."""
    for start in range(0, len(texts), batch_size):
        batch = [str(t) for t in texts[start:start + batch_size]]
        # verbose=False: long notes exceed model_max_length on purpose; they are segmented later.
        yield from tokenizer(batch, add_special_tokens=False, truncation=False, verbose=False,
                             return_attention_mask=False, return_token_type_ids=False)["input_ids"]


def _digest(ids: np.ndarray, offsets: np.ndarray) -> str:
    return hashlib.sha256(ids.tobytes() + b"\0" + offsets.tobytes()).hexdigest()


def _load(path: Path, key: str, n_notes: int) -> list[list[int]] | None:
    """The entry's ids, or None when it is missing, unreadable, for another key or fails its digest."""
    try:
        with np.load(path, allow_pickle=False) as z:
            ids, offsets, meta = z["ids"], z["offsets"], json.loads(str(z["meta"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        warnings.warn(f"{path}: unreadable token cache entry ({type(exc).__name__}); tokenizing again", stacklevel=3)
        return None
    if (meta.get("key") != key or meta.get("format") != FORMAT or len(offsets) != n_notes + 1
            or offsets[-1] != len(ids) or meta.get("digest") != _digest(ids, offsets)):
        warnings.warn(f"{path}: token cache entry does not match its key or digest; tokenizing again", stacklevel=3)
        return None
    return [ids[offsets[i]:offsets[i + 1]].tolist() for i in range(n_notes)]


def _save(path: Path, key: str, notes: list[list[int]]) -> None:
    lengths = np.fromiter((len(n) for n in notes), dtype=np.int64, count=len(notes))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    ids = np.concatenate([np.asarray(n, dtype=np.int32) for n in notes]) if notes else np.zeros(0, np.int32)
    meta = json.dumps({"key": key, "format": FORMAT, "digest": _digest(ids, offsets), "notes": len(notes)})
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:  # a file object: np.savez must not append ".npz" to the temporary name
            np.savez(fh, ids=ids, offsets=offsets, meta=np.array(meta))


def note_token_ids(tokenizer, texts: Iterable[str], batch_size: int = BATCH_SIZE,
                   cache_dir: str | Path | None = None) -> list[list[int]]:
    """Each note's token ids in order, from `cache_dir` when a valid entry exists, else tokenized in
    batches (and stored there when `cache_dir` is given)."""
    texts = [str(t) for t in texts]
    if cache_dir is None:
        return list(tokenize_batched(tokenizer, texts, batch_size))
    key = cache_key(tokenizer, texts)
    path = Path(cache_dir) / f"{key}.npz"
    cached = _load(path, key, len(texts))
    if cached is not None:
        return cached
    notes = list(tokenize_batched(tokenizer, texts, batch_size))
    _save(path, key, notes)
    return notes
