"""Scale: notebook 01 on growing synthetic cohorts, each size in a fresh process.

    python -m bertxml_lib.bench cohort --notes 10000,100000,1000000 --json results/bench/cohort.json

For each size a child process does notebook 01's work with its imports: `stages.run_cohort` (the
synthetic raw notes streamed to Parquet, then `cohort.build_cohort`: filters, patient split, chronic
imputation, label set, `cohort/notes.parquet`), `cohort_report.stats_vs_paper` (`tables/cohort_stats.csv`),
the label-set table and `cohort_report.cohort_figure`. The parent measures the child's wall time and peak
resident memory (`os.wait4`'s `ru_maxrss`, so each size has its own peak); the child records each
phase's time and its peak so far (VmHWM). `time_per_note_ratio` is a size's seconds per note over the
smallest size's: flat means time grows linearly with the notes.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bertxml_lib import stages
from bertxml_lib.core.atomic import write_json
from bertxml_lib.data import synthetic
from bertxml_lib.reporting import cohort_report

#: Mean notes per synthetic patient (the generator's lognormal; 9.04 measured on 1,000 patients, seed 0).
NOTES_PER_PATIENT = 9.04
#: The memory bound for a million notes.
RSS_BOUND_MB = 2048
#: Notebook 01's cohort rules, as in `configs/profiles.yaml` base.
RULES = dict(min_chars=50, excluded_types=["erroneous", "student", "miscellaneous"], split_fractions=[0.7, 0.1, 0.2],
             chronic_min_count=2, min_train_count=25)


def _vm(field: str) -> float:
    """This process's VmHWM (peak) or VmRSS, in MB (Linux; NaN elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            return int(next(ln for ln in f if ln.startswith(field)).split()[1]) / 1024
    except (OSError, StopIteration):
        return float("nan")


def child(out_dir: str, n_patients: int, n_codes: int, seed: int) -> dict:
    """Notebook 01's cells on a fresh synthetic cohort (same imports, `stages.run_cohort`, the reports);
    phase timings and peaks go to `<out>/bench_child.json`."""
    started = time.perf_counter()

    phases: dict[str, dict] = {}
    last = started

    def mark(name: str, seconds: float | None = None) -> None:
        nonlocal last
        now = time.perf_counter()
        phases[name] = {"seconds": round(now - last if seconds is None else seconds, 3),
                        "peak_rss_mb_so_far": round(_vm("VmHWM"), 1)}
        last = now

    mark("imports")
    generated: dict = {}
    write_synthetic = synthetic.write_synthetic

    def timed_write(*args, **kwargs):  # run_cohort generates through sources.load_source: note its summary
        generated.update(write_synthetic(*args, **kwargs), peak_rss_mb_so_far=round(_vm("VmHWM"), 1))
        return generated

    synthetic.write_synthetic = timed_write
    try:
        stats = stages.run_cohort(out_dir, seed=seed, source="synthetic", n_patients=n_patients, n_codes=n_codes,
                                  **RULES)
    finally:
        synthetic.write_synthetic = write_synthetic
    run_cohort_seconds = time.perf_counter() - last
    phases["generate_raw"] = {"seconds": generated["seconds"], "peak_rss_mb_so_far": generated["peak_rss_mb_so_far"]}
    mark("build_cohort", run_cohort_seconds - generated["seconds"])
    cohort_report.stats_vs_paper(out_dir)
    mark("stats_vs_paper")
    cohort_report.label_set_table(out_dir)
    cohort_report.generator_properties()
    mark("label_set_table")
    import matplotlib.pyplot as plt

    plt.close(cohort_report.cohort_figure(out_dir))
    mark("cohort_figure")
    result = {"raw_notes": generated["n_notes"], "raw_code_rows": generated["n_code_rows"],
              "cohort_notes": stats["notes"], "patients": stats["patients"], "label_set_size": stats["label_set_size"],
              "imputed_code_rows": stats["imputed_code_rows"], "phases": phases,
              "child_seconds": round(time.perf_counter() - started, 3)}
    write_json(Path(out_dir) / "bench_child.json", result)
    return result


