"""Notebook 03: command-line MLM pretraining for 1…N processes (paper 4.2.1 pretrained on 4 GPUs).

One GPU or CPU:       python -m bertxml_lib.pretrain_cli --run-dir results/paper --encoder small --profile paper
N GPUs on one node:   torchrun --standalone --nproc_per_node N -m bertxml_lib.pretrain_cli --run-dir ... (same flags)
M nodes of N GPUs:    torchrun --nnodes M --nproc_per_node N --rdzv-backend c10d --rdzv-endpoint HOST:29500 \\
                          -m bertxml_lib.pretrain_cli --run-dir ... (same command on every node)

Input is a suite run folder (its cohort and tokenizer, notebooks 01-02) or, for tests, `--texts` (a JSON
file `{"train": [...], "dev": [...]}`) with `--tokenizer`. Settings come from `--profile` (the
`pretrain.*` keys of configs/profiles.yaml), then the flags. Rank 0 alone writes the model and curve.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path

from bertxml_lib.core.atomic import write_json
from bertxml_lib.core.config import resolve
from bertxml_lib.core.paths import RunPaths
from bertxml_lib.data.cohort import load_cohort
from bertxml_lib.reporting.pretraining_report import save_loss_curve
from bertxml_lib.training.distributed import init_distributed, shutdown
from bertxml_lib.training.pretrain import PretrainConfig, continue_pretraining, pretrain_mlm


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bertxml_lib.pretrain_cli", description=__doc__.splitlines()[0])
    p.add_argument("--run-dir", type=Path, help="suite output folder with cohort/ and tokenizer/")
    p.add_argument("--texts", type=Path, help='JSON {"train": [...], "dev": [...]} (instead of --run-dir)')
    p.add_argument("--tokenizer", type=Path, help="HF tokenizer folder (with --texts)")
    p.add_argument("--out", type=Path, help="model folder (default: the run's models/pretrained_<encoder>)")
    p.add_argument("--curve", type=Path, help="write the loss curve as JSON here (default: <out>/loss_curve.json)")
    p.add_argument("--profile", help="take pretrain.* defaults from this profile of configs/profiles.yaml")
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


def _config(args) -> PretrainConfig:
    values = {}
    if args.profile:

        flat = resolve(args.profile)
        values = {k.split(".", 1)[1]: v for k, v in flat.items()
                  if k.startswith("pretrain.") and k.split(".", 1)[1] in {f.name for f in fields(PretrainConfig)}}
        values["seed"] = flat["seed"]
        values["encoder"] = flat["pretrain.encoders"][0]  # the profile's first encoder unless --encoder says
    values.update({f.name: getattr(args, f.name) for f in fields(PretrainConfig) if getattr(args, f.name) is not None})
    return PretrainConfig(**values)


def _inputs(args, cfg: PretrainConfig):
    from transformers import AutoTokenizer

    if args.texts:
        if not args.tokenizer and not args.offshelf:
            raise SystemExit("--texts needs --tokenizer (or --offshelf)")
        texts = json.loads(args.texts.read_text())
        if not isinstance(texts, dict) or not {"train", "dev"} <= set(texts):
            raise SystemExit(f"{args.texts}: expected a JSON object with lists 'train' and 'dev'")
        tok = None if args.offshelf else AutoTokenizer.from_pretrained(args.tokenizer)
        return tok, texts["train"], texts["dev"], args.out
    if not args.run_dir:
        raise SystemExit("give --run-dir (a suite output folder) or --texts with --tokenizer")

    paths, cohort = RunPaths(args.run_dir), load_cohort(args.run_dir)
    tok = None if args.offshelf else AutoTokenizer.from_pretrained(paths.tokenizer_dir)
    out = args.out or paths.pretrained_dir("offshelf_1024" if args.offshelf else cfg.encoder)
    return tok, cohort.split("train")["text"].tolist(), cohort.split("dev")["text"].tolist(), out


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    cfg = _config(args)
    ctx, _ = init_distributed(cfg.device)
    tok, train, dev, out = _inputs(args, cfg)
    if out is None:
        raise SystemExit("--out is required with --texts")
    kwargs = dict(progress=not args.quiet, checkpoint_dir=args.checkpoint_dir,
                  checkpoint_every=args.checkpoint_every, resume=args.resume)
    if args.offshelf:
        curve = continue_pretraining(train, dev, cfg, out, **kwargs)
    else:
        curve = pretrain_mlm(tok, train, dev, cfg, out, **kwargs)
    if ctx.is_main:
        write_json(args.curve or Path(out) / "loss_curve.json", curve.to_dict(orient="records"))
        if args.run_dir:
            save_loss_curve(curve, Path(out) / "loss_curve.csv", Path(out) / "loss_curve.png", f"MLM pretraining ({cfg.encoder})")
    shutdown(ctx)


if __name__ == "__main__":
    main()
