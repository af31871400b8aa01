"""Notebook 03 — masked-language-model pretraining of HF BERT on EHR notes (paper 3.2, 4.2.1, Table 1, Figure 1).

MLM only (15% of tokens, 80/10/10 replacement as in BERT); the paper also used next-sentence
prediction, which this stage leaves out (a documented non-paper variant). Checkpoints every
N steps with everything needed to resume exactly, `torchrun` + DDP (see `distributed`), and continued
pretraining of the off-the-shelf model with 1,024 positions (the paper's "Finetuned BERT (1024)").
Batches run packed (`models.packed`: the padded batch's real tokens only, parity-tested against
`MaskedLMLoss`, which stays the padded HF reference).
"""
from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from transformers import BertForMaskedLM, DataCollatorForLanguageModeling

from bertxml_lib.core.atomic import atomic_path, write_json
from bertxml_lib.core.progress import progress_bar, quiet_load
from bertxml_lib.core.runtime import autocast, seed_everything
from bertxml_lib.models.encoders import make_bert_config
from bertxml_lib.models.modeling import extend_position_embeddings
from bertxml_lib.models.offshelf import offshelf_model_dir
from bertxml_lib.models.packed import PackedMaskedLMLoss, unpad_batch
from bertxml_lib.text.segments import encode_notes, length_bucketed_batches
from bertxml_lib.training.distributed import (
    DistContext,
    all_reduce_sum,
    barrier,
    gather_objects,
    init_distributed,
    shard_rows,
)
from bertxml_lib.training.optim import linear_warmup_schedule, optimizer_step, param_groups

CHECKPOINT_NAME = "checkpoint.pt"


@dataclass
class PretrainConfig:
    """Defaults equal the base profile (`pretrain.*`; tests/test_defaults.py)."""
    encoder: str = "tiny"
    max_len: int = 1024
    epochs: int = 3
    batch_tokens: int = 4096      # token budget of one global (all ranks together) length-bucketed batch
    lr: float = 1e-3
    warmup: float = 0.1
    weight_decay: float = 0.01
    mask_prob: float = 0.15
    seed: int = 0
    device: str = "auto"
    dropout: float | None = None  # None keeps the encoder's 0.1; 0 makes DDP equal one process exactly


class MaskedLMLoss(torch.nn.Module):
    """Sum of MLM cross-entropy over masked positions, vocabulary logits computed only there.

    A module (not a function) so DDP can wrap it: DDP's gradient hooks are armed by its forward."""

    def __init__(self, mlm: BertForMaskedLM):
        super().__init__()
        self.mlm = mlm

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        hidden = self.mlm.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        selected = labels != -100                                # (batch, seq)
        logits = self.mlm.cls(hidden[selected])                  # (n_masked, vocab)
        return torch.nn.functional.cross_entropy(logits.float(), labels[selected], reduction="sum")


def masked_positions_loss(model: BertForMaskedLM, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The MLM loss with vocabulary logits computed only where a token was masked.

    HF's `BertForMaskedLM` projects every position onto the vocabulary; the loss only reads the ~15%
    masked ones, so this gives the same value (tests check parity with `model(**batch).loss`) at a
    fraction of the head's cost."""
    n_masked = (batch["labels"] != -100).sum().clamp(min=1)
    return MaskedLMLoss(model)(batch["input_ids"], batch["attention_mask"], batch["labels"]) / n_masked


def _collator(tokenizer, mask_prob: float, seed: int) -> DataCollatorForLanguageModeling:
    """MLM collator drawing masks from its own generator, so dropout (global RNG) never shifts the masks."""
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=mask_prob, return_tensors="pt",
                                               seed=seed)
    collator.generator = torch.Generator().manual_seed(seed)
    return collator


def _mlm_batch(collator, segments: list[list[int]], idx: np.ndarray, device) -> dict[str, torch.Tensor]:
    batch = collator([{"input_ids": segments[i]} for i in idx])
    return {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "labels")}


def _rank_rows(batch: dict[str, torch.Tensor], rows: np.ndarray) -> dict[str, torch.Tensor]:
    """This rank's rows of a global batch, trimmed to their own longest row (less padding to compute)."""
    index = torch.as_tensor(rows, device=batch["input_ids"].device)
    local = {k: v[index] for k, v in batch.items()}
    width = int(local["attention_mask"].sum(dim=1).max())
    return {k: v[:, :width] for k, v in local.items()}


