"""Notebook 05 — training and dev selection of the neural baselines (paper 3.4.2, 4.3; modules in `models.neural`).

Training: BCE over all codes, length-bucketed shuffled batches of at most `batch_size` notes; every
epoch of every learning rate is scored on dev micro AUC and the best (lr, epoch) is kept (paper 4.3
tunes both on dev AUC). Test notes are only predicted, once, by the chosen model. `train_baseline` never
sees test labels; `run_mha`/`run_cnn` use them afterwards for the reported metrics only.
"""
from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from bertxml_lib.core import runtime
from bertxml_lib.core.atomic import write_csv
from bertxml_lib.core.figures import new_figure, save_figure
from bertxml_lib.core.paths import RunPaths
from bertxml_lib.core.progress import progress_bar
from bertxml_lib.core.rows import Row, baseline_row
from bertxml_lib.data.cohort import load_cohort
from bertxml_lib.evaluation.metrics import micro_auc
from bertxml_lib.evaluation.records import record_row
from bertxml_lib.models.neural import (
    Caml,
    MultiHeadAttentionGRU,
    build_vocabulary,
    encode,
    pad_ids,
    predict_probs,
    save_model,
)
from bertxml_lib.text.segments import length_bucketed_batches
from bertxml_lib.training.optim import optimizer_step
from bertxml_lib.training.starspace import frozen_input_embeddings, train_starspace

MHA_WEIGHT_DECAY = 0.01  # paper 4.3: "Adam optimizer with weight decay"


def train_baseline(build, train_docs: Sequence[np.ndarray], Y_train: np.ndarray, dev_docs: Sequence[np.ndarray],
                   Y_dev: np.ndarray, lrs: Sequence[float], epochs: int, batch_size: int, weight_decay: float,
                   seed: int, device: torch.device, desc: str = "train", progress: bool = True):
    """Train `build()` once per learning rate; keep the (lr, epoch) with the best dev micro AUC.

    Returns `(model with the chosen weights, best {lr, epoch, dev_micro_auc}, history DataFrame
    [lr, epoch, train_loss, dev_micro_auc, seconds])`. Only train and dev notes reach this function.
    """

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
            for batch in progress_bar(batches, desc=f"{desc} lr={lr:g} epoch {epoch}/{epochs}", disable=not progress,
                              leave=False, mininterval=5):
                ids, lens = pad_ids([train_docs[i] for i in batch])
                target = torch.as_tensor(Y_train[batch], device=device)
                with runtime.autocast(device):
                    logits, _ = model(ids.to(device), lens.to(device))
                loss = F.binary_cross_entropy_with_logits(logits.float(), target)
                optimizer_step(loss, model, optimizer, max_grad_norm=None)  # paper 4.3: plain Adam, no clipping
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

def run_mha(out_dir: str | Path, max_tokens: int = 512, min_word_count: int = 2, emb_dim: int = 100,
            starspace_epochs: int = 5, hidden: int = 64, heads: int = 16, lrs: Sequence[float] = (1e-3,),
            epochs: int = 5, batch_size: int = 8, seed: int = 0, device: str = "auto", threads: int = 0,
            progress: bool = True) -> dict:
    """Notebook 05, row `mha_<max_tokens>`: StarSpace embeddings, then the GRU + multi-head attention model."""

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
            filters: int = 50, kernel: int = 10, lr: float = 1e-3, epochs: int = 10, batch_size: int = 16,
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

    paths, cohort = RunPaths(out_dir), load_cohort(out_dir)
    train, dev, test = cohort.split("train"), cohort.split("dev"), cohort.split("test")
    row = baseline_row(kind, max_tokens)
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
    record = record_row(
        out_dir, cohort, Row(row, kind, max_len=int(max_tokens), notebook="05"), dev_probs, test_probs,
        train_seconds=round(train_seconds, 2), best_epoch=best["epoch"], best_lr=best["lr"], lrs=list(lrs),
        epochs=int(epochs), batch_size=int(batch_size), min_word_count=int(min_word_count), seed=seed,
        device=torch_device.type, **model_config, **info, epoch_seconds=[round(s, 2) for s in history["seconds"]])
    # Per-epoch wall times stay in metrics/: tables/ holds only what the seed fixes.
    write_csv(paths.table(f"baseline_history_{row}.csv"), history.drop(columns=["seconds"]).assign(model=row))
    return {"row": row, "metrics": record, "history": history.assign(model=row)}


def dev_auc_figure(out_dir: str | Path, rows: Sequence[str], png_name: str = "baselines_dev_auc.png") -> Path | None:
    """Dev micro AUC per epoch, one line per (row, lr), from `tables/baseline_history_<row>.csv`: the curves
    the epoch and lr were chosen on. Returns the PNG path, or None when no neural row has a history."""

    paths = RunPaths(out_dir)
    tables = [paths.table(f"baseline_history_{r}.csv") for r in rows]
    histories = [pd.read_csv(t) for t in tables if t.is_file()]
    if not histories:
        return None
    fig = new_figure(6, 3.6, dpi=110)
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
    save_figure(fig, png)
    return png
