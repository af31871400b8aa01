"""Do repeated benchmark-ladder runs agree? Per task and rung, the runs' median speedups and how far apart.

    python -m bertxml_lib.bench noise run1/pretrain.json run2/pretrain.json ... --json FILE [--markdown FILE]

A speed claim is only as good as its repeatability on the machine it was made on: this reads several
`python -m bertxml_lib.bench TASK --json` results (same task, same settings, taken at different moments of a
shared machine) and reports, per rung, each run's median speedup, their mean, and the largest deviation of
a run from that mean (`max_dev`, a fraction: 0.15 means one run lies 15% from the mean).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bertxml_lib.core.atomic import read_json, write_json, write_text


def agreement(results: list[dict], bound: float = 0.15) -> dict:
    """`{task: {rung: {speedups, mean, max_dev, within}}}` over runs of the same tasks."""
    by_task: dict[str, list[dict]] = {}
    for r in results:
        by_task.setdefault(r["task"], []).append(r)
    out: dict = {}
    for task, runs in by_task.items():
        rungs: dict = {}
        for run in runs:
            for row in run["rungs"]:
                if row.get("speedup") is not None:
                    rungs.setdefault(row["name"], []).append(row["speedup"])
        out[task] = {}
        for name, speedups in rungs.items():
            mean = float(np.mean(speedups))
            dev = float(np.max(np.abs(np.array(speedups) / mean - 1)))
            out[task][name] = {"speedups": speedups, "mean": mean, "max_dev": dev, "within": dev <= bound,
                               "runs": len(speedups)}
        out[task]["_runs"] = [{"date": run["machine"]["date"], "load_average_1m": run["machine"]["load_average_1m"],
                               "rounds": run.get("design", {}).get("rounds"),
                               "threads": run.get("threads", {}).get("n"),
                               "threads_per_round": [t["n"] for t in run.get("threads", {}).get("per_round") or []]}
                              for run in runs]
    return out


def markdown(report: dict, bound: float) -> str:
    lines = [f"| task | rung | median speedup per run | mean | largest deviation from mean | within ±{bound:.0%} |",
             "|---|---|---|---|---|---|"]
    for task, rungs in report.items():
        for name, r in rungs.items():
            if name.startswith("_"):
                continue
            runs = ", ".join(f"{s:.2f}x" for s in r["speedups"])
            lines.append(f"| {task} | {name} | {runs} | {r['mean']:.2f}x | {r['max_dev']:.1%} | "
                         f"{'yes' if r['within'] else 'NO'} |")
    loads = {task: ", ".join(f"{x['load_average_1m']:.1f}" for x in rungs["_runs"]) for task, rungs in report.items()}
    lines.append("")
    lines.append("1-minute load average at the end of each run: " + "; ".join(f"{t} {v}" for t, v in loads.items()))
    threads = {task: " | ".join("".join(map(str, x["threads_per_round"])) or f"{x['threads']} (whole run)"
                                for x in rungs["_runs"])
               for task, rungs in report.items()}
    lines.append("")
    lines.append("Intra-op threads of each round, per run: " + "; ".join(f"{t} {v}" for t, v in threads.items()))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bertxml_lib.bench noise", description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+", type=Path, help="benchmark JSON files (several runs of each task)")
    p.add_argument("--bound", type=float, default=0.15, help="allowed deviation of a run from the mean")
    p.add_argument("--json", type=Path, help="write the report here")
    p.add_argument("--markdown", type=Path, help="write a markdown table here")
    args = p.parse_args(argv)
    report = agreement([read_json(f) for f in args.files], args.bound)
    report_md = markdown(report, args.bound)
    if args.json:
        write_json(args.json, {"bound": args.bound, "files": [str(f) for f in args.files], "tasks": report})
    if args.markdown:
        write_text(args.markdown, report_md)
    print(report_md)
    return 0
