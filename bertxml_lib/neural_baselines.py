"""Notebook 05 — the neural baselines of Table 2: multi-head attention GRU (paper 3.4.2, 4.3) and CAML CNN.

Both read words, not WordPieces: the first `max_tokens` words of `baselines.first_words` (paper 4.3: every
baseline sees 512 tokens), ids from a vocabulary of TRAINING words seen at least `min_word_count` times
(id 0 pads, id 1 is every other word; a note without words is one unknown word).

- `mha` (paper 3.4.2, 4.3): fixed StarSpace input embeddings (`starspace`), dropout 0.1, a 1-layer
  bidirectional GRU, `heads` learned queries: `a_ik = softmax_i(<h_i, q_k>)` (eq. 5, masked over
  padding), `c_k = sum_i a_ik h_i / sqrt(d_h)` (eq. 6, d_h = 2 * hidden, the concatenated states),
  `y = sigmoid(W_a [c_0; ...; c_K] + b)` (eqs. 7-8, with a bias). Adam with weight decay (AdamW 0.01).
- `cnn` (CAML, Mullenbach et al. 2018, retrained by Ji et al., seed 003): word embeddings trained from
  random, dropout 0.2, a 1-D convolution (`kernel`, `filters`, padding kernel // 2) with tanh, per-label
  attention over positions `alpha_l = softmax(H u_l)` (masked), `v_l = sum alpha_l h`, per-label output
  vectors `y_l = sigmoid(beta_l . v_l + b_l)`. Adam.

Training: BCE over all codes, length-bucketed shuffled batches of at most `batch_size` notes; every
epoch of every learning rate is scored on dev micro AUC and the best (lr, epoch) is kept (paper 4.3
tunes both on dev AUC). Test notes are only predicted, once, by the chosen model. `train_baseline` never
sees test labels; `run_mha`/`run_cnn` use them afterwards for the reported metrics only.
"""
from __future__ import annotations

import copy
import math
import time
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import runtime
from .baselines import WORD_PATTERN, first_words
from .segments import length_bucketed_batches

PAD, UNK = 0, 1
SPECIAL = ["<pad>", "<unk>"]
MHA_DROPOUT = 0.1        # paper 4.3: dropout on the embeddings
MHA_WEIGHT_DECAY = 0.01  # paper 4.3: "Adam optimizer with weight decay"
CNN_DROPOUT = 0.2        # CAML (Mullenbach et al. 2018) embedding dropout
EVAL_BATCH = 64          # notes per inference batch (speed only)


# ---------------------------------------------------------------- words and vocabulary

def word_spans(text: str, max_tokens: int) -> list[tuple[str, int, int]]:
    """`(word, start, end)` of the first `max_tokens` words: the words of `first_words`, offsets into `text`."""
    lowered = text.lower()
    if len(lowered) == len(text):
        starts = None
    else:  # a few characters lowercase to two (e.g. U+0130): map lowered offsets back to `text`
        starts = np.cumsum([0] + [len(ch.lower()) for ch in text])
    out = []
    for match in WORD_PATTERN.finditer(lowered):
        if len(out) == max_tokens:
            break
        start, end = match.span()
        if starts is not None:
            start, end = int(np.searchsorted(starts, start, "right") - 1), int(np.searchsorted(starts, end, "left"))
        out.append((match.group(), start, end))
    return out


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


# ---------------------------------------------------------------- training and selection

def predict_probs(model: torch.nn.Module, docs: Sequence[np.ndarray], device: torch.device,
                  progress: bool = False) -> np.ndarray:
    """Sigmoid probabilities `(n_docs, L)` in input order (length-sorted batches, eval mode)."""
    model.eval()
    lengths = np.array([len(d) for d in docs])
    batches = length_bucketed_batches(lengths, EVAL_BATCH * int(lengths.max()), shuffle=False, seed=0,
                                      max_batch_size=EVAL_BATCH)
    out = None
    with torch.inference_mode():
        for batch in tqdm(batches, desc="predict", disable=not progress, leave=False, mininterval=5):
            ids, lens = pad_ids([docs[i] for i in batch])
            with runtime.autocast(device):
                logits, _ = model(ids.to(device), lens.to(device))
            probs = torch.sigmoid(logits.float()).cpu().numpy()
            out = np.zeros((len(docs), probs.shape[1]), dtype=np.float32) if out is None else out
            out[batch] = probs
    return out


