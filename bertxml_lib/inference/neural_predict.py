"""Notebook 05's neural baselines as saved models: `<out>/models/<row>/` and `python -m bertxml_lib.predict` on them.

A folder holds `neural_baseline.json` (kind `mha`|`cnn`, sizes, `max_tokens`, `codes` in label-set order,
the chosen lr and epoch), `vocab.json` (word per id) and `model.safetensors` (the state dict).

Evidence spans (the `predict` CLI's format, character offsets into the note, `segment` always 0: these
models read the first `max_tokens` words only):
- `mha`: each head's attention over words, weighted by how much that head raises the code's logit
  (`max(0, W_a[code, head] . c_head)`, uniform when no head does); the highest words merge into spans
  as for BERT-XML (`evidence.merge_spans`).
- `cnn`: CAML's own reading: the code's highest-attention convolution positions, each the window of
  `kernel` words it covers; overlapping windows are skipped.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from bertxml_lib.core import runtime
from bertxml_lib.core.progress import progress_bar
from bertxml_lib.inference.evidence import describe_codes, merge_spans
from bertxml_lib.models.neural import (  # noqa: F401
    CONFIG_FILE,
    Caml,
    MultiHeadAttentionGRU,
    encode,
    is_neural_baseline,
    load_model,
    pad_ids,
)
from bertxml_lib.text.segments import length_bucketed_batches
from bertxml_lib.text.words import word_spans


def _mha_word_weights(model: MultiHeadAttentionGRU, ids, lengths, codes: torch.Tensor) -> torch.Tensor:
    """Per note and code, attention over words: `(batch, k, seq)` (see the module docstring)."""
    context, attention = model.heads(ids, lengths)  # (batch, heads, d_h), (batch, heads, seq)
    weight = model.out.weight.view(model.out.out_features, -1, model.d_h)[codes]  # (batch, k, heads, d_h)
    raise_ = torch.einsum("bjkd,bkd->bjk", weight.float(), context.float()).clamp(min=0)  # (batch, k, heads)
    raise_ = torch.where(raise_.sum(-1, keepdim=True) > 0, raise_, torch.ones_like(raise_))
    raise_ = raise_ / raise_.sum(-1, keepdim=True)
    return torch.einsum("bjk,bks->bjs", raise_, attention.float())


def _cnn_spans(att: np.ndarray, words: list[tuple], padding: int, kernel: int, n_spans: int) -> list[tuple]:
    """`(start, end, attention)` of a code's top convolution windows over `words` (non-overlapping)."""
    chosen: list[tuple] = []
    for t in np.argsort(-att, kind="stable"):
        first, last = max(0, int(t) - padding), min(len(words), int(t) - padding + kernel) - 1
        if len(chosen) == n_spans:
            break
        if first > last or any(first <= b and a <= last for a, b, _ in chosen):
            continue
        chosen.append((first, last, float(att[t])))
    return [(words[a][1], words[b][2], m) for a, b, m in chosen]