@torch.no_grad()
def mlm_loss(model, tokenizer, segments, batch_tokens: int, device, seed: int, mask_prob: float = 0.15,
             ctx: DistContext = DistContext()) -> float:
    """Mean MLM loss over `segments` with fixed masks (a fresh seeded collator), so epochs are comparable.

    Ranks evaluate alternate batches and sum (loss, count); every rank draws every batch's masks so the
    result does not depend on the number of ranks."""
    model.eval()
    collator = _collator(tokenizer, mask_prob, seed)
    totals = torch.zeros(2, dtype=torch.float64)
    batches = length_bucketed_batches([len(s) for s in segments], batch_tokens, shuffle=False, seed=seed)
    for i, idx in enumerate(batches):
        batch = _mlm_batch(collator, segments, idx, device)
        n = int((batch["labels"] != -100).sum())
        if n == 0 or i % ctx.world_size != ctx.rank:
            continue
        with autocast(device):
            totals += torch.tensor([float(PackedMaskedLMLoss(model)(**unpad_batch(batch))), n], dtype=torch.float64)
    model.train()
    total, count = all_reduce_sum(totals, ctx).tolist()
    return total / max(count, 1)


def _rng_state(collator) -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
            "masking": collator.generator.get_state()}


def _set_rng_state(state: dict, collator) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None:
        torch.cuda.set_rng_state_all(state["cuda"])
    collator.generator.set_state(state["masking"])


def _save_checkpoint(path: Path, ctx: DistContext, collator, **state) -> None:
    """Rank 0 writes model, optimizer, scheduler, every rank's RNG states and the data position, atomically
    (write-then-rename: a kill mid-write leaves the previous checkpoint intact)."""
    rng = gather_objects(_rng_state(collator), ctx)
    if ctx.is_main:
        with atomic_path(path) as tmp:
            torch.save(state | {"rng": rng, "world_size": ctx.world_size}, tmp)
    barrier(ctx)


def pretrain_mlm(tokenizer, train_texts: list[str], dev_texts: list[str], cfg: PretrainConfig,
                 out_dir: str | Path, progress: bool = True, *, checkpoint_dir: str | Path | None = None,
                 checkpoint_every: int = 0, resume: bool = False,
                 model: BertForMaskedLM | None = None, cache_dir: str | Path | None = None) -> pd.DataFrame:
    """Pretrain `BertForMaskedLM` (config `cfg.encoder`, positions up to 1024; or continue `model`) on
    training notes split into `cfg.max_len` segments; rank 0 saves it with `save_pretrained` (plus the
    tokenizer) to `out_dir`.

    Every `checkpoint_every` steps `checkpoint_dir/checkpoint.pt` is replaced; `resume=True` continues
    from it exactly (same losses at the same steps as an uninterrupted run), or starts afresh if absent.
    Under `torchrun` each rank computes a share of every global batch (DDP). `cache_dir` (a run's
    `RunPaths.token_cache_dir`) caches the notes' token ids on disk (`token_cache`; speed only).
    Returns the loss curve: one row per step (train loss) and per epoch (dev loss)."""
    ctx, device = init_distributed(cfg.device)
    seed_everything(cfg.seed)
    train_segments, _ = encode_notes(tokenizer, train_texts, cfg.max_len, cache_dir=cache_dir)  # token cache: optional
    dev_segments, _ = encode_notes(tokenizer, dev_texts, cfg.max_len, cache_dir=cache_dir)
    if model is None:
        config = make_bert_config(cfg.encoder, len(tokenizer), tokenizer.pad_token_id)
        if cfg.dropout is not None:
            config.hidden_dropout_prob = config.attention_probs_dropout_prob = cfg.dropout
        model = BertForMaskedLM(config)
    elif model.config.vocab_size != len(tokenizer):
        raise ValueError(f"model vocabulary ({model.config.vocab_size}) != tokenizer's ({len(tokenizer)})")
    model.to(device)
    if ctx.rank:
        torch.manual_seed(cfg.seed + ctx.rank)  # own dropout masks per rank; MLM masks come from the collator
    loss_module = PackedMaskedLMLoss(model)  # no padded position computed; same loss as MaskedLMLoss
    if ctx.active:
        loss_module = torch.nn.parallel.DistributedDataParallel(
            loss_module, device_ids=[device.index] if device.type == "cuda" else None)
    collator = _collator(tokenizer, cfg.mask_prob, cfg.seed)
    lengths = [len(s) for s in train_segments]
    steps_per_epoch = len(length_bucketed_batches(lengths, cfg.batch_tokens, shuffle=True, seed=cfg.seed))
    total_steps = steps_per_epoch * cfg.epochs
    optimizer = torch.optim.AdamW(param_groups([(model.named_parameters(), cfg.lr)], cfg.weight_decay), lr=cfg.lr,
                                  fused=device.type == "cuda")
    scheduler = linear_warmup_schedule(optimizer, cfg.warmup, total_steps)

    ckpt_path = Path(checkpoint_dir) / CHECKPOINT_NAME if checkpoint_dir else None
    epoch0, batch0, step, resumed_from = 1, 0, 0, None
    if resume and ckpt_path is not None and ckpt_path.is_file():
        state = torch.load(ckpt_path, map_location="cpu", weights_only=False)  # our own file: RNG tuples inside
        if state["config"] != asdict(cfg) or state["world_size"] != ctx.world_size:
            raise ValueError(f"{ckpt_path}: written with config {state['config']} on {state['world_size']} "
                             f"rank(s); cannot resume with {asdict(cfg)} on {ctx.world_size}")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        epoch0, batch0, step, curve = state["epoch"], state["batch"], state["step"], state["curve"]
        resumed_from = step
        _set_rng_state(state["rng"][ctx.rank], collator)
    else:
        curve = [{"step": 0, "epoch": 0, "split": "dev", "loss": mlm_loss(
            model, tokenizer, dev_segments, cfg.batch_tokens, device, cfg.seed, cfg.mask_prob, ctx)}]
    bar = progress_bar(total=total_steps, initial=step, desc=f"MLM pretraining ({cfg.encoder})",
               disable=not (progress and ctx.is_main), mininterval=5)
    model.train()
    for epoch in range(epoch0, cfg.epochs + 1):
        batches = length_bucketed_batches(lengths, cfg.batch_tokens, shuffle=True, seed=cfg.seed + epoch)
        tokens, started = 0, time.perf_counter()
        for b in range(batch0 if epoch == epoch0 else 0, len(batches)):
            batch = _mlm_batch(collator, train_segments, batches[b], device)  # same masks on every rank
            n_masked = int((batch["labels"] != -100).sum())
            if n_masked == 0:
                continue  # a batch of tiny segments can draw no mask; nothing to learn from it
            rows = shard_rows(len(batches[b]), ctx)
            with autocast(device):
                # A rank without rows runs row 0 at weight 0 so DDP's all-reduce still sees its gradients.
                loss_sum = loss_module(**unpad_batch(_rank_rows(batch, rows if len(rows) else np.zeros(1, np.int64))))
            loss_sum = loss_sum if len(rows) else loss_sum * 0.0
            # DDP averages gradients over ranks: scaling by world/n_masked makes that the global mean loss.
            optimizer_step(loss_sum * (ctx.world_size / n_masked), model, optimizer, scheduler)
            step += 1
            tokens += int(batch["attention_mask"].sum())
            loss = float(all_reduce_sum(loss_sum.detach().double(), ctx)) / n_masked
            curve.append({"step": step, "epoch": epoch, "split": "train", "loss": loss})
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", tok_s=f"{tokens / (time.perf_counter() - started):.0f}")
            if ckpt_path is not None and checkpoint_every > 0 and step % checkpoint_every == 0:
                _save_checkpoint(ckpt_path, ctx, collator, model=model.state_dict(), optimizer=optimizer.state_dict(),
                                 scheduler=scheduler.state_dict(), epoch=epoch, batch=b + 1, step=step,
                                 curve=list(curve), config=asdict(cfg))
        dev = mlm_loss(model, tokenizer, dev_segments, cfg.batch_tokens, device, cfg.seed, cfg.mask_prob, ctx)
        curve.append({"step": step, "epoch": epoch, "split": "dev", "loss": dev,
                      "tokens_per_s": tokens / (time.perf_counter() - started)})
    bar.close()

    if ctx.is_main:
        with atomic_path(Path(out_dir)) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            write_json(tmp / "pretrain_config.json", asdict(cfg) | {"train_segments": len(train_segments),
                                                                    "steps": step, "world_size": ctx.world_size,
                                                                    "resumed_from_step": resumed_from})
    barrier(ctx)
    return pd.DataFrame(curve)


