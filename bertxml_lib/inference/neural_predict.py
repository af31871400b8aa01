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


def predict(model_dir: str | Path, note_ids: list[str], texts: list[str], top_k: int = 5, n_spans: int = 3,
            max_len: int | None = None, batch_size: int = 32, device: str = "auto", progress: bool = True) -> dict:
    """`predict.predict`'s result for a neural baseline folder (head `mha` or `cnn`)."""
    from tqdm.auto import tqdm


    model_dir = Path(model_dir)
    model, config, vocab = load_model(model_dir)
    max_tokens, source = (max_len, "--max-len") if max_len else (int(config["max_tokens"]), CONFIG_FILE)
    codes = list(config["codes"])
    torch_device = runtime.get_device(device)
    model.to(torch_device)
    docs = encode(texts, vocab, max_tokens)
    words = [word_spans(t, max_tokens) for t in texts]
    k = min(top_k, len(codes))
    probs = np.zeros((len(texts), len(codes)), dtype=np.float32)
    evidence: list[list[list[dict]]] = [[] for _ in texts]
    lengths = np.array([len(d) for d in docs])
    batches = length_bucketed_batches(lengths, batch_size * int(lengths.max()), shuffle=False, seed=0,
                                      max_batch_size=batch_size)
    with torch.inference_mode():
        for batch in tqdm(batches, desc="predict", disable=not progress, leave=False, mininterval=5):
            ids, lens = pad_ids([docs[i] for i in batch])
            ids, lens = ids.to(torch_device), lens.to(torch_device)
            with runtime.autocast(torch_device):
                logits, attention = model(ids, lens)
            p = torch.sigmoid(logits.float()).cpu().numpy()
            probs[batch] = p
            top = torch.as_tensor(np.argsort(-p, axis=1, kind="stable")[:, :k], device=torch_device)  # (b, k)
            if config["kind"] == "mha":
                weights = _mha_word_weights(model, ids, lens, top).cpu().numpy()  # (b, k, seq)
            else:
                weights = attention.float().gather(1, top[:, :, None].expand(-1, -1, attention.shape[2])).cpu().numpy()
            for row, i in enumerate(batch):
                note_words, text = words[i], texts[i]
                per_code = []
                for rank in range(k):
                    if not note_words:
                        spans = []
                    elif config["kind"] == "mha":
                        offsets = np.array([(a, b) for _, a, b in note_words], dtype=np.int64)
                        found = merge_spans(weights[row, rank, :len(note_words)], offsets, np.arange(len(note_words)), 8)
                        spans = sorted(found, key=lambda s: (-s[2], s[0]))[:n_spans]
                    else:
                        n_pos = len(note_words) + 2 * model.padding - model.kernel + 1
                        spans = _cnn_spans(weights[row, rank, :n_pos], note_words, model.padding, model.kernel,
                                           n_spans)
                    per_code.append([{"start": a, "end": b, "text": text[a:b], "attention": round(m, 6),
                                      "segment": 0} for a, b, m in spans])
                evidence[i] = per_code
    descriptions = describe_codes(codes, model_dir)
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]  # ties: label-set order
    notes = []
    for i, note_id in enumerate(note_ids):
        notes.append({"note_id": note_id, "codes": [
            {"rank": r + 1, "code": codes[j], "description": descriptions[j],
             "probability": round(float(probs[i, j]), 6), "evidence": evidence[i][r]}
            for r, j in enumerate(top[i])]})
    return {"model": str(model_dir), "head": config["kind"], "max_len": max_tokens, "max_len_source": source,
            "notes": notes}
