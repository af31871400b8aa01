"""The benchmark ladder's measurement: contenders timed in interleaved rounds, median ratio over rounds.

A neighbour process that starts or stops mid-run slows whatever runs at that moment. Timing the baseline
and every rung one after another lets it land on one of them and move a ratio by a factor of 3; here each
round runs every contender for a few seconds (baseline, rung 1, rung 2, ...; the order reversed every other
round), each round gives one ratio per rung against the baseline measured seconds earlier, and the
reported speedup is the median of those ratios, with their spread.

What a round holds: a bucketed or packed rung processes one group of its batches (its plan over all notes
split into `n_rounds` groups of near-equal cost, longest-first greedy), so over the run it processes every
segment once; a rung padded to 1,024 runs `padded_batches` batches of its plan per round. A padded batch
costs the same whatever it holds, so a padded rung's real tokens/s is the plan's mean real tokens per
batch over its measured seconds per batch (no dependence on which notes a few batches happen to hold).
"""
from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch


@dataclass
class Contender:
    """The baseline or one rung: its batch plan and one step (forward, and backward + optimizer step when training)."""

    name: str
    plan: list[np.ndarray]                 # every segment once, as batches of segment indices
    step: Callable[[np.ndarray], dict]     # runs one batch; returns {"real", "positions", "flops"}
    padded: bool                           # rows padded to a fixed width: cost independent of content
    groups: list[list[int]] = field(default_factory=list)  # per round: indices into `plan`
    rounds: list[dict] = field(default_factory=list)        # per round: tokens, seconds, flops, step times
    peak_bytes: int = 0


def balanced_groups(costs: list[float], n_groups: int) -> list[list[int]]:
    """Items split into `n_groups` groups of near-equal total cost: largest first, each to the lightest group."""
    if n_groups < 1:
        raise ValueError(f"n_groups must be >= 1, got {n_groups}")
    groups: list[list[int]] = [[] for _ in range(n_groups)]
    totals = [0.0] * n_groups
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        g = min(range(n_groups), key=lambda g: (totals[g], g))
        groups[g].append(i)
        totals[g] += costs[i]
    return groups


def assign_rounds(c: Contender, n_rounds: int, padded_batches: int, lengths: np.ndarray) -> None:
    """Fill `c.groups`: `padded_batches` consecutive plan batches per round for a padded contender (cycling
    through its seeded plan), else the plan in `n_rounds` groups of near-equal cost (padded positions)."""
    if c.padded:
        c.groups = [[(r * padded_batches + j) % len(c.plan) for j in range(padded_batches)] for r in range(n_rounds)]
        return
    costs = [len(b) * float(lengths[b].max()) for b in c.plan]
    c.groups = balanced_groups(costs, n_rounds)


def run_round(c: Contender, r: int, device) -> None:
    """Time contender `c` on its group for round `r` and append the round's record."""
    reset_peak(device)
    real = positions = 0
    flops, times = 0.0, []
    for b in c.groups[r]:
        sync(device)
        t = time.perf_counter()
        out = c.step(c.plan[b])
        sync(device)
        times.append(time.perf_counter() - t)
        real, positions, flops = real + out["real"], positions + out["positions"], flops + out["flops"]
    c.rounds.append({"real": real, "positions": positions, "flops": flops, "seconds": float(sum(times)),
                     "step_times": times})
    c.peak_bytes = max(c.peak_bytes, peak_bytes(device))


def round_rate(c: Contender, rnd: dict, lengths: np.ndarray) -> float:
    """Real tokens/s of one round; for a padded contender, the plan's mean real tokens per batch per batch-second."""
    if c.padded:
        per_batch = float(lengths.sum()) / len(c.plan)
        return per_batch * len(rnd["step_times"]) / rnd["seconds"]
    return rnd["real"] / rnd["seconds"]