def continue_pretraining(train_texts: list[str], dev_texts: list[str], cfg: PretrainConfig, out_dir: str | Path,
                         progress: bool = True, *, model_dir: str | Path | None = None, new_max: int = 1024,
                         **kwargs) -> pd.DataFrame:
    """Paper's "Finetuned BERT (1024)": the off-the-shelf `BertModel` with positions extended to `new_max`
    (old rows kept, new ones random; `modeling.extend_position_embeddings`), a fresh MLM head, and MLM
    continued on our notes with the model's own general-domain tokenizer. Other arguments as `pretrain_mlm`."""
    from transformers import AutoTokenizer, BertModel

    if cfg.max_len > new_max:
        raise ValueError(f"cfg.max_len={cfg.max_len} exceeds the {new_max} position embeddings")
    model_dir = Path(model_dir or offshelf_model_dir())
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.model_max_length = new_max
    encoder = quiet_load(BertModel.from_pretrained, model_dir, add_pooling_layer=False, attn_implementation="sdpa",
                         expected_unused=("cls.", "pooler."))
    extend_position_embeddings(encoder, new_max, seed=cfg.seed)
    config = encoder.config
    if cfg.dropout is not None:
        config.hidden_dropout_prob = config.attention_probs_dropout_prob = cfg.dropout
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)  # the fresh MLM head's initialisation
        model = BertForMaskedLM(config)
    # The decoder weight is tied to the word embeddings, so loading the encoder also sets it.
    model.bert.load_state_dict(encoder.state_dict())
    return pretrain_mlm(tokenizer, train_texts, dev_texts, cfg, out_dir, progress, model=model, **kwargs)


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
