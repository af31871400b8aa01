"""Notebook 03: command-line MLM pretraining for 1…N processes (paper 4.2.1 pretrained on 4 GPUs).

One GPU or CPU:       python -m bertxml_lib.pretrain_cli --run-dir results/paper --encoder small --profile paper
N GPUs on one node:   torchrun --standalone --nproc_per_node N -m bertxml_lib.pretrain_cli --run-dir ... (same flags)
M nodes of N GPUs:    torchrun --nnodes M --nproc_per_node N --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
                          -m bertxml_lib.pretrain_cli --run-dir ... (same command on every node)

Input is a suite run folder (its cohort and tokenizer, notebooks 01-02) or, for tests, `--texts` (a JSON
file `{"train": [...], "dev": [...]}`) with `--tokenizer`. Settings come from `--profile` (with `--set`, as
`run_all.py` resolves them for this encoder's notebook-03 execution), then the flags. Rank 0 alone writes.

With `--run-dir` and `--profile` the model goes where notebook 04 reads it (`models/pretrained_<encoder>`;
`--offshelf`: `models/pretrained_offshelf_finetuned`, continued from the off-the-shelf BERT cut to
`offshelf.layers` as notebook 03 does), its loss curve where notebook 03 writes it, and the run's cache
records it as that notebook-03 execution, so `run_all.py` with the same profile and `--set`s reuses it
instead of retraining. A flag that changes a result-affecting setting makes a model the cache does not
claim (the CLI says so).
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, fields
from pathlib import Path

from bertxml_lib import runner
from bertxml_lib.core.atomic import write_json
from bertxml_lib.core.config import ConfigError, parse_sets, resolve
from bertxml_lib.core.paths import RunPaths
from bertxml_lib.core.rows import OFFSHELF, OFFSHELF_FT
from bertxml_lib.data.cohort import load_cohort
from bertxml_lib.models.offshelf import prepare_offshelf_dir
from bertxml_lib.reporting.pretraining_report import save_loss_curve
from bertxml_lib.training.distributed import init_distributed, shutdown
from bertxml_lib.training.pretrain import PretrainConfig, continue_pretraining, pretrain_mlm

# PretrainConfig fields that change the model (device and dropout=None aside).
RESULT_FIELDS = ("encoder", "max_len", "epochs", "batch_tokens", "lr", "warmup", "weight_decay", "mask_prob", "seed")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bertxml_lib.pretrain_cli", description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", type=Path, help="suite output folder with cohort/ and tokenizer/")
    p.add_argument("--texts", type=Path, help='JSON {"train": [...], "dev": [...]} (instead of --run-dir)')
    p.add_argument("--tokenizer", type=Path, help="HF tokenizer folder (with --texts)")
    p.add_argument("--out", type=Path, help="model folder (default: the run's models/pretrained_<encoder>)")
    p.add_argument("--curve", type=Path, help="write the loss curve as JSON here (default: <out>/loss_curve.json)")
    p.add_argument("--profile", help="take pretrain.* defaults from this profile of configs/profiles.yaml")
    p.add_argument("--set", dest="sets", action="append", nargs="+", default=[], metavar="KEY=VALUE",
                   help="the run's run_all.py --set overrides (so the settings and the cache match that run)")
    p.add_argument("--offshelf", action="store_true",
                   help="continue pretraining the off-the-shelf model (positions 512->1024, its own tokenizer)")
    p.add_argument("--checkpoint-dir", type=Path)
    p.add_argument("--checkpoint-every", type=int, default=0, help="steps between checkpoints (0: none)")
    p.add_argument("--resume", action="store_true", help="continue from <checkpoint-dir>/checkpoint.pt if present")
    p.add_argument("--quiet", action="store_true")
    for f in fields(PretrainConfig):
        kind = float if f.name == "dropout" else type(f.default)
        p.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=None)
    return p


def planned_job(args) -> runner.Job | None:
    """This encoder's notebook-03 execution in `run_all.py`'s plan of the run folder (None without a profile
    and run folder, or when the profile plans no such execution)."""
    if not (args.profile and args.run_dir):
        return None
    global_sets, per_notebook = parse_sets([s for group in args.sets for s in group])
    jobs, flat = runner.plan(args.profile, Path(args.run_dir), global_sets, per_notebook)
    encoder = OFFSHELF_FT if args.offshelf else (args.encoder or flat["pretrain.encoders"][0])
    return next((j for j in jobs if j.name == f"03_pretraining-{encoder}"), None)


def job_config(job: runner.Job) -> dict:
    """The PretrainConfig values notebook 03 uses for `job` (as `stages.run_pretraining` builds them)."""
    p = job.params
    offshelf = p["encoder"] == OFFSHELF_FT
    return {"encoder": p["encoder"], "max_len": p["pretrain_max_len"],
            "epochs": p["offshelf_mlm_epochs"] if offshelf else p["pretrain_epochs"],
            "batch_tokens": p["pretrain_batch_tokens"], "lr": p["offshelf_lr"] if offshelf else p["pretrain_lr"],
            "warmup": p["pretrain_warmup"], "weight_decay": p["pretrain_weight_decay"],
            "mask_prob": p["pretrain_mask_prob"], "seed": p["seed"], "device": p["run_device"]}


def _config(args, job: runner.Job | None) -> PretrainConfig:
    values = {}
    if job is not None:
        values = job_config(job)
    elif args.profile:
        flat = resolve(args.profile, parse_sets([s for group in args.sets for s in group])[0])
        values = {k.split(".", 1)[1]: v for k, v in flat.items()
                  if k.startswith("pretrain.") and k.split(".", 1)[1] in {f.name for f in fields(PretrainConfig)}}
        values["seed"] = flat["seed"]
        values["encoder"] = flat["pretrain.encoders"][0]  # the profile's first encoder unless --encoder says
    if args.offshelf:
        values["encoder"] = OFFSHELF_FT
    values.update({f.name: getattr(args, f.name) for f in fields(PretrainConfig) if getattr(args, f.name) is not None})
    return PretrainConfig(**values)


def _inputs(args, cfg: PretrainConfig, job: runner.Job | None):
    from transformers import AutoTokenizer

    if args.texts:
        if not args.tokenizer and not args.offshelf:
            raise SystemExit("--texts needs --tokenizer (or --offshelf)")
        texts = json.loads(args.texts.read_text())
        if not isinstance(texts, dict) or not {"train", "dev"} <= set(texts):
            raise SystemExit(f"{args.texts}: expected a JSON object with lists 'train' and 'dev'")
        tok = None if args.offshelf else AutoTokenizer.from_pretrained(args.tokenizer)
        return tok, texts["train"], texts["dev"], args.out, None
    if not args.run_dir:
        raise SystemExit("give --run-dir (a suite output folder) or --texts with --tokenizer")

    paths, cohort = RunPaths(args.run_dir), load_cohort(args.run_dir)
    tok = None if args.offshelf else AutoTokenizer.from_pretrained(paths.tokenizer_dir)
    base = None
    if args.offshelf and job is not None:  # notebook 03's starting point: the shipped BERT cut to offshelf.layers
        layers = int(job.params["offshelf_layers"])
        base = prepare_offshelf_dir(paths.pretrained_dir(f"{OFFSHELF}_L{layers}"), layers)
    out = args.out or paths.pretrained_dir(cfg.encoder)
    return tok, cohort.split("train")["text"].tolist(), cohort.split("dev")["text"].tolist(), out, base


def record_in_cache(args, job: runner.Job | None, cfg: PretrainConfig, out: Path, seconds: float) -> str:
    """Record the model as the run's notebook-03 execution when it is exactly what that execution makes."""
    if job is None:
        return "not recorded in the run's cache: give --profile (and the run's --set values) to record it"
    if Path(out).resolve() != RunPaths(args.run_dir).pretrained_dir(cfg.encoder).resolve():
        return f"not recorded in the run's cache: --out is not {RunPaths(args.run_dir).pretrained_dir(cfg.encoder)}"
    want, got = job_config(job), asdict(cfg)
    differ = [f"{k}={got[k]!r} (profile: {want[k]!r})" for k in RESULT_FIELDS if got[k] != want[k]]
    if cfg.dropout is not None:
        differ.append(f"dropout={cfg.dropout!r} (profile: the encoder's own)")
    if differ:
        return "not recorded in the run's cache (run_all.py will retrain it): " + ", ".join(differ)
    try:
        runner.record_external(Path(args.run_dir), job, "pretrain_cli", seconds)
    except ConfigError as exc:
        return f"not recorded in the run's cache: {exc}"
    return f"recorded in the run's cache as {job.name}: run_all.py reuses it"


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    try:
        job = planned_job(args)
    except ConfigError as exc:
        raise SystemExit(f"pretrain_cli: error: {exc}") from None
    cfg = _config(args, job)
    ctx, _ = init_distributed(cfg.device)
    tok, train, dev, out, base = _inputs(args, cfg, job)
    if out is None:
        raise SystemExit("--out is required with --texts")
    kwargs = dict(progress=not args.quiet, checkpoint_dir=args.checkpoint_dir,
                  checkpoint_every=args.checkpoint_every, resume=args.resume)
    started = time.perf_counter()
    if args.offshelf:
        if base is not None:
            kwargs.update(model_dir=base, new_max=max(1024, cfg.max_len))
        curve = continue_pretraining(train, dev, cfg, out, **kwargs)
    else:
        curve = pretrain_mlm(tok, train, dev, cfg, out, **kwargs)
    if ctx.is_main:
        write_json(args.curve or Path(out) / "loss_curve.json", curve.to_dict(orient="records"))
        if args.run_dir:
            title = f"MLM pretraining ({cfg.encoder})"
            save_loss_curve(curve, Path(out) / "loss_curve.csv", Path(out) / "loss_curve.png", title)
            paths = RunPaths(args.run_dir)  # where notebook 03 writes its curve
            save_loss_curve(curve, paths.table(f"pretrain_loss_{cfg.encoder}.csv"),
                            paths.figure(f"pretrain_loss_{cfg.encoder}.png"), title)
            print(f"pretrain_cli: {record_in_cache(args, job, cfg, Path(out), time.perf_counter() - started)}",
                  flush=True)
    shutdown(ctx)


if __name__ == "__main__":
    main()
