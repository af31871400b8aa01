"""Notebook 03 — masked-language-model pretraining of HF BERT from scratch on EHR notes (paper 3.2, 4.2.1, Table 1, Figure 1).

MLM only (15% of tokens, 80/10/10 replacement as in BERT); the paper also used next-sentence
prediction, which this stage leaves out (a documented non-paper variant).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import BertForMaskedLM, DataCollatorForLanguageModeling, get_linear_schedule_with_warmup

from .atomic import atomic_path, write_csv, write_json
from .encoders import make_bert_config
from .runtime import autocast, get_device, seed_everything
from .segments import encode_notes, length_bucketed_batches


@dataclass
class PretrainConfig:
    encoder: str = "mini"
    max_len: int = 1024
    epochs: int = 6
    batch_tokens: int = 8192
    lr: float = 1e-3
    warmup: float = 0.1
    weight_decay: float = 0.01
    mask_prob: float = 0.15
    seed: int = 0
    device: str = "auto"


def _mlm_batch(collator, segments: list[list[int]], idx: np.ndarray, device) -> dict[str, torch.Tensor]:
    batch = collator([{"input_ids": segments[i]} for i in idx])
    return {k: v.to(device) for k, v in batch.items()}


def masked_positions_loss(model: BertForMaskedLM, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The MLM loss with vocabulary logits computed only where a token was masked.

    HF's `BertForMaskedLM` projects every position onto the vocabulary; the loss only reads the ~15%
    masked ones, so this gives the same value (tests check parity with `model(**batch).loss`) at a
    fraction of the head's cost."""
    hidden = model.bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    selected = batch["labels"] != -100                       # (batch, seq)
    logits = model.cls(hidden[selected])                     # (n_masked, vocab)
    return torch.nn.functional.cross_entropy(logits.float(), batch["labels"][selected])


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """No weight decay on biases and LayerNorm weights (BERT's recipe)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


@torch.no_grad()
def mlm_loss(model, collator, segments, batch_tokens: int, device, seed: int) -> float:
    """Mean MLM loss over `segments` with a fixed masking seed, so epochs are comparable."""
    model.eval()
    state = torch.get_rng_state()
    torch.manual_seed(seed)
    total, count = 0.0, 0
    for idx in length_bucketed_batches([len(s) for s in segments], batch_tokens, shuffle=False, seed=seed):
        batch = _mlm_batch(collator, segments, idx, device)
        n = int((batch["labels"] != -100).sum())
        if n == 0:
            continue
        with autocast(device):
            loss = masked_positions_loss(model, batch)
        total += float(loss) * n
        count += n
    torch.set_rng_state(state)
    model.train()
    return total / max(count, 1)


def pretrain_mlm(tokenizer, train_texts: list[str], dev_texts: list[str], cfg: PretrainConfig,
                 out_dir: str | Path, progress: bool = True) -> pd.DataFrame:
    """Pretrain `BertForMaskedLM` (config `cfg.encoder`, positions up to 1024) on training notes split
    into `cfg.max_len` segments; save it with `save_pretrained` (plus the tokenizer) to `out_dir`.

    Returns the loss curve: one row per logged step (train loss) and per epoch (dev loss)."""
    seed_everything(cfg.seed)
    device = get_device(cfg.device)
    train_segments, _ = encode_notes(tokenizer, train_texts, cfg.max_len)
    dev_segments, _ = encode_notes(tokenizer, dev_texts, cfg.max_len)
    model = BertForMaskedLM(make_bert_config(cfg.encoder, len(tokenizer), tokenizer.pad_token_id)).to(device)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=cfg.mask_prob, return_tensors="pt")
    lengths = [len(s) for s in train_segments]
    steps_per_epoch = len(length_bucketed_batches(lengths, cfg.batch_tokens, shuffle=True, seed=cfg.seed))
    total_steps = steps_per_epoch * cfg.epochs
    optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr,
                                  fused=device.type == "cuda")
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(cfg.warmup * total_steps), total_steps)

    curve = [{"step": 0, "epoch": 0, "split": "dev",
              "loss": mlm_loss(model, collator, dev_segments, cfg.batch_tokens, device, cfg.seed)}]
    step = 0
    bar = tqdm(total=total_steps, desc=f"MLM pretraining ({cfg.encoder})", disable=not progress, mininterval=5)
    model.train()
    for epoch in range(1, cfg.epochs + 1):
        batches = length_bucketed_batches(lengths, cfg.batch_tokens, shuffle=True, seed=cfg.seed + epoch)
        tokens, started = 0, time.perf_counter()
        for idx in batches:
            batch = _mlm_batch(collator, train_segments, idx, device)
            if int((batch["labels"] != -100).sum()) == 0:
                continue  # a batch of tiny segments can draw no mask; nothing to learn from it
            with autocast(device):
                loss = masked_positions_loss(model, batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            tokens += int(batch["attention_mask"].sum())
            curve.append({"step": step, "epoch": epoch, "split": "train", "loss": loss.item()})
            bar.update(1)
            bar.set_postfix(loss=f"{curve[-1]['loss']:.3f}", tok_s=f"{tokens / (time.perf_counter() - started):.0f}")
        dev = mlm_loss(model, collator, dev_segments, cfg.batch_tokens, device, cfg.seed)
        curve.append({"step": step, "epoch": epoch, "split": "dev", "loss": dev,
                      "tokens_per_s": tokens / (time.perf_counter() - started)})
    bar.close()

    out_dir = Path(out_dir)
    with atomic_path(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json(tmp / "pretrain_config.json", asdict(cfg) | {"train_segments": len(train_segments), "steps": step})
    return pd.DataFrame(curve)


def save_loss_curve(curve: pd.DataFrame, csv_path: str | Path, png_path: str | Path, title: str) -> None:
    """Loss curve table and figure (train per step, dev per epoch)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    write_csv(csv_path, curve)
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=120)
    train, dev = curve[curve["split"] == "train"], curve[curve["split"] == "dev"]
    if len(train):
        smooth = train["loss"].rolling(max(1, len(train) // 30), min_periods=1).mean()
        ax.plot(train["step"], smooth, label="train (smoothed)")
    ax.plot(dev["step"], dev["loss"], "o-", label="dev")
    ax.set(xlabel="optimizer step", ylabel="MLM loss", title=title)
    ax.legend()
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


@torch.no_grad()
def mlm_example(model_dir: str | Path, tokenizer, text: str, n_tokens: int = 180, mask_prob: float = 0.15,
                seed: int = 0) -> pd.DataFrame:
    """Figure 1: mask tokens of one note and let the pretrained model fill them in.

    Returns one row per token: `token` (original), `masked` (bool), `predicted` (model's top token at
    masked positions), `correct`."""
    model = BertForMaskedLM.from_pretrained(model_dir).eval()
    ids = tokenizer(text, add_special_tokens=True, truncation=True, max_length=n_tokens)["input_ids"]
    ids = torch.tensor([ids])
    special = torch.tensor(tokenizer.get_special_tokens_mask(ids[0].tolist(), already_has_special_tokens=True)).bool()
    gen = torch.Generator().manual_seed(seed)
    masked = (torch.rand(ids.shape[1], generator=gen) < mask_prob) & ~special
    inputs = ids.clone()
    inputs[0, masked] = tokenizer.mask_token_id
    predicted = model(input_ids=inputs, attention_mask=torch.ones_like(inputs)).logits[0].argmax(-1)
    tokens = tokenizer.convert_ids_to_tokens(ids[0].tolist())
    preds = tokenizer.convert_ids_to_tokens(predicted.tolist())
    rows = [
        {"token": t, "masked": bool(m), "predicted": p if m else "", "correct": bool(m) and p == t}
        for t, p, m, s in zip(tokens, preds, masked.tolist(), special.tolist()) if not s
    ]
    return pd.DataFrame(rows)


def mlm_example_figure(example: pd.DataFrame, png_path: str | Path, title: str, show_text: bool = True,
                       chars_per_line: int = 130, fontsize: float = 8.5) -> None:
    """Render Figure 1: the note's tokens in reading order, model predictions for [MASK] highlighted
    (green: the original token, orange: another token). Without `show_text` only positions are drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    words: list[tuple[str, str | None]] = []  # (text, highlight colour)
    for row in example.itertuples():
        shown = row.predicted if row.masked else row.token
        if not show_text:
            shown = "[MASK]" if row.masked else "▪"
        colour = ("#7fd37f" if row.correct else "#f5a55a") if row.masked else None
        if shown.startswith("##") and words and colour is None and words[-1][1] is None:
            words[-1] = (words[-1][0] + shown[2:], None)
        else:
            words.append((shown, colour))
    lines, line, width = [], [], 0
    for w, c in words:
        if width + len(w) + 1 > chars_per_line and line:
            lines.append(line)
            line, width = [], 0
        line.append((w, c))
        width += len(w) + 1
    lines.append(line)
    width_in = 11.0
    char_w = 0.6 * fontsize / (72 * width_in * 0.98)  # a monospace glyph is ~0.6 em wide, in axes units
    fig = plt.figure(figsize=(width_in, 0.28 * len(lines) + 0.9), dpi=120)
    ax = fig.add_axes([0.01, 0.01, 0.98, 0.98 - 0.5 / fig.get_figheight()])
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(len(lines) + 0.5, -0.2)
    for y, ln in enumerate(lines):
        x = 0.0
        for w, c in ln:
            bbox = {"facecolor": c, "edgecolor": "none", "pad": 1.5} if c else None
            ax.text(x, y + 0.5, w, family="monospace", fontsize=fontsize, va="center", bbox=bbox)
            x += (len(w) + 1) * char_w
    n_masked = int(example["masked"].sum())
    acc = example.loc[example["masked"], "correct"].mean() if n_masked else float("nan")
    fig.suptitle(f"{title} — {n_masked} masked tokens, {acc:.0%} predicted exactly "
                 "(green: original token, orange: other token)", fontsize=9)
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