def summarize(c: Contender, base: Contender, lengths: np.ndarray, peaks: list[float], width: int) -> dict:
    """Median and spread of the per-round ratios to the baseline, pooled rates, share of the matmul peak."""
    rates = np.array([round_rate(c, rnd, lengths) for rnd in c.rounds])
    base_rates = np.array([round_rate(base, rnd, lengths) for rnd in base.rounds])
    ratios = rates / base_rates
    shares = np.array([rnd["flops"] / rnd["seconds"] / p for rnd, p in zip(c.rounds, peaks)])
    steps = np.concatenate([rnd["step_times"] for rnd in c.rounds])
    real = sum(rnd["real"] for rnd in c.rounds)
    positions = sum(rnd["positions"] for rnd in c.rounds)
    seconds = sum(rnd["seconds"] for rnd in c.rounds)
    pooled = (float(lengths.sum()) / len(c.plan) * len(steps) / seconds) if c.padded else real / seconds
    return {
        "speedup": float(np.median(ratios)),
        "speedup_spread": {"min": float(ratios.min()), "p25": float(np.percentile(ratios, 25)),
                           "p75": float(np.percentile(ratios, 75)), "max": float(ratios.max())},
        "speedup_per_round": [float(x) for x in ratios],
        "real_tokens_per_s": float(np.median(rates)), "real_tokens_per_s_pooled": float(pooled),
        "seconds": float(seconds), "steps": int(len(steps)),
        "pad_fraction": 1 - float(lengths.mean()) / width if c.padded else 1 - real / positions,
        "step_time_p50_s": float(np.percentile(steps, 50)), "step_time_p90_s": float(np.percentile(steps, 90)),
        "achieved_flops_per_s": float(np.median([rnd["flops"] / rnd["seconds"] for rnd in c.rounds])),
        "share_of_matmul_peak": float(np.median(shares)),
        "peak_memory_bytes": int(c.peak_bytes),
    }


def matmul_peak(device, reps: int = 3) -> float:
    """Best FLOP/s of a square matmul (fp32 on CPU, bf16 on CUDA), measured now (once per round)."""
    n, dtype = (1024, torch.float32) if device.type == "cpu" else (8192, torch.bfloat16)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(reps + 1):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best


MATMUL_PEAK_HOW = "1024x1024 fp32 matmul on CPU (8192 bf16 on CUDA), best of 4, measured at the start of every round"


def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    try:  # Linux: writing 5 resets this process's peak RSS (VmHWM)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def peak_bytes(device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    with open("/proc/self/status") as f:
        line = next(ln for ln in f if ln.startswith("VmHWM"))
    return int(line.split()[1]) * 1024


def interleave(contenders: list[Contender], n_rounds: int, device, log=print,
               pick_threads: Callable[[], tuple[int, str]] | None = None) -> tuple[list[float], list[dict]]:
    """Run every contender's round r, for r = 0..n_rounds-1, alternating the order; returns the per-round matmul
    peaks and threads. `pick_threads` (CPU) sets the intra-op threads before each round, so every contender of
    a round runs with the same number and a neighbour that arrives mid-run changes the next round's choice."""
    peaks, threads = [], []
    for r in range(n_rounds):
        if pick_threads is not None:
            n, why = pick_threads()
            torch.set_num_threads(n)
            threads.append({"n": n, "why": why})
        peaks.append(matmul_peak(device))
        order = contenders if r % 2 == 0 else contenders[::-1]
        t = time.perf_counter()
        for c in order:
            run_round(c, r, device)
        log(f"  round {r + 1}/{n_rounds}: {time.perf_counter() - t:.1f} s, load {os.getloadavg()[0]:.1f}, "
            f"{torch.get_num_threads()} thread(s), "
            + ", ".join(f"{c.name.split('_')[0]} {c.rounds[-1]['seconds']:.2f}s" for c in contenders))
    return peaks, threads


def machine(device) -> dict:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "device": str(device), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info