def train_baseline(build, train_docs: Sequence[np.ndarray], Y_train: np.ndarray, dev_docs: Sequence[np.ndarray],
                   Y_dev: np.ndarray, lrs: Sequence[float], epochs: int, batch_size: int, weight_decay: float,
                   seed: int, device: torch.device, desc: str = "train", progress: bool = True):
    """Train `build()` once per learning rate; keep the (lr, epoch) with the best dev micro AUC.

    Returns `(model with the chosen weights, best {lr, epoch, dev_micro_auc}, history DataFrame
    [lr, epoch, train_loss, dev_micro_auc, seconds])`. Only train and dev notes reach this function.
    """
    from .metrics import micro_auc

    Y_train, Y_dev = np.asarray(Y_train, np.float32), np.asarray(Y_dev, np.float32)
    if Y_dev.size == 0 or Y_dev.min() == Y_dev.max():
        raise ValueError("dev labels hold a single value; dev micro AUC needs positives and negatives")
    lengths = np.array([len(d) for d in train_docs])
    rows, best, best_state, model = [], None, None, None
    for lr in lrs:
        runtime.seed_everything(seed)  # every lr starts from the same initial weights and batch order
        model = build().to(device)
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        for epoch in range(1, epochs + 1):
            started = time.perf_counter()
            model.train()
            batches = length_bucketed_batches(lengths, batch_size * int(lengths.max()), shuffle=True,
                                              seed=seed * 1000 + epoch, max_batch_size=batch_size)
            total = 0.0
            for batch in tqdm(batches, desc=f"{desc} lr={lr:g} epoch {epoch}/{epochs}", disable=not progress,
                              leave=False, mininterval=5):
                ids, lens = pad_ids([train_docs[i] for i in batch])
                target = torch.as_tensor(Y_train[batch], device=device)
                with runtime.autocast(device):
                    logits, _ = model(ids.to(device), lens.to(device))
                loss = F.binary_cross_entropy_with_logits(logits.float(), target)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(batch)
            seconds = time.perf_counter() - started
            dev_auc = micro_auc(Y_dev, predict_probs(model, dev_docs, device))
            rows.append({"lr": lr, "epoch": epoch, "train_loss": total / len(train_docs), "dev_micro_auc": dev_auc,
                         "seconds": seconds})
            if best is None or dev_auc > best["dev_micro_auc"]:  # ties keep the earlier (lr, epoch)
                best = {"lr": lr, "epoch": epoch, "dev_micro_auc": dev_auc}
                best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
    model.load_state_dict(best_state)
    return model, best, pd.DataFrame(rows)


# ---------------------------------------------------------------- notebook 05 entry points

def run_mha(out_dir: str | Path, max_tokens: int = 512, min_word_count: int = 2, emb_dim: int = 300,
            starspace_epochs: int = 5, hidden: int = 512, heads: int = 200, lrs: Sequence[float] = (1e-5,),
            epochs: int = 2, batch_size: int = 8, seed: int = 0, device: str = "auto", threads: int = 0,
            progress: bool = True) -> dict:
    """Notebook 05, row `mha_<max_tokens>`: StarSpace embeddings, then the GRU + multi-head attention model."""
    from .starspace import frozen_input_embeddings, train_starspace

    def fit(cohort, vocab, train_docs, Y_train):
        started = time.perf_counter()
        words, _, losses = train_starspace(train_docs, Y_train, len(vocab), emb_dim, starspace_epochs, seed=seed)
        embeddings = frozen_input_embeddings(words)
        info = {"starspace_seconds": round(time.perf_counter() - started, 2),
                "starspace_loss": [round(x, 5) for x in losses]}
        config = {"emb_dim": emb_dim, "hidden": hidden, "heads": heads, "vocab_size": len(vocab)}
        return (lambda: MultiHeadAttentionGRU(embeddings, hidden, heads, len(cohort.codes))), config, info

    return _run("mha", out_dir, fit, max_tokens, min_word_count, lrs, epochs, batch_size, MHA_WEIGHT_DECAY,
                seed, device, threads, progress)


def run_cnn(out_dir: str | Path, max_tokens: int = 512, min_word_count: int = 2, emb_dim: int = 100,
            filters: int = 50, kernel: int = 10, lr: float = 1e-4, epochs: int = 10, batch_size: int = 16,
            seed: int = 0, device: str = "auto", threads: int = 0, progress: bool = True) -> dict:
    """Notebook 05, row `cnn_<max_tokens>`: CAML trained from scratch."""
    def fit(cohort, vocab, train_docs, Y_train):
        config = {"emb_dim": emb_dim, "filters": filters, "kernel": kernel, "vocab_size": len(vocab)}
        return (lambda: Caml(len(vocab), emb_dim, filters, kernel, len(cohort.codes))), config, {}

    return _run("cnn", out_dir, fit, max_tokens, min_word_count, [lr], epochs, batch_size, 0.0, seed, device,
                threads, progress)


def _run(kind: str, out_dir, fit, max_tokens: int, min_word_count: int, lrs, epochs: int, batch_size: int,
         weight_decay: float, seed: int, device: str, threads: int, progress: bool) -> dict:
    if int(max_tokens) < 1 or int(min_word_count) < 1 or not lrs or int(epochs) < 1 or int(batch_size) < 1:
        raise ValueError(f"{kind}: max_tokens, min_word_count, epochs, batch_size must be >= 1 and lrs non-empty")
    torch_device = runtime.get_device(device)
    previous_threads = torch.get_num_threads()
    # threads=0 means one CPU thread here: these models' ops are tiny (one GRU time step of a few notes) and
    # splitting them over threads of a busy 2-core machine cost 40x (fwd+bwd of a bi-GRU on 32 notes x 230
    # words: 27 s with 2 threads, 0.7 s with 1). Restored afterwards.
    torch.set_num_threads(threads if threads > 0 else 1)
    try:
        return _fit_and_write(kind, out_dir, fit, max_tokens, min_word_count, lrs, epochs, batch_size, weight_decay,
                              seed, torch_device, progress)
    finally:
        torch.set_num_threads(previous_threads)


