"""The benchmark ladder — the paper's padded HF setup vs SDPA, length bucketing, sparse MLM head, unpadded
packed segments, the CPU attention-dropout kernel, CUDA extras.

    python -m bertxml_lib.bench {pretrain,finetune,inference} [--quick] [--json FILE] [--encoder NAME]
    python -m bertxml_lib.bench noise FILE.json ... --json FILE      (`bench.noise`: runs agree?)
    python -m bertxml_lib.bench cohort --notes 10000,100000,1000000 --json FILE    (`bench.cohort`)

One run measures the baseline (HF `BertForMaskedLM` / `BertForIcdCoding`, eager attention, fp32, every
segment padded to max_len 1024: what the paper ran, 4.2) and each cumulative rung on the same notes
(synthetic, the paper's length distribution, >= 240 notes so length buckets fill as they do on a cohort),
the same model config and the same machine, in interleaved rounds (`bench.rounds`): the speedup is the
median over rounds of the rung's real-token throughput (inference: notes/s) over the baseline's in the
same round, reported with its spread. Parity: the rung's loss and gradients (inference: probabilities)
on one fixed batch (dropout off) against the baseline's.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from transformers import BertForMaskedLM, DataCollatorForLanguageModeling

from bertxml_lib.bench import rounds
from bertxml_lib.bench.cohort import main as cohort_main
from bertxml_lib.bench.noise import main as noise_main
from bertxml_lib.core.atomic import write_json
from bertxml_lib.core.runtime import autocast, seed_everything
from bertxml_lib.data.synthetic import generate_synthetic
from bertxml_lib.models.dropout_attention import sdpa_only
from bertxml_lib.models.encoders import ENCODERS, make_bert_config
from bertxml_lib.models.modeling import BertForIcdCoding
from bertxml_lib.models.packed import PackedMaskedLMLoss, icd_forward_packed
from bertxml_lib.text.segments import encode_notes, length_bucketed_batches, pack_segments
from bertxml_lib.text.tokenizer import train_wordpiece
from bertxml_lib.training.pretrain import masked_positions_loss

MAX_LEN = 1024
N_LABELS = 50
# Parity tolerances: fp32 reorders sums only (SDPA kernels, shorter padding, packing), bf16 rounds every matmul.
TOL = {"fp32": {"loss_rel": 1e-4, "grad_rel_l2": 1e-3, "prob_abs": 1e-4},
       "bf16": {"loss_rel": 2e-2, "grad_rel_l2": 5e-2, "prob_abs": 2e-2}}


@dataclass
class Rung:
    name: str
    attention: str = "sdpa"
    bucketed: bool = True
    sparse_head: bool = False
    packed: bool = False          # segments concatenated, no padded position computed (`models.packed`)
    dropout_kernel: bool = False  # training attention dropout through `models.dropout_attention` (else SDPA)
    cuda_extras: bool = False     # bf16 autocast, fused AdamW, torch.compile (bucketed shapes)
    note: str = ""


def ladder(task: str) -> list[Rung]:
    pretrain = task == "pretrain"
    rungs = [Rung("1_sdpa_attention", bucketed=False, note="SDPA instead of eager; still padded to 1024"),
             Rung("2_length_bucketing", note="segments sorted into token-budget batches (budget = baseline batch)")]
    if pretrain:
        rungs.append(Rung("3_sparse_mlm_head", sparse_head=True, note="vocabulary logits only at masked positions"))
    rungs.append(Rung("4_unpadded_packed", sparse_head=pretrain, packed=True,
                      note="the bucketed batches' segments packed into one row, attention kept within each "
                           "segment (variable-length SDPA), fused QKV: no padded position computed"))
    if task != "inference":
        rungs.append(Rung("5_cpu_dropout_attention", sparse_head=pretrain, packed=True, dropout_kernel=True,
                          note="attention dropout (0.1) in our own CPU kernel instead of SDPA's math fallback "
                               "(parity at dropout 0.1 against SDPA's formula with the same mask: "
                               "tests/test_dropout_attention.py)"))
    rungs.append(Rung("6_cuda_bf16_fused_compile", sparse_head=pretrain, cuda_extras=True,
                      note="bf16 autocast, fused AdamW, torch.compile over shapes padded to a multiple of 64"))
    return rungs


@dataclass
class Workload:
    tokenizer: object
    segments: list[list[int]]          # note segments, [CLS] ... [SEP], <= MAX_LEN
    note_index: np.ndarray             # (n_segments,) note of each segment
    n_notes: int
    mlm_inputs: list[torch.Tensor] = field(default_factory=list)   # fixed 80/10/10 masking per segment
    mlm_labels: list[torch.Tensor] = field(default_factory=list)
    labels: np.ndarray | None = None   # (n_segments, N_LABELS) the note's codes


def build_workload(n_notes: int, seed: int, vocab_size: int) -> Workload:
    """Synthetic notes (paper length distribution: median ~160 words, p90 ~870 tokens), a WordPiece
    vocabulary trained on them, segments of <= 1024 tokens, fixed MLM masks and the top-50 codes."""
    frames = list(generate_synthetic(max(8, n_notes // 6), 400, seed))
    notes = pd.concat([f[0] for f in frames], ignore_index=True)
    codes = pd.concat([f[1] for f in frames], ignore_index=True)
    with tempfile.TemporaryDirectory() as tmp:
        tok = train_wordpiece(notes["text"].tolist(), vocab_size, 2, tmp)
    picked = notes.sample(n=min(n_notes, len(notes)), random_state=seed).reset_index(drop=True)
    segments, note_index = encode_notes(tok, picked["text"].tolist(), MAX_LEN)
    top = codes["code"].value_counts().index[:N_LABELS].tolist()
    has = codes[codes["code"].isin(top)].groupby("note_id")["code"].apply(set)
    note_labels = np.array([[c in has.get(n, set()) for c in top] for n in picked["note_id"]], dtype=np.float32)
    collator = DataCollatorForLanguageModeling(tok, mlm_probability=0.15, return_tensors="pt", seed=seed)
    work = Workload(tok, segments, note_index, len(picked), labels=note_labels[note_index])
    for s in segments:
        masked = collator([{"input_ids": s}])
        work.mlm_inputs.append(masked["input_ids"][0])
        work.mlm_labels.append(masked["labels"][0])
    return work


def make_batch(work: Workload, idx: np.ndarray, task: str, pad_to: int | None, device,
               multiple: int = 1) -> dict[str, torch.Tensor]:
    """Rows `idx` padded to `pad_to` (the baseline's 1024) or to their longest row rounded up to `multiple`."""
    lengths = [len(work.segments[i]) for i in idx]
    width = pad_to or -(-max(lengths) // multiple) * multiple
    ids = torch.full((len(idx), width), work.tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(idx), width), dtype=torch.long)
    out = {"input_ids": ids, "attention_mask": mask}
    if task == "pretrain":
        out["labels"] = torch.full((len(idx), width), -100, dtype=torch.long)
    for row, (i, n) in enumerate(zip(idx, lengths)):
        mask[row, :n] = 1
        if task == "pretrain":
            ids[row, :n], out["labels"][row, :n] = work.mlm_inputs[i], work.mlm_labels[i]
        else:
            ids[row, :n] = torch.as_tensor(work.segments[i])
    if task != "pretrain":
        out["labels"] = torch.from_numpy(work.labels[idx])
    return {k: v.to(device) for k, v in out.items()}


def make_packed_batch(work: Workload, idx: np.ndarray, task: str, device) -> dict[str, torch.Tensor]:
    """Segments `idx` packed into one row (`segments.pack_segments`); MLM inputs and labels flattened alike."""
    rows = [work.mlm_inputs[i].tolist() for i in idx] if task == "pretrain" else [work.segments[i] for i in idx]
    input_ids, position_ids, lengths = pack_segments(rows)
    out = {"input_ids": input_ids, "position_ids": position_ids, "lengths": lengths}
    out["labels"] = torch.cat([work.mlm_labels[i] for i in idx]) if task == "pretrain" else torch.from_numpy(work.labels[idx])
    return {k: (v if k == "lengths" else v.to(device)) for k, v in out.items()}


def make_model(task: str, encoder: str, vocab: int, seed: int):
    """The same weights for every rung: built once (eager), copied per rung with its attention kernel."""
    seed_everything(seed)
    config = make_bert_config(encoder, vocab)
    config._attn_implementation = "eager"
    if task == "pretrain":
        return BertForMaskedLM(config)
    config.icd_head, config.icd_codes, config.xml_hidden = "xml", [f"C{i}" for i in range(N_LABELS)], None
    return BertForIcdCoding(config)


def _loss(task: str, model, batch, rung: Rung | None) -> torch.Tensor:
    if rung is not None and rung.packed:
        if task == "pretrain":
            n_masked = (batch["labels"] != -100).sum().clamp(min=1)
            return PackedMaskedLMLoss(model)(**batch) / n_masked
        return icd_forward_packed(model, **batch).loss
    if task == "pretrain":
        return masked_positions_loss(model, batch) if rung and rung.sparse_head else model(**batch).loss
    return model(batch["input_ids"], batch["attention_mask"], labels=batch.get("labels")).loss


def _logits(model, batch, rung: Rung | None) -> torch.Tensor:
    if rung is not None and rung.packed:
        return icd_forward_packed(model, batch["input_ids"], batch["position_ids"], batch["lengths"]).logits
    return model(batch["input_ids"], batch["attention_mask"]).logits


def step_flops(task: str, encoder: str, vocab: int, seq_lens: list[int], masked: int | None, train: bool) -> float:
    """Matmul FLOPs executed for one batch of rows of computed lengths `seq_lens` (padding included), 2 per
    multiply-add; backward = 2x forward. `masked`: vocabulary logits only at that many positions (else all)."""
    c = ENCODERS[encoder]
    d, layers, inter = c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"]
    positions = int(sum(seq_lens))
    fwd = 2 * positions * layers * (4 * d * d + 2 * d * inter) + 4 * sum(s * s for s in seq_lens) * d * layers
    if task == "pretrain":
        fwd += 2 * (positions if masked is None else masked) * (d * d + d * vocab)
    else:
        fwd += 4 * positions * N_LABELS * d + 2 * len(seq_lens) * N_LABELS * d * d  # label attention (eqs. 2-3) + W_b
    return float(fwd * (3 if train else 1))


def parity_pass(task: str, model, work: Workload, rung: Rung | None, device) -> dict:
    """Loss, gradients (training) or probabilities (inference) on the first 4 segments, dropout off."""
    idx = np.arange(min(4, len(work.segments)))
    amp = bool(rung and rung.cuda_extras)
    if rung is not None and rung.packed:
        batch = make_packed_batch(work, idx, task, device)
    else:
        pad_to = MAX_LEN if rung is None or not rung.bucketed else None
        batch = make_batch(work, idx, task, pad_to, device, multiple=64 if amp else 1)
    model.eval()
    model.zero_grad(set_to_none=True)
    if task == "inference":
        with torch.inference_mode(), autocast(device, amp):
            logits = _logits(model, batch, rung)
        return {"loss": float(torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), batch["labels"])),
                "probs": torch.sigmoid(logits.float()).cpu()}
    with autocast(device, amp):
        loss = _loss(task, model, batch, rung)
    loss.backward()
    grads = torch.cat([p.grad.flatten().float().cpu() for p in model.parameters() if p.grad is not None])
    model.zero_grad(set_to_none=True)
    return {"loss": float(loss.detach()), "grads": grads}


