"""Notebook 05 — the neural baselines' modules: multi-head attention GRU (paper 3.4.2, 4.3) and CAML CNN.

Both read words, not WordPieces (`text.words.first_words`: paper 4.3 gives every baseline 512 tokens), ids
from a vocabulary of TRAINING words seen at least `min_word_count` times (id 0 pads, id 1 is every other
word; a note without words is one unknown word).

- `MultiHeadAttentionGRU` (paper 3.4.2): fixed StarSpace input embeddings, dropout 0.1, a 1-layer
  bidirectional GRU, `heads` learned queries: `a_ik = softmax_i(<h_i, q_k>)` (eq. 5, masked over
  padding), `c_k = sum_i a_ik h_i / sqrt(d_h)` (eq. 6, d_h = 2 * hidden, the concatenated states),
  `y = sigmoid(W_a [c_0; ...; c_K] + b)` (eqs. 7-8, with a bias).
- `Caml` (CAML, Mullenbach et al. 2018, retrained by Ji et al., seed 003): word embeddings trained from
  random, dropout 0.2, a 1-D convolution (`kernel`, `filters`, padding kernel // 2) with tanh, per-label
  attention over positions `alpha_l = softmax(H u_l)` (masked), `v_l = sum alpha_l h`, per-label output
  vectors `y_l = sigmoid(beta_l . v_l + b_l)`.

A saved model is a folder: `neural_baseline.json` (kind `mha`|`cnn`, sizes, `max_tokens`, `codes` in
label-set order, the chosen lr and epoch), `vocab.json` (word per id) and `model.safetensors`.
"""
from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from bertxml_lib.core import runtime
from bertxml_lib.core.atomic import atomic_path
from bertxml_lib.core.progress import progress_bar
from bertxml_lib.text.segments import length_bucketed_batches
from bertxml_lib.text.words import first_words

PAD, UNK = 0, 1
SPECIAL = ["<pad>", "<unk>"]
MHA_DROPOUT = 0.1        # paper 4.3: dropout on the embeddings
CNN_DROPOUT = 0.2        # CAML (Mullenbach et al. 2018) embedding dropout
EVAL_BATCH = 64          # notes per inference batch (speed only)
CONFIG_FILE = "neural_baseline.json"


# ---------------------------------------------------------------- vocabulary

