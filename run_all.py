#!/usr/bin/env python
"""Reproduce every table and figure of BERT-XML: execute the numbered notebooks with papermill.

    python run_all.py                       # quick profile -> results/quick/
    python run_all.py --profile ci --set cohort.min_train_count=5 --set 04.finetune.epochs=2
    python run_all.py --list | --dry-run | --only 06 07 | --from 04 | --force | --force-new
    python run_all.py --profile ci --seeds 0 1 2   # one run per seed, Table 2 mean ± sd in tables/table2_seeds.csv

Exit status: 0 ok, 1 a notebook failed, 2 usage or bad input (a notebook's DataError/ConfigError too),
130 interrupted (Ctrl-C or SIGTERM; finished notebooks are kept and the next run continues).
Every check that needs no kernel (parameters, choices, input files, the output folder's data identity,
upstream outputs of `--only`/`--from` selections) runs first, in `--dry-run` too; exit 2 then writes nothing.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
# The `python3` kernel must be this interpreter's: put its environment's kernelspec first on the path.
os.environ["JUPYTER_PATH"] = os.pathsep.join(
    p for p in (os.path.join(sys.prefix, "share", "jupyter"), os.environ.get("JUPYTER_PATH", "")) if p)

from bertxml_lib import runner  # noqa: E402
from bertxml_lib.core import config  # noqa: E402
from bertxml_lib.core.warm_kernel import KernelServer  # noqa: E402


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="quick", choices=config.profile_names())
    ap.add_argument("--set", dest="sets", action="append", nargs="+", default=[], metavar="KEY=VALUE",
                    help="override a parameter (cohort.min_train_count=5) or one notebook's (04.finetune.epochs=2)")
    ap.add_argument("--only", nargs="+", help="run only these notebooks (prefixes: 04, 06_per_icd_auc, ...)")
    ap.add_argument("--from", dest="start_from", help="run this notebook and every one after it")
    ap.add_argument("--list", action="store_true", help="list the planned notebook executions and their cache state")
    ap.add_argument("--dry-run", action="store_true", help="show what would run (and, for `paper`, its estimated cost)")
    ap.add_argument("--force", action="store_true", help="re-execute even when cached")
    ap.add_argument("--force-new", action="store_true",
                    help="start the output folder afresh: an existing one is moved aside to "
                         "<out>.replaced-<time> (never deleted), e.g. to reuse --out for other data")
    ap.add_argument("--out", type=Path, help="output folder (default results/<profile>)")
    ap.add_argument("--no-site", action="store_true", help="skip rendering the HTML site")
    ap.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                    help="run the profile once per seed into <out>/seed_<s>/ and write <out>/tables/table2_seeds.csv "
                         "(mean ± sd of every Table 2 metric across seeds)")
    ap.add_argument("--bench", type=Path, help="with --dry-run: a `bertxml_lib.bench pretrain --json` file to estimate from")
    ap.add_argument("--gpus", type=int, default=1, help="with --dry-run and --bench: number of devices")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    out_dir = (args.out or Path("results") / args.profile).resolve()
    if args.seeds:
        return _main_seeds(args, out_dir)
    return _run(args, out_dir)


def _run(args: argparse.Namespace, out_dir: Path, extra_sets: tuple[str, ...] = ()) -> int:
    """One run of the profile into `out_dir` (`extra_sets` after the user's `--set`s)."""
    try:
        global_sets, per_notebook = config.parse_sets([s for group in args.sets for s in group] + list(extra_sets))
        jobs, flat = runner.plan(args.profile, out_dir, global_sets, per_notebook)
        selected = runner.select(jobs, args.only, args.start_from)
    except (config.ConfigError, FileNotFoundError) as exc:
        print(f"run_all.py: error: {exc}", file=sys.stderr)
        return 2
    differences = runner.check_identity(out_dir, flat)
    if differences and not args.force_new:
        print(f"run_all.py: error: {out_dir} holds the outputs of other data; this run would mix or overwrite them:\n"
              + "".join(f"  - {d}\n" for d in differences)
              + "  give another --out, or --force-new to move that folder aside and start afresh", file=sys.stderr)
        return 2
    fresh = args.force_new and out_dir.exists() and any(out_dir.iterdir())
    state_dir = out_dir.with_name(out_dir.name + ".new-folder-has-nothing") if fresh else out_dir
    stale = runner.stale_upstream(state_dir, jobs, selected, args.force)
    if stale:
        needed = runner.upstream_closure(jobs, [name for name, _ in stale], state_dir)
        print("run_all.py: error: the selected notebooks would read outputs made with other parameters (or "
              "missing), and would be recorded as if they had not:\n"
              + "".join(f"  - {name} reads {up}\n" for name, up in stale)
              + f"  run the upstream notebooks too:\n    {_command(args, out_dir, needed + [j.name for j in selected], extra_sets)}",
              file=sys.stderr)
        return 2

    if args.list or args.dry_run:
        for i, job in enumerate(jobs, 1):
            state = "cached" if not fresh and runner.is_cached(out_dir, job) and not args.force else "will run"
            if job not in selected:
                state = "skipped"
            print(f"{i:2d}. {job.name:45s} {state:9s} {job.fingerprint}")
        if fresh:
            print(f"--force-new: {out_dir} would be moved aside first")
        if args.dry_run:
            import json

            from bertxml_lib.bench.estimate import describe_cost

            bench = json.loads(args.bench.read_text()) if args.bench else None
            print(describe_cost(flat, bench, args.gpus))
        return 0

    if fresh:
        print(f"--force-new: moved the old folder aside to {runner.move_aside(out_dir)}", flush=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    runner.write_identity(out_dir, flat)
    statuses: dict[str, dict] = {}
    started = time.perf_counter()
    # SIGTERM stops like Ctrl-C: the running notebook is abandoned (its temp output removed), every
    # finished one stays cached, and the next run continues from the first unfinished notebook.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        code = _execute(selected, out_dir, int(flat["run.timeout_s"]), args.force, statuses,
                        bool(flat["run.warm_kernels"]))
    except KeyboardInterrupt:
        print("run_all.py: interrupted; finished notebooks are kept, rerun to continue", file=sys.stderr)
        code = 130
    manifest = runner.write_manifest(out_dir, args.profile, flat, jobs, statuses, time.perf_counter() - started)
    if code:
        return code
    if not args.no_site:
        from bertxml_lib.reporting.site import render_site

        executed = [runner.executed_path(out_dir, j) for j in jobs if runner.executed_path(out_dir, j).exists()]
        index = render_site(out_dir, executed, f"BERT-XML reproduction — {args.profile} profile")
        print(f"site: {index}")
    print(f"done in {manifest['total_seconds']:.1f}s -> {out_dir}")
    return 0


def _main_seeds(args: argparse.Namespace, out_dir: Path) -> int:
    """One complete run per seed (each cached on its own), then Table 2 as mean ± sd across seeds."""
    from bertxml_lib.evaluation import multiseed

    for seed in args.seeds:
        print(f"== seed {seed} ==", flush=True)
        code = _run(args, multiseed.seed_dir(out_dir, seed), (f"seed={seed}",))
        if code:
            return code
    if args.list or args.dry_run:
        return 0
    try:
        path = multiseed.write_multiseed(out_dir, args.seeds)
    except FileNotFoundError as exc:  # e.g. --only without notebook 06
        print(f"run_all.py: no multi-seed table: {exc}", file=sys.stderr)
        return 0
    print(f"multi-seed Table 2 (mean ± sd over seeds {args.seeds}): {path}")
    return 0


def _command(args: argparse.Namespace, out_dir: Path, names: list[str], extra_sets: tuple[str, ...] = ()) -> str:
    """The run_all command that runs `names` with this invocation's profile, folder and overrides."""
    import shlex

    parts = ["python", "run_all.py", "--profile", args.profile, "--out", str(out_dir)]
    for group in [*args.sets, *([list(extra_sets)] if extra_sets else [])]:
        parts += ["--set", *group]
    parts += ["--only", *names]
    return " ".join(shlex.quote(p) for p in parts)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def _execute(selected: list, out_dir: Path, timeout: int, force: bool, statuses: dict[str, dict],
             warm: bool) -> int:
    """Run the selected jobs in order, recording each one's status; 0 ok, 1 or 2 on a failed notebook.

    With `warm`, kernels are forked from one server that imported the library once (`core.warm_kernel`),
    started only when some selected job is not cached; it imports while the cached jobs are reported."""
    executes = force or any(not runner.is_cached(out_dir, job) for job in selected)
    kernels = KernelServer(runner.WARM_MODULES).start() if warm and executes else None
    try:
        return _execute_jobs(selected, out_dir, timeout, force, statuses, kernels)
    finally:
        if kernels:
            kernels.close()


def _execute_jobs(selected: list, out_dir: Path, timeout: int, force: bool, statuses: dict[str, dict],
                  kernels: KernelServer | None) -> int:
    for i, job in enumerate(selected, 1):
        label = f"[{i}/{len(selected)}] {job.name}"
        if not force and runner.is_cached(out_dir, job):
            statuses[job.name] = {"status": "cached", "seconds": 0.0}
            print(f"{label}: cached", flush=True)
            continue
        print(f"{label}: executing ...", flush=True)
        try:
            seconds = runner.execute(job, out_dir, timeout, kernels=kernels)
        except runner.NotebookFailed as exc:
            statuses[job.name] = {"status": "failed"}
            print(f"run_all.py: {exc}", file=sys.stderr)
            return 2 if exc.bad_input else 1
        except config.ConfigError as exc:  # upstream outputs changed under this run: never recorded
            statuses[job.name] = {"status": "refused"}
            print(f"run_all.py: error: {exc}", file=sys.stderr)
            return 2
        statuses[job.name] = {"status": "executed", "seconds": round(seconds, 2)}
        print(f"{label}: executed in {seconds:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