def compare(ref: dict, got: dict, amp: bool) -> dict:
    """Parity fields: relative loss difference, relative L2 gradient difference / max probability difference."""
    tol = TOL["bf16" if amp else "fp32"]
    out = {"loss_baseline": ref["loss"], "loss": got["loss"], "loss_rel_diff": abs(got["loss"] - ref["loss"]) / abs(ref["loss"]),
           "tolerance": tol, "batch": "first 4 segments, same content and masks, dropout off"}
    ok = out["loss_rel_diff"] <= tol["loss_rel"]
    if "grads" in ref:
        out["grad_rel_l2"] = float((got["grads"] - ref["grads"]).norm() / ref["grads"].norm())
        ok = ok and out["grad_rel_l2"] <= tol["grad_rel_l2"]
    if "probs" in ref:
        out["prob_max_abs_diff"] = float((got["probs"] - ref["probs"]).abs().max())
        ok = ok and out["prob_max_abs_diff"] <= tol["prob_abs"]
    return out | {"ok": bool(ok)}


def contender(task: str, name: str, model, work: Workload, rung: Rung | None, encoder: str, device,
              batch_size: int, seed: int) -> rounds.Contender:
    """A rung's (or the baseline's) batch plan over every segment and its step; one untimed warm-up step."""
    lengths = np.array([len(s) for s in work.segments])
    vocab = len(work.tokenizer)
    amp = bool(rung and rung.cuda_extras)
    padded = rung is None or not rung.bucketed
    if padded:
        order = np.random.default_rng(seed).permutation(len(lengths))
        plan = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    else:
        plan = length_bucketed_batches(lengths, batch_size * MAX_LEN, shuffle=task != "inference", seed=seed)
    train = task != "inference"
    model.train(train)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=amp) if train else None
    forward = torch.compile(model) if amp else model
    sparse = bool(rung and rung.sparse_head)

    def step(idx: np.ndarray) -> dict:
        with contextlib.nullcontext() if rung is not None and rung.dropout_kernel else sdpa_only():
            return _step(idx)

    def _step(idx: np.ndarray) -> dict:
        if rung is not None and rung.packed:
            batch = make_packed_batch(work, idx, task, device)
            seq_lens = batch["lengths"].tolist()
        else:
            batch = make_batch(work, idx, task, MAX_LEN if padded else None, device, multiple=64 if amp else 1)
            seq_lens = [batch["input_ids"].shape[1]] * len(idx)
        if train:
            with autocast(device, amp):
                loss = _loss(task, forward, batch, rung)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        else:
            with torch.inference_mode(), autocast(device, amp):
                torch.sigmoid(_logits(forward, batch, rung).float()).cpu()
        masked = int((batch["labels"] != -100).sum()) if task == "pretrain" and sparse else None
        return {"real": int(lengths[idx].sum()), "positions": int(sum(seq_lens)),
                "flops": step_flops(task, encoder, vocab, seq_lens, masked, train)}

    step(plan[0])  # warm-up (allocator, kernels, compile)
    return rounds.Contender(name, plan, step, padded)