def run_size(n_notes: int, seed: int, n_codes: int, work: Path, keep: bool = False) -> dict:
    """One size in a fresh process: wall seconds and peak RSS from wait4."""
    n_patients = max(1, round(n_notes / NOTES_PER_PATIENT))
    out = work / f"cohort_{n_notes}"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "bertxml_lib.bench.cohort", "--child", str(out), "--patients", str(n_patients),
           "--n-codes", str(n_codes), "--seed", str(seed)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"bench cohort: the {n_notes:,}-note child failed with exit code {proc.returncode}")
    child_result = json.loads((out / "bench_child.json").read_text())
    disk = sum(p.stat().st_size for p in out.rglob("*.parquet"))
    if not keep:
        shutil.rmtree(out, ignore_errors=True)
    peak = usage.ru_maxrss / 1024  # Linux: kilobytes
    return {"notes_requested": n_notes, "n_patients": n_patients, **child_result, "seconds": round(seconds, 3),
            "peak_rss_mb": round(peak, 1), "notes_per_s": round(child_result["raw_notes"] / seconds, 1),
            "within_bound": peak <= RSS_BOUND_MB, "parquet_mb": round(disk / 2**20, 1)}


def machine() -> dict:
    import pandas as pd
    import pyarrow as pa

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "pandas": pd.__version__,
            "pyarrow": pa.__version__, "device": "cpu", "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}


def run_bench(sizes: list[int], seed: int = 0, n_codes: int = 400, workdir: str | None = None, keep: bool = False,
              progress: bool = True) -> dict:
    log = print if progress else (lambda *a, **k: None)
    work = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="bench-cohort-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    try:
        for n in sizes:
            row = run_size(n, seed, n_codes, work, keep)
            rows.append(row)
            log(f"[bench cohort] {row['raw_notes']:,} notes: {row['seconds']:.1f} s, "
                f"peak RSS {row['peak_rss_mb']:.0f} MB, {row['notes_per_s']:.0f} notes/s", flush=True)
    finally:
        if not workdir and not keep:
            shutil.rmtree(work, ignore_errors=True)
    base = rows[0]["seconds"] / rows[0]["raw_notes"]
    for row in rows:
        row["time_per_note_ratio"] = round(row["seconds"] / row["raw_notes"] / base, 3)
    return {"task": "cohort", "machine": machine(), "seed": seed, "n_codes": n_codes, "rules": RULES,
            "notes_per_patient": NOTES_PER_PATIENT, "rss_bound_mb": RSS_BOUND_MB,
            "peak_rss_how": "os.wait4 ru_maxrss of the child process (one fresh process per size)",
            "work": "notebook 01: stages.run_cohort (synthetic generator + build_cohort), stats_vs_paper, "
                    "label_set_table, cohort_figure",
            "sizes": rows, "max_peak_rss_mb": max(r["peak_rss_mb"] for r in rows),
            "all_within_bound": all(r["within_bound"] for r in rows)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bertxml_lib.bench cohort", description=__doc__.splitlines()[0])
    p.add_argument("--notes", default="10000,100000,1000000", help="comma-separated synthetic note counts")
    p.add_argument("--json", help="write the results here")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-codes", type=int, default=400)
    p.add_argument("--workdir", help="where the runs are written (default: a temporary folder, removed)")
    p.add_argument("--keep", action="store_true", help="keep each size's run folder")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--patients", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args.child, args.patients, args.n_codes, args.seed)
        return
    sizes = [int(s.replace("_", "")) for s in args.notes.split(",") if s.strip()]
    if not sizes or min(sizes) < 1:
        p.error(f"--notes needs positive note counts, got {args.notes!r}")
    result = run_bench(sizes, args.seed, args.n_codes, args.workdir, args.keep)
    if args.json:
        write_json(args.json, result)
    else:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
