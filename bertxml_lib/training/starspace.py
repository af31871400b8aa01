"""Notebook 05 — StarSpace input embeddings of the multi-head attention baseline (paper 4.3; Wu et al. 2018).

The paper pretrains 300-d word embeddings "with the StarSpace bag-of-word approach", training notes as
inputs and their ICD codes as labels, and keeps them fixed in the prediction task. This is StarSpace's
TagSpace mode (`trainMode 0`, `similarity cosine`), trained in torch:

- a note is the mean of its word embeddings (cosine similarity ignores StarSpace's `1/size^p` scale);
- every epoch, each training note with at least one code is paired with ONE of its codes drawn at random
  (as StarSpace draws one right-hand-side label per example);
- `negatives` codes are drawn by training frequency (StarSpace draws a random example's label); a draw that is
  one of the note's own codes is ignored;
- loss: mean over the valid negatives of the hinge `max(0, margin - cos(note, pos) + cos(note, neg))`;
- Adagrad on sparse gradients, embeddings initialised N(0, 0.001^2), as StarSpace's `initRandSd`.

Only training notes and training labels reach this function (leakage guard of paper 4.1).
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

MARGIN = 0.05        # StarSpace default `margin`
NEGATIVES = 10       # StarSpace default `maxNegSamples`
INIT_SD = 0.001      # StarSpace default `initRandSd`
BATCH_SIZE = 32      # notes per Adagrad step (StarSpace updates per example; batches keep torch fast)


class StarSpace(torch.nn.Module):
    """Word and label tables; `note_vectors` embeds a batch of bag-of-words notes."""

    def __init__(self, vocab_size: int, n_labels: int, dim: int):
        super().__init__()
        self.words = torch.nn.EmbeddingBag(vocab_size, dim, mode="mean", sparse=True, padding_idx=0)
        self.labels = torch.nn.Embedding(n_labels, dim, sparse=True)
        torch.nn.init.normal_(self.words.weight, std=INIT_SD)
        torch.nn.init.normal_(self.labels.weight, std=INIT_SD)
        with torch.no_grad():
            self.words.weight[0].zero_()

    def note_vectors(self, flat_ids: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        return self.words(flat_ids, offsets)  # (batch, dim)


def _bags(docs: Sequence[Sequence[int]], index: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = [len(docs[i]) for i in index]
    flat = torch.as_tensor(np.concatenate([np.asarray(docs[i], dtype=np.int64) for i in index]), dtype=torch.long)
    offsets = torch.as_tensor(np.r_[0, np.cumsum(lengths)[:-1]], dtype=torch.long)
    return flat, offsets


def train_starspace(docs: Sequence[Sequence[int]], labels: np.ndarray, vocab_size: int, dim: int, epochs: int,
                    lr: float = 0.05, negatives: int = NEGATIVES, margin: float = MARGIN,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Fit on training notes `docs` (word ids, 0 = padding, never used) with multi-hot `labels (n, L)`.

    Returns `(word_vectors (vocab_size, dim), label_vectors (L, dim), mean loss per epoch)`. Runs on CPU:
    a bag-of-words model is cheap and sparse Adagrad is a CPU path.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2 or labels.shape[0] != len(docs):
        raise ValueError(f"labels must be (n_docs={len(docs)}, L), got {labels.shape}")
    if any(len(d) == 0 for d in docs):
        raise ValueError("every note needs at least one word id")
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model = StarSpace(vocab_size, labels.shape[1], dim)
    optimizer = torch.optim.Adagrad(model.parameters(), lr=lr)
    labelled = np.flatnonzero(labels.sum(axis=1) > 0)
    positives = [np.flatnonzero(labels[i]) for i in range(len(docs))]
    frequency = torch.as_tensor(labels.sum(axis=0) + 1e-12, dtype=torch.float)
    own = torch.as_tensor(labels > 0)
    losses = []
    for _ in range(epochs):
        order = labelled[rng.permutation(len(labelled))]
        total, count = 0.0, 0
        for start in range(0, len(order), BATCH_SIZE):
            index = order[start:start + BATCH_SIZE]
            pos = torch.as_tensor([rng.choice(positives[i]) for i in index], dtype=torch.long)  # (b,)
            neg = torch.multinomial(frequency, len(index) * negatives, replacement=True,
                                    generator=generator).view(len(index), negatives)  # (b, k)
            valid = ~own[torch.as_tensor(index)].gather(1, neg)  # (b, k): a note's own codes are no negatives
            note = model.note_vectors(*_bags(docs, index))  # (b, dim)
            sim_pos = F.cosine_similarity(note, model.labels(pos), dim=-1)  # (b,)
            sim_neg = F.cosine_similarity(note[:, None], model.labels(neg), dim=-1)  # (b, k)
            hinge = (margin - sim_pos[:, None] + sim_neg).clamp(min=0) * valid
            loss = (hinge.sum(1) / valid.sum(1).clamp(min=1)).mean()
            optimizer.zero_grad()
            loss.backward()
            with warnings.catch_warnings():  # torch's notice that sparse invariant checks are off (its default)
                warnings.filterwarnings("ignore", message="Sparse invariant checks")
                optimizer.step()
            total, count = total + float(loss.detach()) * len(index), count + len(index)
        losses.append(total / max(count, 1))
    words = model.words.weight.detach().clone()
    words[0] = 0.0
    return words.numpy(), model.labels.weight.detach().numpy().copy(), losses


def rank_scores(word_vectors: np.ndarray, label_vectors: np.ndarray, docs: Sequence[Sequence[int]]) -> np.ndarray:
    """Cosine similarity of every note (mean of its word vectors) to every label: `(n_docs, L)`."""
    notes = np.stack([word_vectors[np.asarray(d, dtype=np.int64)].mean(axis=0) for d in docs])
    notes = notes / np.maximum(np.linalg.norm(notes, axis=1, keepdims=True), 1e-12)
    labels = label_vectors / np.maximum(np.linalg.norm(label_vectors, axis=1, keepdims=True), 1e-12)
    return notes @ labels.T


def frozen_input_embeddings(word_vectors: np.ndarray) -> np.ndarray:
    """Rescale StarSpace vectors to unit RMS over real words, keeping their relative norms.

    Cosine training leaves the overall scale arbitrary (and tiny, from `INIT_SD`); the GRU that reads the
    fixed embeddings needs inputs of order one. Row 0 (padding) stays zero.
    """
    vectors = np.asarray(word_vectors, dtype=np.float32).copy()
    rms = float(np.sqrt(np.mean(vectors[1:] ** 2))) if len(vectors) > 1 else 0.0
    if rms > 0:
        vectors /= rms
    vectors[0] = 0.0
    return vectors