def other_runnable(wait_s: float = 0.3, samples: int = 15) -> float | None:
    """Mean number of runnable threads besides this one, sampled now from /proc/loadavg (Linux; else None).
    Waits `wait_s` first so this process's OpenMP workers stop spinning and are not counted."""
    try:
        time.sleep(wait_s)
        counts = []
        for _ in range(samples):
            with open("/proc/loadavg") as f:
                counts.append(int(f.read().split()[3].split("/")[0]))
            time.sleep(0.02)
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, float(np.mean(counts)) - 1)  # the reader itself is running


def threads_for_load() -> tuple[int, str]:
    """Intra-op threads for the next round: every core when nothing else runs, 1 when other threads want the
    cores. Two OpenMP threads of a process that gets less than the machine make every parallel region wait
    for the other thread to be scheduled: on this 2-core machine at load ~20 that slowed a packed training step
    13x (29.7 s vs 2.2 s with 1 thread) and a padded one 1.5x, so the ratio would measure the scheduler.
    The run queue is sampled before every round, as the 1-minute load average lags a neighbour by a minute."""
    cores = os.cpu_count() or 1
    others = other_runnable()
    if others is None:  # no /proc/loadavg: the 1-minute load average
        load = os.getloadavg()[0]
        return (1, f"1-minute load average {load:.1f} >= {cores} cores") if load >= cores else \
            (cores, f"1-minute load average {load:.1f} < {cores} cores")
    if others >= 0.5:
        return 1, f"{others:.1f} other runnable threads on {cores} cores"
    return cores, f"{others:.1f} other runnable threads on {cores} cores"