def build_vocabulary(train_texts: Sequence[str], max_tokens: int, min_count: int) -> list[str]:
    """`[<pad>, <unk>, words...]`: training words (first `max_tokens` of each note) seen `min_count`+ times,
    most frequent first, then alphabetical. Dev and test notes never reach this function."""
    counts = Counter(w for text in train_texts for w in first_words(text, max_tokens))
    kept = sorted((w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
    return SPECIAL + kept


def encode(texts: Sequence[str], vocab: Sequence[str], max_tokens: int) -> list[np.ndarray]:
    """Word ids per note (`int64`, length 1..max_tokens)."""
    index = {w: i for i, w in enumerate(vocab)}
    return [np.asarray([index.get(w, UNK) for w in first_words(t, max_tokens)] or [UNK], dtype=np.int64)
            for t in texts]


def pad_ids(docs: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """`(ids (batch, longest), lengths (batch,))`, padded with `PAD`."""
    lengths = torch.as_tensor([len(d) for d in docs], dtype=torch.long)
    ids = torch.full((len(docs), int(lengths.max())), PAD, dtype=torch.long)
    for i, d in enumerate(docs):
        ids[i, :len(d)] = torch.as_tensor(d)
    return ids, lengths


def _masked_softmax(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Softmax over dim 1 of `scores (batch, seq, n)` in fp32; padded positions (`mask` False) get 0."""
    return scores.float().masked_fill(~mask[:, :, None], float("-inf")).softmax(dim=1)


# ---------------------------------------------------------------- models

class MultiHeadAttentionGRU(torch.nn.Module):
    """Paper 3.4.2: fixed embeddings -> bi-GRU -> `heads` query attentions (eqs. 5-6) -> linear (eqs. 7-8)."""

    def __init__(self, embeddings: np.ndarray, hidden: int, heads: int, n_labels: int):
        super().__init__()
        self.embed = torch.nn.Embedding.from_pretrained(torch.as_tensor(embeddings, dtype=torch.float),
                                                        freeze=True, padding_idx=PAD)
        self.dropout = torch.nn.Dropout(MHA_DROPOUT)
        self.gru = torch.nn.GRU(embeddings.shape[1], hidden, batch_first=True, bidirectional=True)
        self.d_h = 2 * hidden
        self.queries = torch.nn.Parameter(torch.randn(heads, self.d_h) / math.sqrt(self.d_h))  # q_k
        self.out = torch.nn.Linear(heads * self.d_h, n_labels)  # W_a

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`ids (batch, seq)`, `lengths (batch,)` -> `logits (batch, L)`, `attention (batch, heads, seq)`."""
        context, attention = self.heads(ids, lengths)
        return self.out(context.flatten(1)), attention  # eqs. 7-8

    def heads(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`context (batch, heads, d_h)` (eq. 6) and `attention (batch, heads, seq)` (eq. 5)."""
        x = self.dropout(self.embed(ids))  # (batch, seq, emb)
        # Packed, the backward GRU starts at each note's last word: padding never enters a state. The
        # recurrence runs in fp32 (bf16 autocast covers the attention and output layer only).
        with torch.autocast(device_type=ids.device.type, enabled=False):
            packed = torch.nn.utils.rnn.pack_padded_sequence(x.float(), lengths.cpu(), batch_first=True,
                                                             enforce_sorted=False)
            h, _ = self.gru(packed)
            h, _ = torch.nn.utils.rnn.pad_packed_sequence(h, batch_first=True, total_length=ids.shape[1])
        mask = torch.arange(ids.shape[1], device=ids.device)[None] < lengths.to(ids.device)[:, None]  # (batch, seq)
        attention = _masked_softmax(h @ self.queries.T, mask)  # (batch, seq, heads), eq. 5
        context = torch.einsum("bsk,bsd->bkd", attention.to(h.dtype), h) / math.sqrt(self.d_h)  # eq. 6
        return context, attention.transpose(1, 2)


class Caml(torch.nn.Module):
    """CAML: embeddings -> conv1d + tanh -> per-label attention -> per-label output vectors."""

    def __init__(self, vocab_size: int, emb_dim: int, filters: int, kernel: int, n_labels: int):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab_size, emb_dim, padding_idx=PAD)
        self.dropout = torch.nn.Dropout(CNN_DROPOUT)
        self.kernel, self.padding = kernel, kernel // 2
        self.conv = torch.nn.Conv1d(emb_dim, filters, kernel, padding=self.padding)
        self.label_queries = torch.nn.Linear(filters, n_labels, bias=False)  # u_l
        self.label_outputs = torch.nn.Linear(filters, n_labels)  # beta_l, b_l
        for layer in (self.conv, self.label_queries, self.label_outputs):
            torch.nn.init.xavier_uniform_(layer.weight)

    def positions(self, lengths: torch.Tensor) -> torch.Tensor:
        """Convolution outputs of a note of `lengths` words (zero padding equals PAD's zero embedding)."""
        return lengths + 2 * self.padding - self.kernel + 1

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`ids (batch, seq)` -> `logits (batch, L)`, `attention (batch, L, positions)`."""
        x = self.dropout(self.embed(ids))  # (batch, seq, emb); PAD rows are zero
        h = torch.tanh(self.conv(x.transpose(1, 2))).transpose(1, 2)  # (batch, positions, filters)
        mask = (torch.arange(h.shape[1], device=ids.device)[None]
                < self.positions(lengths.to(ids.device))[:, None])  # (batch, positions)
        attention = _masked_softmax(self.label_queries(h), mask)  # (batch, positions, L)
        v = torch.einsum("bpl,bpf->blf", attention.to(h.dtype), h)  # (batch, L, filters)
        logits = (v * self.label_outputs.weight).sum(-1) + self.label_outputs.bias  # (batch, L)
        return logits, attention.transpose(1, 2)


# ---------------------------------------------------------------- inference

def predict_probs(model: torch.nn.Module, docs: Sequence[np.ndarray], device: torch.device,
                  progress: bool = False) -> np.ndarray:
    """Sigmoid probabilities `(n_docs, L)` in input order (length-sorted batches, eval mode)."""
    model.eval()
    lengths = np.array([len(d) for d in docs])
    batches = length_bucketed_batches(lengths, EVAL_BATCH * int(lengths.max()), shuffle=False, seed=0,
                                      max_batch_size=EVAL_BATCH)
    out = None
    with torch.inference_mode():
        for batch in progress_bar(batches, desc="predict", disable=not progress, leave=False, mininterval=5):
            ids, lens = pad_ids([docs[i] for i in batch])
            with runtime.autocast(device):
                logits, _ = model(ids.to(device), lens.to(device))
            probs = torch.sigmoid(logits.float()).cpu().numpy()
            out = np.zeros((len(docs), probs.shape[1]), dtype=np.float32) if out is None else out
            out[batch] = probs
    return out


# ---------------------------------------------------------------- saved models

def save_model(folder: str | Path, model: torch.nn.Module, config: dict, vocab: list[str]) -> None:
    """Write the folder atomically (weights, config, vocabulary)."""
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                  str(tmp / "model.safetensors"))
        (tmp / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        (tmp / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False) + "\n")


def is_neural_baseline(folder: str | Path) -> bool:
    return (Path(folder) / CONFIG_FILE).is_file()


def load_model(folder: str | Path) -> tuple[torch.nn.Module, dict, list[str]]:
    """`(model in eval mode, config, vocab)` from a folder written by `save_model`."""
    folder = Path(folder)
    config = json.loads((folder / CONFIG_FILE).read_text())
    vocab = json.loads((folder / "vocab.json").read_text())
    n_labels = len(config["codes"])
    if config["kind"] == "mha":
        model = MultiHeadAttentionGRU(np.zeros((len(vocab), config["emb_dim"]), np.float32), config["hidden"],
                                      config["heads"], n_labels)
    elif config["kind"] == "cnn":
        model = Caml(len(vocab), config["emb_dim"], config["filters"], config["kernel"], n_labels)
    else:
        raise ValueError(f"{folder / CONFIG_FILE}: unknown kind {config['kind']!r}; expected mha or cnn")
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    return model.eval(), config, vocab