def _forward(model, config: dict, vocab, texts: list[str], max_tokens: int, choose, n_spans: int, batch_size: int,
             device: str, progress: bool) -> tuple[np.ndarray, list[list[dict]]]:
    """One pass over the notes: probabilities `(n_notes, L)` and, for the code indices `choose(probs_row)` picks
    per note, `[note][j] -> {offsets, scores, spans}` (units attended: words for mha, convolution windows for
    cnn; `spans` as `predict` returns them)."""

    torch_device = runtime.get_device(device)
    model.to(torch_device)
    docs = encode(texts, vocab, max_tokens)
    words = [word_spans(t, max_tokens) for t in texts]
    probs = np.zeros((len(texts), len(config["codes"])), dtype=np.float32)
    evidence: list[list[dict]] = [[] for _ in texts]
    lengths = np.array([len(d) for d in docs])
    batches = length_bucketed_batches(lengths, batch_size * max(int(lengths.max()), 1), shuffle=False, seed=0,
                                      max_batch_size=batch_size)
    with torch.inference_mode():
        for batch in progress_bar(batches, desc="predict", disable=not progress, leave=False, mininterval=5):
            ids, lens = pad_ids([docs[i] for i in batch])
            ids, lens = ids.to(torch_device), lens.to(torch_device)
            with runtime.autocast(torch_device):
                logits, attention = model(ids, lens)
            p = torch.sigmoid(logits.float()).cpu().numpy()
            probs[batch] = p
            chosen = [list(choose(i, p[row])) for row, i in enumerate(batch)]
            k = max(1, max(len(c) for c in chosen))
            top = torch.as_tensor(np.array([c + [0] * (k - len(c)) for c in chosen], dtype=np.int64),
                                  device=torch_device)  # (b, k), padded with code 0 (ignored)
            if config["kind"] == "mha":
                weights = _mha_word_weights(model, ids, lens, top).cpu().numpy()  # (b, k, seq)
            else:
                weights = attention.float().gather(1, top[:, :, None].expand(-1, -1, attention.shape[2])).cpu().numpy()
            for row, i in enumerate(batch):
                note_words, text = words[i], texts[i]
                offsets_w = np.array([(a, b) for _, a, b in note_words], dtype=np.int64).reshape(-1, 2)
                per_code = []
                for rank in range(len(chosen[row])):
                    if not note_words:
                        spans, offsets, scores = [], offsets_w, np.zeros(0)
                    elif config["kind"] == "mha":
                        offsets, scores = offsets_w, weights[row, rank, :len(note_words)].astype(float)
                        found = merge_spans(scores, offsets, np.arange(len(note_words)), 8)
                        spans = sorted(found, key=lambda s: (-s[2], s[0]))[:n_spans]
                    else:
                        n_pos = len(note_words) + 2 * model.padding - model.kernel + 1
                        att = weights[row, rank, :n_pos]
                        spans = _cnn_spans(att, note_words, model.padding, model.kernel, n_spans)
                        first = np.maximum(0, np.arange(n_pos) - model.padding)
                        last = np.minimum(len(note_words), np.arange(n_pos) - model.padding + model.kernel) - 1
                        valid = first <= last
                        offsets = np.stack([offsets_w[first[valid], 0], offsets_w[last[valid], 1]], axis=1)
                        scores = att[valid].astype(float)
                    per_code.append({"offsets": offsets, "scores": scores,
                                     "spans": [{"start": a, "end": b, "text": text[a:b], "attention": round(m, 6),
                                                "segment": 0} for a, b, m in spans]})
                evidence[i] = per_code
    return probs, evidence


def code_evidence(model_dir: str | Path, texts: list[str], codes: list[list[str]], n_spans: int = 3,
                  max_len: int | None = None, batch_size: int = 32, device: str = "auto",
                  progress: bool = False) -> list[list[dict]]:
    """`predict.code_evidence` for a neural baseline folder: `[note][j] -> {offsets, scores, spans}` of code
    `codes[i][j]`, from the same pass `predict` runs."""
    model, config, vocab = load_model(Path(model_dir))
    index = {c: j for j, c in enumerate(config["codes"])}
    chosen = [[index[c] for c in note_codes] for note_codes in codes]
    _, evidence = _forward(model, config, vocab, texts, max_len or int(config["max_tokens"]),
                           lambda i, _: chosen[i], n_spans, batch_size, device, progress)
    return evidence


def predict(model_dir: str | Path, note_ids: list[str], texts: list[str], top_k: int = 5, n_spans: int = 3,
            max_len: int | None = None, batch_size: int = 32, device: str = "auto", progress: bool = True) -> dict:
    """`predict.predict`'s result for a neural baseline folder (head `mha` or `cnn`)."""
    model_dir = Path(model_dir)
    model, config, vocab = load_model(model_dir)
    max_tokens, source = (max_len, "--max-len") if max_len else (int(config["max_tokens"]), CONFIG_FILE)
    codes = list(config["codes"])
    k = min(top_k, len(codes))
    probs, evidence = _forward(model, config, vocab, texts, max_tokens,
                               lambda _, p: np.argsort(-p, kind="stable")[:k], n_spans, batch_size, device, progress)
    descriptions = describe_codes(codes, model_dir)
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]  # ties: label-set order
    notes = []
    for i, note_id in enumerate(note_ids):
        notes.append({"note_id": note_id, "codes": [
            {"rank": r + 1, "code": codes[j], "description": descriptions[j],
             "probability": round(float(probs[i, j]), 6), "evidence": evidence[i][r]["spans"]}
            for r, j in enumerate(top[i])]})
    return {"model": str(model_dir), "head": config["kind"], "max_len": max_tokens, "max_len_source": source,
            "notes": notes}