def run_bench(task: str, quick: bool = False, encoder: str | None = None, n_notes: int | None = None,
              batch_size: int | None = None, seed: int = 0, device: str = "auto", progress: bool = True,
              n_rounds: int | None = None, padded_batches: int | None = None, threads: int = 0) -> dict:
    """Baseline and every rung of `task` ('pretrain', 'finetune', 'inference') in one process, interleaved
    over `n_rounds` rounds; returns the JSON dict. `threads` 0: `threads_for_load()`."""
    if task not in ("pretrain", "finetune", "inference"):
        raise ValueError(f"task must be pretrain, finetune or inference, got {task!r}")
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device))
    encoder = encoder or ("mini" if quick or dev.type == "cpu" else "small")
    n_notes = n_notes or (240 if quick else 480) * (1 if task != "inference" else 2)
    batch_size = batch_size or (4 if dev.type == "cpu" else 32)
    n_rounds = n_rounds or (7 if quick else 15)
    padded_batches = padded_batches or (2 if quick else 4)
    log = print if progress else (lambda *a, **k: None)
    fixed_threads = threads
    threads, threads_why = (threads, "--threads") if threads else threads_for_load()
    threads_before = torch.get_num_threads()
    torch.set_num_threads(threads)
    work = build_workload(n_notes, seed, vocab_size=4000 if quick else 8000)
    lengths = np.array([len(s) for s in work.segments])
    log(f"[bench {task}] {work.n_notes} notes, {len(work.segments)} segments, encoder {encoder}, {n_rounds} rounds on {dev}, "
        f"{threads} thread(s) ({threads_why})")
    base_model = make_model(task, encoder, len(work.tokenizer), seed).to(dev)
    reference = parity_pass(task, base_model, work, None, dev)
    base = contender(task, "baseline_hf_eager_fp32_padded_1024", copy.deepcopy(base_model), work, None, encoder,
                     dev, batch_size, seed)
    contenders, rows = [base], []
    for rung in ladder(task):
        row = {"name": rung.name, "note": rung.note}
        if rung.cuda_extras and dev.type != "cuda":
            rows.append(row | {"skipped": "needs CUDA (bf16 autocast is CUDA-only here; fused AdamW and "
                                          "torch.compile target GPU kernels)", "speedup": None,
                               "real_tokens_per_s": None, "parity": None})
            continue
        if rung.dropout_kernel and dev.type != "cpu":
            rows.append(row | {"skipped": "CPU only: CUDA's fused SDPA kernels take the dropout themselves",
                               "speedup": None, "real_tokens_per_s": None, "parity": None})
            continue
        model = copy.deepcopy(base_model)
        model.set_attn_implementation(rung.attention)
        row["parity"] = compare(reference, parity_pass(task, model, work, rung, dev), rung.cuda_extras)
        contenders.append(contender(task, rung.name, model, work, rung, encoder, dev, batch_size, seed))
        rows.append(row)
    n_rounds = min(n_rounds, *(len(c.plan) for c in contenders if not c.padded))
    for c in contenders:
        rounds.assign_rounds(c, n_rounds, padded_batches, lengths)
    pick = None if fixed_threads or dev.type != "cpu" else threads_for_load
    peaks, round_threads = rounds.interleave(contenders, n_rounds, dev, log, pick)
    torch.set_num_threads(threads_before)
    notes_per_token = work.n_notes / float(lengths.sum())
    key = "notes_per_s" if task == "inference" else "real_tokens_per_s"
    measured = {c.name: rounds.summarize(c, base, lengths, peaks, MAX_LEN) for c in contenders}
    for r in measured.values():
        r["notes_per_s"] = r["real_tokens_per_s"] * notes_per_token  # every segment of a note counts once
    baseline = measured[base.name] | {"name": base.name}
    for row in rows:
        if row["name"] in measured:
            row |= measured[row["name"]]
            s = row["speedup_spread"]
            log(f"  {row['name']}: {row['speedup']:.2f}x (rounds {s['min']:.2f}-{s['max']:.2f}), "
                f"pad {row['pad_fraction']:.2f}, share of peak {row['share_of_matmul_peak']:.2f}, parity ok={row['parity']['ok']}")
    return {"task": task, "machine": rounds.machine(dev), "speedup_metric": key, "encoder": encoder,
            "model_config": ENCODERS[encoder] | {"vocab_size": len(work.tokenizer)}, "max_len": MAX_LEN,
            "n_notes": work.n_notes, "n_segments": len(work.segments), "batch": f"{batch_size} x {MAX_LEN} tokens",
            "threads": {"n": threads, "why": threads_why, "per_round": round_threads or None},
            "design": {"rounds": n_rounds, "padded_batches_per_round": padded_batches,
                       "speedup": "median over rounds of rung / baseline throughput in the same round",
                       "order": "baseline, rung 1, rung 2, ... in even rounds, reversed in odd rounds"},
            "matmul_peak_flops_per_s": float(np.median(peaks)), "matmul_peak_per_round": peaks,
            "matmul_peak_how": rounds.MATMUL_PEAK_HOW, "baseline": baseline, "rungs": rows}


