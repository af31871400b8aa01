"""The benchmark ladder — the paper's padded HF setup vs SDPA, length bucketing, sparse MLM head, CUDA extras.

    python -m bertxml_lib.bench {pretrain,finetune,inference} [--quick] [--json FILE] [--encoder NAME]
    python -m bertxml_lib.bench cohort --notes 10000,100000,1000000 --json FILE    (`bench.cohort`)

One run measures the baseline (HF `BertForMaskedLM` / `BertForIcdCoding`, eager attention, fp32, every
segment padded to max_len 1024: what the paper ran, 4.2) and each cumulative rung on the same notes
(synthetic, the paper's length distribution), the same model config and the same machine. Speedup is
real-token throughput (inference: notes/s) over the baseline's in this run. Parity: the rung's loss
and gradients on one fixed batch (dropout off) against the baseline's.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import tempfile
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from transformers import BertForMaskedLM, DataCollatorForLanguageModeling

from bertxml_lib.bench.cohort import main as cohort_main
from bertxml_lib.core.atomic import write_json
from bertxml_lib.core.runtime import autocast, seed_everything
from bertxml_lib.data.synthetic import generate_synthetic
from bertxml_lib.models.encoders import ENCODERS, make_bert_config
from bertxml_lib.models.modeling import BertForIcdCoding
from bertxml_lib.text.segments import encode_notes, length_bucketed_batches, max_pool_segments
from bertxml_lib.text.tokenizer import train_wordpiece
from bertxml_lib.training.pretrain import masked_positions_loss

MAX_LEN = 1024
N_LABELS = 50
# Parity tolerances: fp32 reorders sums only (SDPA kernels, shorter padding), bf16 rounds every matmul.
TOL = {"fp32": {"loss_rel": 1e-4, "grad_rel_l2": 1e-3, "prob_abs": 1e-4},
       "bf16": {"loss_rel": 2e-2, "grad_rel_l2": 5e-2, "prob_abs": 2e-2}}


@dataclass
class Rung:
    name: str
    attention: str = "sdpa"
    bucketed: bool = True
    sparse_head: bool = False
    cuda_extras: bool = False     # bf16 autocast, fused AdamW, torch.compile (bucketed shapes)
    note: str = ""


def ladder(task: str) -> list[Rung]:
    rungs = [Rung("1_sdpa_attention", bucketed=False, note="SDPA instead of eager; still padded to 1024"),
             Rung("2_length_bucketing", note="segments sorted into token-budget batches (budget = baseline batch)")]
    if task == "pretrain":
        rungs.append(Rung("3_sparse_mlm_head", sparse_head=True, note="vocabulary logits only at masked positions"))
    rungs.append(Rung("4_cuda_bf16_fused_compile", sparse_head=task == "pretrain", cuda_extras=True,
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


def make_model(task: str, encoder: str, vocab: int, seed: int):
    """The same weights for every rung: built once (eager), copied per rung with its attention kernel."""
    seed_everything(seed)
    config = make_bert_config(encoder, vocab)
    config._attn_implementation = "eager"
    if task == "pretrain":
        return BertForMaskedLM(config)
    config.icd_head, config.icd_codes, config.xml_hidden = "xml", [f"C{i}" for i in range(N_LABELS)], None
    return BertForIcdCoding(config)


def _loss(task: str, model, batch, sparse_head: bool) -> torch.Tensor:
    if task == "pretrain":
        return masked_positions_loss(model, batch) if sparse_head else model(**batch).loss
    return model(batch["input_ids"], batch["attention_mask"], labels=batch.get("labels")).loss


def step_flops(task: str, encoder: str, vocab: int, batch: dict, sparse_head: bool, train: bool) -> float:
    """Matmul FLOPs actually executed for one batch (padding included), 2 per multiply-add; backward = 2x forward."""
    c = ENCODERS[encoder]
    d, layers, inter = c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"]
    rows, seq = batch["input_ids"].shape
    positions = rows * seq
    fwd = 2 * positions * layers * (4 * d * d + 2 * d * inter) + 4 * rows * seq * seq * d * layers
    if task == "pretrain":
        head_rows = int((batch["labels"] != -100).sum()) if sparse_head else positions
        fwd += 2 * head_rows * (d * d + d * vocab)
    else:
        fwd += 4 * positions * N_LABELS * d + 2 * rows * N_LABELS * d * d  # label attention (eqs. 2-3) + W_b
    return float(fwd * (3 if train else 1))


def matmul_peak(device, reps: int = 5) -> tuple[float, str]:
    """Best FLOP/s of a square matmul (fp32 on CPU, bf16 on CUDA), measured now on this machine."""
    n, dtype = (1024, torch.float32) if device.type == "cpu" else (8192, torch.bfloat16)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(reps + 1):
        _sync(device)
        t = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best, f"{n}x{n} {str(dtype).removeprefix('torch.')} matmul, best of {reps + 1}"


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:  # Linux: writing 5 resets this process's peak RSS (VmHWM)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak_bytes(device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    with open("/proc/self/status") as f:
        line = next(ln for ln in f if ln.startswith("VmHWM"))
    return int(line.split()[1]) * 1024


def parity_pass(task: str, model, work: Workload, rung: Rung | None, device) -> dict:
    """Loss, gradients (training) or probabilities (inference) on the first 4 segments, dropout off."""
    idx = np.arange(min(4, len(work.segments)))
    pad_to = MAX_LEN if rung is None or not rung.bucketed else None
    amp = bool(rung and rung.cuda_extras)
    batch = make_batch(work, idx, task, pad_to, device, multiple=64 if amp else 1)
    model.eval()
    model.zero_grad(set_to_none=True)
    if task == "inference":
        with torch.inference_mode(), autocast(device, amp):
            out = model(batch["input_ids"], batch["attention_mask"], labels=batch["labels"])
        return {"loss": float(out.loss), "probs": torch.sigmoid(out.logits.float()).cpu()}
    with autocast(device, amp):
        loss = _loss(task, model, batch, bool(rung and rung.sparse_head))
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


def measure(task: str, model, work: Workload, rung: Rung | None, encoder: str, device, batch_size: int,
            seed: int, peak_flops: float) -> dict:
    """Process every segment once (training: one optimizer step per batch); one untimed warm-up step."""
    vocab = len(work.tokenizer)
    lengths = np.array([len(s) for s in work.segments])
    amp, sparse = bool(rung and rung.cuda_extras), bool(rung and rung.sparse_head)
    if rung is None or not rung.bucketed:
        order = np.random.default_rng(seed).permutation(len(lengths))
        batches, pad_to = [order[i:i + batch_size] for i in range(0, len(order), batch_size)], MAX_LEN
    else:
        batches = length_bucketed_batches(lengths, batch_size * MAX_LEN, shuffle=task != "inference", seed=seed)
        pad_to = None
    train = task != "inference"
    model.train(train)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=bool(rung and rung.cuda_extras)) if train else None
    forward = torch.compile(model) if amp else model

    def one(idx):
        batch = make_batch(work, idx, task, pad_to, device, multiple=64 if amp else 1)
        if train:
            with autocast(device, amp):
                loss = _loss(task, forward, batch, sparse)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return batch, None
        with torch.inference_mode(), autocast(device, amp):
            logits = forward(batch["input_ids"], batch["attention_mask"]).logits
        return batch, torch.sigmoid(logits.float()).cpu().numpy()

    one(batches[0])  # warm-up (allocator, kernels, compile)
    _reset_peak(device)
    times, flops, positions = [], 0.0, 0
    probs = np.zeros((len(lengths), N_LABELS), dtype=np.float32)
    _sync(device)
    start = time.perf_counter()
    for idx in batches:
        t = time.perf_counter()
        batch, p = one(idx)
        _sync(device)
        times.append(time.perf_counter() - t)
        flops += step_flops(task, encoder, vocab, batch, sparse, train)
        positions += batch["input_ids"].numel()
        if p is not None:
            probs[idx] = p
    if not train:
        max_pool_segments(probs, work.note_index, work.n_notes)  # notes/s counts the max-pool too
    total = time.perf_counter() - start
    real = int(lengths.sum())
    return {"real_tokens_per_s": real / total, "notes_per_s": work.n_notes / total, "seconds": total,
            "pad_fraction": 1 - real / positions, "steps": len(batches),
            "step_time_p50_s": float(np.percentile(times, 50)), "step_time_p90_s": float(np.percentile(times, 90)),
            "peak_memory_bytes": _peak_bytes(device),
            "peak_memory_kind": "cuda max_memory_allocated" if device.type == "cuda" else "process peak RSS (VmHWM)",
            "achieved_flops_per_s": flops / total, "share_of_matmul_peak": flops / total / peak_flops}


def machine(device) -> dict:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "device": str(device), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def run_bench(task: str, quick: bool = False, encoder: str | None = None, n_notes: int | None = None,
              batch_size: int | None = None, seed: int = 0, device: str = "auto", progress: bool = True) -> dict:
    """Baseline and every rung of `task` ('pretrain', 'finetune', 'inference') in one process; returns the JSON dict."""
    if task not in ("pretrain", "finetune", "inference"):
        raise ValueError(f"task must be pretrain, finetune or inference, got {task!r}")
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device))
    encoder = encoder or ("mini" if quick or dev.type == "cpu" else "small")
    n_notes = n_notes or (24 if quick else 96) * (1 if task != "inference" else 2)
    batch_size = batch_size or (4 if dev.type == "cpu" else 32)
    log = print if progress else (lambda *a, **k: None)
    work = build_workload(n_notes, seed, vocab_size=4000 if quick else 8000)
    peak, peak_how = matmul_peak(dev)
    log(f"[bench {task}] {work.n_notes} notes, {len(work.segments)} segments, encoder {encoder}, "
        f"matmul peak {peak / 1e9:.1f} GFLOP/s on {dev}")
    base_model = make_model(task, encoder, len(work.tokenizer), seed).to(dev)
    reference = parity_pass(task, base_model, work, None, dev)
    baseline = measure(task, copy.deepcopy(base_model), work, None, encoder, dev, batch_size, seed, peak)
    key = "notes_per_s" if task == "inference" else "real_tokens_per_s"
    baseline |= {"name": "baseline_hf_eager_fp32_padded_1024", "speedup": 1.0}
    log(f"  baseline: {baseline[key]:.1f} {key}, pad {baseline['pad_fraction']:.2f}")
    rungs = []
    for rung in ladder(task):
        row = {"name": rung.name, "note": rung.note}
        if rung.cuda_extras and dev.type != "cuda":
            rungs.append(row | {"skipped": "needs CUDA (bf16 autocast is CUDA-only here; fused AdamW and "
                                           "torch.compile target GPU kernels)", "speedup": None,
                                "real_tokens_per_s": None, "parity": None})
            log(f"  {rung.name}: skipped (no CUDA)")
            continue
        model = copy.deepcopy(base_model)
        model.set_attn_implementation(rung.attention)
        row["parity"] = compare(reference, parity_pass(task, model, work, rung, dev), rung.cuda_extras)
        row |= measure(task, model, work, rung, encoder, dev, batch_size, seed, peak)
        row["speedup"] = row[key] / baseline[key]
        rungs.append(row)
        log(f"  {rung.name}: {row[key]:.1f} {key} ({row['speedup']:.2f}x), pad {row['pad_fraction']:.2f}, "
            f"parity ok={row['parity']['ok']}")
    return {"task": task, "machine": machine(dev), "speedup_metric": key, "encoder": encoder,
            "model_config": ENCODERS[encoder] | {"vocab_size": len(work.tokenizer)}, "max_len": MAX_LEN,
            "n_notes": work.n_notes, "n_segments": len(work.segments), "batch": f"{batch_size} x {MAX_LEN} tokens",
            "matmul_peak_flops_per_s": peak, "matmul_peak_how": peak_how, "baseline": baseline, "rungs": rungs}


def main(argv: list[str] | None = None) -> None:
    import sys

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["cohort"]:  # notebook 01 at scale: its own options (see bench_cohort)

        return cohort_main(argv[1:])
    p = argparse.ArgumentParser(prog="python -m bertxml_lib.bench", description=__doc__.splitlines()[0])
    p.add_argument("task", choices=["pretrain", "finetune", "inference", "cohort"],
                   help="cohort: see `python -m bertxml_lib.bench cohort --help`")
    p.add_argument("--quick", action="store_true", help="a small run (<= 3 minutes on 2 CPU cores)")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--encoder", choices=sorted(ENCODERS), help="default: mini on CPU or --quick, small on CUDA")
    p.add_argument("--notes", type=int, help="number of synthetic notes")
    p.add_argument("--batch-size", type=int, help="baseline segments per batch (bucketed budget = this x 1024)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    result = run_bench(args.task, args.quick, args.encoder, args.notes, args.batch_size, args.seed, args.device)
    if args.json:
        write_json(args.json, result)
    else:
        print(json.dumps(result, indent=2, default=str))


if __name__ == "__main__":
    main()
