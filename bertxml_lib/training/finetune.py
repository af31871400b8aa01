"""Notebook 04: fine-tune a `BertForIcdCoding` on segments and predict note-level probabilities (paper 4.2.2).

Paper 4.2.2: Adam with weight decay, linear warm-up over 10% of the steps then linear decay to 0,
binary cross-entropy with equal class weights; epochs are chosen on dev AUC. Paper 4.1: long notes
are split into segments that each carry the note's labels, and a note's probability is the max over
its segments. The hierarchical head (Ji et al., seed 003) instead takes one note per batch row (its first
`max_len` tokens as segments of `config.hier_segment_len`) and gives one prediction per note.
Segment batches run packed (`models.packed`: no padded position computed, parity-tested against the
padded HF forward); hier batches run padded.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from bertxml_lib.core import runtime
from bertxml_lib.core.progress import progress_bar
from bertxml_lib.models.modeling import BertForIcdCoding, HierHead, LanHead, XmlHead
from bertxml_lib.models.packed import coding_forward, real_tokens
from bertxml_lib.text.segments import (
    encode_notes,
    encode_notes_hierarchical,
    hier_note_lengths,
    hier_pad_fraction,
    length_bucketed_batches,
    max_pool_segments,
    pad_batch,
    pad_fraction,
)
from bertxml_lib.training.optim import linear_warmup_schedule, optimizer_step, param_groups


@dataclass
class FinetuneConfig:
    """Defaults equal the base profile of `configs/profiles.yaml` (`finetune.*`; tests/test_defaults.py);
    notebooks pass the resolved values."""

    epochs: int = 3
    batch_tokens: int = 2048     # token budget of a length-bucketed training batch
    lr: float = 1.0e-3           # encoder learning rate
    head_lr: float = 1.0e-2      # head learning rate (label vectors, W_a, W_b / W_out, LAN attention)
    warmup: float = 0.1          # fraction of all steps with linearly rising lr
    weight_decay: float = 0.01
    eval_batch_size: int = 32    # segments (hier: notes) per inference batch (speed only)
    seed: int = 0
    device: str = "auto"
    max_len: int = 512


def finetune(model: BertForIcdCoding, tokenizer, train_texts: list[str], train_labels: np.ndarray,
             dev_texts: list[str], dev_labels: np.ndarray, cfg: FinetuneConfig, progress: bool = True,
             cache_dir=None) -> dict:
    """Train `model` in place; keep and restore the epoch with the best dev micro AUC.

    Returns `{history: [{epoch, train_loss, dev_micro_auc, seconds, tokens_per_s}], best_epoch,
    best_dev_micro_auc, train_seconds, pad_fraction, n_train_segments, n_dev_segments}`; `seconds` is
    an epoch's training time, `train_seconds` the whole call's wall time (dev evaluation included).
    Training items are segments carrying their note's labels, or whole notes for the hier head (batched
    under the same token budget by `n_segments * longest segment`). `cache_dir` (a run's
    `RunPaths.token_cache_dir`) caches the notes' token ids on disk (`token_cache`; speed only).
    """
    n_labels = len(model.config.icd_codes)
    train_labels = _check_labels("train", train_texts, train_labels, n_labels)
    dev_labels = _check_labels("dev", dev_texts, dev_labels, n_labels)
    if dev_labels.min() == dev_labels.max():
        raise ValueError("dev_labels hold a single value; dev micro AUC needs positives and negatives")
    if cfg.epochs < 1:
        raise ValueError(f"cfg.epochs must be >= 1, got {cfg.epochs}")
    start = time.perf_counter()
    runtime.seed_everything(cfg.seed)
    device = runtime.get_device(cfg.device)
    model.to(device)

    hier = _is_hier(model)
    if hier:  # items are notes: lists of segments, one label row each
        segment_len = model.config.hier_segment_len
        train_segments = encode_notes_hierarchical(tokenizer, list(train_texts), cfg.max_len, segment_len,
                                                   cache_dir=cache_dir)
        dev_notes = encode_notes_hierarchical(tokenizer, list(dev_texts), cfg.max_len, segment_len, cache_dir=cache_dir)
        segment_labels = torch.from_numpy(train_labels)
        lengths = hier_note_lengths(train_segments)
    else:
        train_segments, train_index = encode_notes(tokenizer, list(train_texts), cfg.max_len, cache_dir=cache_dir)
        dev_segments, dev_index = encode_notes(tokenizer, list(dev_texts), cfg.max_len, cache_dir=cache_dir)
        segment_labels = torch.from_numpy(train_labels[train_index])  # each segment carries its note's labels
        lengths = np.array([len(s) for s in train_segments])
    epoch_batches = [length_bucketed_batches(lengths, cfg.batch_tokens, shuffle=True, seed=cfg.seed + epoch)
                     for epoch in range(cfg.epochs)]
    total_steps = sum(len(b) for b in epoch_batches)
    optimizer = torch.optim.AdamW(_param_groups(model, cfg), lr=cfg.lr)
    scheduler = linear_warmup_schedule(optimizer, cfg.warmup, total_steps)

    history, best_auc, best_epoch, best_state = [], -np.inf, 0, None
    for epoch, batches in enumerate(epoch_batches, start=1):
        model.train()
        epoch_start, loss_sum, tokens = time.perf_counter(), 0.0, 0
        bar = progress_bar(batches, desc=f"epoch {epoch}/{cfg.epochs}", disable=not progress, leave=False, mininterval=5)
        for batch in bar:
            items = [train_segments[i] for i in batch]
            labels = segment_labels[batch].to(device)
            with runtime.autocast(device):
                # Packed segments, no padded position computed (models.packed); hier notes padded.
                loss = coding_forward(model, items, tokenizer.pad_token_id, device, labels=labels).loss
            optimizer_step(loss, model, optimizer, scheduler)
            loss_sum += loss.item() * len(batch)
            tokens += real_tokens(items)
            bar.set_postfix(loss=f"{loss.item():.4f}", tok_s=f"{tokens / (time.perf_counter() - epoch_start):.0f}")
        seconds = time.perf_counter() - epoch_start
        if hier:
            dev_probs = _predict_hier(model, tokenizer, dev_notes, cfg.eval_batch_size,
                                      cfg.eval_batch_size * cfg.max_len, device, progress)
        else:
            dev_probs = _predict_segments(model, tokenizer, dev_segments, dev_index, len(dev_texts),
                                          cfg.eval_batch_size, cfg.eval_batch_size * cfg.max_len, device, progress)
        auc = float(roc_auc_score(dev_labels.ravel(), dev_probs.ravel()))
        history.append({"epoch": epoch, "train_loss": loss_sum / len(train_segments), "dev_micro_auc": auc,
                        "seconds": seconds, "tokens_per_s": tokens / seconds})
        if auc > best_auc:
            # Paper 4.2.2 tunes epochs on dev AUC: keep the best epoch's weights (on CPU) and restore them.
            best_auc, best_epoch = auc, epoch
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    return {
        "history": history,
        "best_epoch": best_epoch,
        "best_dev_micro_auc": best_auc,
        "train_seconds": time.perf_counter() - start,
        "pad_fraction": float(np.mean([hier_pad_fraction(train_segments, b) if hier else pad_fraction(lengths, b)
                                       for b in epoch_batches])),
        "n_train_segments": sum(map(len, train_segments)) if hier else len(train_segments),
        "n_dev_segments": sum(map(len, dev_notes)) if hier else len(dev_segments),
    }


def predict_notes(model: BertForIcdCoding, tokenizer, texts: list[str], max_len: int, eval_batch_size: int = 32,
                  batch_tokens: int | None = None, device: str = "auto", progress: bool = True,
                  cache_dir=None) -> np.ndarray:
    """Note-level probabilities `(n_notes, L)`: sigmoid per segment, max over each note's segments; for the
    hier head one sigmoid per note over its first `max_len` tokens (`eval_batch_size` notes per batch).

    `batch_tokens` defaults to `eval_batch_size * max_len` (the memory of a full-length batch).
    """
    torch_device = runtime.get_device(device)
    model.to(torch_device)
    if _is_hier(model):
        notes = encode_notes_hierarchical(tokenizer, list(texts), max_len, model.config.hier_segment_len,
                                          cache_dir=cache_dir)
        return _predict_hier(model, tokenizer, notes, eval_batch_size, batch_tokens or eval_batch_size * max_len,
                             torch_device, progress)
    segments, note_index = encode_notes(tokenizer, list(texts), max_len, cache_dir=cache_dir)
    return _predict_segments(model, tokenizer, segments, note_index, len(texts), eval_batch_size,
                             batch_tokens or eval_batch_size * max_len, torch_device, progress)


def predict_with_attention(model: BertForIcdCoding, tokenizer, text: str, max_len: int, code_index: int,
                           device: str = "auto") -> tuple[list[str], list[tuple[int, int]], np.ndarray]:
    """XML (or LAN) label attention of code `code_index` over the first segment of `text` (Figure 3).

    Returns `(tokens, offsets, weights)` for `[CLS] tokens [SEP]`: `offsets` are character spans into
    `text` ((0, 0) for the special tokens) and `weights (seq,)` sum to 1.
    """
    if not isinstance(model.head, (XmlHead, LanHead)):
        raise ValueError("predict_with_attention needs token label attention (config.icd_head 'xml' or 'lan')")
    n_labels = len(model.config.icd_codes)
    if not 0 <= code_index < n_labels:
        raise ValueError(f"code_index {code_index} outside [0, {n_labels})")
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False, verbose=False)
    ids = encoded["input_ids"][:max_len - 2]
    offsets = [(0, 0), *[tuple(o) for o in encoded["offset_mapping"][:max_len - 2]], (0, 0)]
    segment = [tokenizer.cls_token_id, *ids, tokenizer.sep_token_id]
    torch_device = runtime.get_device(device)
    model.to(torch_device).eval()
    input_ids, attention_mask = pad_batch([segment], tokenizer.pad_token_id)
    with torch.inference_mode():
        out = model(input_ids.to(torch_device), attention_mask.to(torch_device))
    weights = out.label_attention[0, code_index].float().cpu().numpy()  # (seq,)
    return tokenizer.convert_ids_to_tokens(segment), offsets, weights


def _predict_segments(model, tokenizer, segments, note_index, n_notes, eval_batch_size, batch_tokens, device,
                      progress) -> np.ndarray:
    """Sigmoid probabilities per segment, length-bucketed, then max-pooled per note: `(n_notes, L)`."""
    probs = _batched_probs(model, segments, np.array([len(s) for s in segments]), tokenizer.pad_token_id,
                           eval_batch_size, batch_tokens, device, progress)
    return max_pool_segments(probs, note_index, n_notes)


def _batched_probs(model, items, lengths, pad_id, eval_batch_size, batch_tokens, device, progress) -> np.ndarray:
    """Sigmoid probabilities `(len(items), L)`: `items` (segments, or a hier model's notes) in length-bucketed
    batches of at most `batch_tokens` padded tokens, run packed (hier: padded) by `packed.coding_forward`."""
    model.eval()
    batches = length_bucketed_batches(lengths, batch_tokens, shuffle=False, seed=0, max_batch_size=eval_batch_size)
    probs = np.zeros((len(items), len(model.config.icd_codes)), dtype=np.float32)
    with torch.inference_mode():
        for batch in progress_bar(batches, desc="predict", disable=not progress, leave=False, mininterval=5):
            with runtime.autocast(device):
                logits = coding_forward(model, [items[i] for i in batch], pad_id, device).logits
            probs[batch] = torch.sigmoid(logits.float()).cpu().numpy()
    return probs


def _is_hier(model) -> bool:
    return isinstance(getattr(model, "head", None), HierHead)


def _predict_hier(model, tokenizer, notes, eval_batch_size, batch_tokens, device, progress) -> np.ndarray:
    """Sigmoid probabilities per note of a hier model, notes bucketed by padded size: `(n_notes, L)`."""
    return _batched_probs(model, notes, hier_note_lengths(notes), tokenizer.pad_token_id,
                          eval_batch_size, batch_tokens, device, progress)


def _param_groups(model: BertForIcdCoding, cfg: FinetuneConfig) -> list[dict]:
    """Encoder and head at their own lr (`training.optim.param_groups` decides weight decay).

    The hier head's segment transformer and segment positions are encoder-like and take the encoder lr;
    its label attention takes the head lr."""
    parts = [(model.bert.named_parameters(), cfg.lr)]
    head = list(model.head.named_parameters())
    if _is_hier(model):
        parts += [([(n, p) for n, p in head if not n.startswith("attention.")], cfg.lr),
                  ([(n, p) for n, p in head if n.startswith("attention.")], cfg.head_lr)]
    else:
        parts.append((head, cfg.head_lr))
    return param_groups(parts, cfg.weight_decay)


def _check_labels(split: str, texts, labels: np.ndarray, n_labels: int) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.float32)
    if labels.shape != (len(texts), n_labels):
        raise ValueError(f"{split}_labels must be (n_notes={len(texts)}, L={n_labels}), got {labels.shape}")
    return labels