def main(argv: list[str] | None = None) -> None:
    import sys

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["cohort"]:  # notebook 01 at scale: its own options (see bench_cohort)
        return cohort_main(argv[1:])
    if argv[:1] == ["noise"]:  # do several runs of one task agree? (bench.noise)
        return noise_main(argv[1:])
    p = argparse.ArgumentParser(prog="python -m bertxml_lib.bench", description=__doc__.splitlines()[0])
    p.add_argument("task", choices=["pretrain", "finetune", "inference", "cohort", "noise"],
                   help="cohort / noise: see `python -m bertxml_lib.bench cohort --help` (noise --help)")
    p.add_argument("--quick", action="store_true", help="a small run (<= 3 minutes on 2 CPU cores)")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--encoder", choices=sorted(ENCODERS), help="default: mini on CPU or --quick, small on CUDA")
    p.add_argument("--notes", type=int, help="number of synthetic notes")
    p.add_argument("--batch-size", type=int, help="baseline segments per batch (bucketed budget = this x 1024)")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 7 with --quick, else 15)")
    p.add_argument("--padded-batches", type=int, help="batches per round of a rung padded to 1024 (default 2 / 4)")
    p.add_argument("--threads", type=int, default=0,
                   help="intra-op threads (default: chosen before every round: all cores, 1 while other threads "
                        "want the cores)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    result = run_bench(args.task, args.quick, args.encoder, args.notes, args.batch_size, args.seed, args.device,
                       n_rounds=args.rounds, padded_batches=args.padded_batches, threads=args.threads)
    if args.json:
        write_json(args.json, result)
    else:
        print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