def _fit_and_write(kind: str, out_dir, fit, max_tokens: int, min_word_count: int, lrs, epochs: int,
                   batch_size: int, weight_decay: float, seed: int, torch_device: torch.device,
                   progress: bool) -> dict:
    from . import metrics
    from .atomic import write_csv, write_json
    from .cohort import load_cohort
    from .neural_predict import save_model
    from .paths import RunPaths
    from .predictions import save_predictions

    paths, cohort = RunPaths(out_dir), load_cohort(out_dir)
    train, dev, test = cohort.split("train"), cohort.split("dev"), cohort.split("test")
    row = f"{kind}_{int(max_tokens)}"
    started = time.perf_counter()
    runtime.seed_everything(seed)
    vocab = build_vocabulary(train["text"].tolist(), max_tokens, min_word_count)  # train notes only
    train_docs, dev_docs, test_docs = (encode(s["text"].tolist(), vocab, max_tokens) for s in (train, dev, test))
    Y_train = cohort.label_matrix(train)
    build, model_config, info = fit(cohort, vocab, train_docs, Y_train)
    model, best, history = train_baseline(build, train_docs, Y_train, dev_docs, cohort.label_matrix(dev), lrs,
                                          epochs, batch_size, weight_decay, seed, torch_device, desc=row,
                                          progress=progress)
    train_seconds = time.perf_counter() - started
    dev_probs = predict_probs(model, dev_docs, torch_device)
    test_probs = predict_probs(model, test_docs, torch_device)  # the only time test notes are read

    save_model(paths.model_dir(row), model, {"kind": kind, "row": row, "max_tokens": int(max_tokens),
                                             "codes": list(cohort.codes), "lr": best["lr"],
                                             "best_epoch": best["epoch"], "seed": seed, **model_config}, vocab)
    save_predictions(paths.predictions_file(row), cohort.codes, dev["note_id"], dev_probs, test["note_id"], test_probs)
    y_test = cohort.label_matrix(test)
    macro, skipped = metrics.macro_auc(y_test, test_probs)
    record = {
        "model": row, "family": kind, "encoder": "", "max_len": int(max_tokens), "status": "ok",
        "micro_auc": metrics.micro_auc(y_test, test_probs), "macro_auc": macro, "n_codes_skipped": skipped,
        "dev_micro_auc": metrics.micro_auc(cohort.label_matrix(dev), dev_probs),
        "train_seconds": round(train_seconds, 2), "best_epoch": best["epoch"], "best_lr": best["lr"],
        "lrs": list(lrs), "epochs": int(epochs), "batch_size": int(batch_size), "min_word_count": int(min_word_count),
        "seed": seed, "device": torch_device.type, **{k: v for k, v in model_config.items()}, **info,
        "epoch_seconds": [round(s, 2) for s in history["seconds"]],
    }
    write_json(paths.metrics_file(row), record)
    # Per-epoch wall times stay in metrics/: tables/ holds only what the seed fixes.
    write_csv(paths.table(f"baseline_history_{row}.csv"), history.drop(columns=["seconds"]).assign(model=row))
    return {"row": row, "metrics": record, "history": history.assign(model=row)}


def dev_auc_figure(out_dir: str | Path, rows: Sequence[str], png_name: str = "baselines_dev_auc.png") -> Path | None:
    """Dev micro AUC per epoch, one line per (row, lr), from `tables/baseline_history_<row>.csv`: the curves
    the epoch and lr were chosen on. Returns the PNG path, or None when no neural row has a history."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from .atomic import atomic_path
    from .paths import RunPaths

    paths = RunPaths(out_dir)
    tables = [paths.table(f"baseline_history_{r}.csv") for r in rows]
    histories = [pd.read_csv(t) for t in tables if t.is_file()]
    if not histories:
        return None
    fig = Figure(figsize=(6, 3.6), dpi=110)
    FigureCanvasAgg(fig)  # no pyplot state: the notebook shows the saved PNG
    ax = fig.add_subplot()
    for history in histories:
        for (model, lr), curve in history.groupby(["model", "lr"], sort=False):
            ax.plot(curve["epoch"], curve["dev_micro_auc"], marker="o", label=f"{model} (lr {lr:g})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("dev micro AUC")
    ax.set_title("Neural baselines: dev micro AUC per epoch (lr and epoch chosen here)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    png = paths.figure(png_name)
    with atomic_path(png) as tmp:
        fig.savefig(tmp, format="png")
    return png
