"""pretrain_cli and run_all share folders and the cache: a model pretrained by the CLI is notebook 03's output."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, copy_run

from bertxml_lib import pretrain_cli, runner, stages
from bertxml_lib.core.paths import RunPaths


def _args(*argv):
    return pretrain_cli._parser().parse_args(list(argv))


def test_offshelf_goes_where_notebook_04_reads_it(tmp_path):
    args = _args("--run-dir", str(tmp_path), "--profile", "ci", "--offshelf", "--set",
                 "offshelf.rows=[offshelf_finetuned_cls_1024]", "offshelf.mlm_epochs=2", "offshelf.lr=3.0e-4")
    job = pretrain_cli.planned_job(args)
    assert job.name == "03_pretraining-offshelf_finetuned"
    cfg = pretrain_cli._config(args, job)
    assert cfg.encoder == "offshelf_finetuned" and (cfg.epochs, cfg.lr) == (2, 3e-4)  # offshelf.mlm_epochs, .lr
    assert RunPaths(tmp_path).pretrained_dir(cfg.encoder) == stages.encoder_checkpoint(tmp_path, "offshelf_finetuned")


def test_settings_come_from_the_planned_notebook_03_execution(tmp_path):
    args = _args("--run-dir", str(tmp_path), "--profile", "ci", "--set", "pretrain.epochs=2")
    job = pretrain_cli.planned_job(args)
    cfg = pretrain_cli._config(args, job)
    assert job.name == "03_pretraining-tiny" and (cfg.encoder, cfg.epochs, cfg.max_len) == ("tiny", 2, 1024)
    assert pretrain_cli.planned_job(_args("--run-dir", str(tmp_path), "--profile", "ci", "--encoder", "mini")) is None


def test_the_model_is_recorded_as_notebook_03_only_when_it_is_what_notebook_03_makes(tmp_path):
    run = tmp_path / "run"
    args = _args("--run-dir", str(run), "--profile", "ci")
    job = pretrain_cli.planned_job(args)
    jobs = {j.name: j for j in runner.plan("ci", run, {}, {})[0]}
    out = RunPaths(run).pretrained_dir("tiny")
    out.mkdir(parents=True)
    (out / "config.json").write_text("{}")
    cfg = pretrain_cli._config(args, job)
    # Upstream outputs not recorded at this profile's fingerprints: not claimed.
    assert "run `run_all.py --only 01 02` first" in pretrain_cli.record_in_cache(args, job, cfg, out, 1.0)
    for name in ("01_cohort", "02_tokenizer"):
        runner.executed_path(run, jobs[name]).parent.mkdir(parents=True, exist_ok=True)
        runner.executed_path(run, jobs[name]).write_text("{}")
        runner.write_json(runner.cache_file(run, jobs[name]), {
            "fingerprint": jobs[name].fingerprint, "result_fingerprint": jobs[name].result_fingerprint,
            "upstream": jobs[name].upstream_results})
    other = pretrain_cli._config(_args("--run-dir", str(run), "--profile", "ci", "--epochs", "5"), job)
    assert "epochs=5 (profile: 1)" in pretrain_cli.record_in_cache(args, job, other, out, 1.0)
    assert not runner.is_cached(run, jobs["03_pretraining-tiny"])
    assert "recorded in the run's cache as 03_pretraining-tiny" in pretrain_cli.record_in_cache(args, job, cfg, out, 1.0)
    assert runner.is_cached(run, jobs["03_pretraining-tiny"])
    assert runner.cache_record(run, "03_pretraining-tiny")["producer"] == "pretrain_cli"
    picked = [j for j in jobs.values() if j.name.startswith("04_finetuning-ehr_tiny")]
    assert runner.stale_upstream(run, list(jobs.values()), picked, False) == []  # 04 may run on it


@pytest.mark.e2e
def test_a_model_pretrained_by_the_cli_is_reused_by_run_all_not_retrained(ci_run, tmp_path):
    run = copy_run(ci_run[0], tmp_path / "run")
    (run / ".cache" / "03_pretraining-tiny.json").unlink()
    (run / "notebooks" / "03_pretraining-tiny.ipynb").unlink()
    shutil.rmtree(run / "models" / "pretrained_tiny")
    proc = subprocess.run([sys.executable, "-m", "bertxml_lib.pretrain_cli", "--run-dir", str(run), "--profile", "ci",
                           "--quiet"], cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "recorded in the run's cache as 03_pretraining-tiny" in proc.stdout
    assert (run / "models" / "pretrained_tiny" / "config.json").exists()
    listing = subprocess.run([sys.executable, "run_all.py", "--profile", "ci", "--out", str(run), "--list"],
                             cwd=REPO, capture_output=True, text=True, timeout=300)
    assert listing.returncode == 0, listing.stderr
    states = {line.split()[1]: line.split()[2] for line in listing.stdout.splitlines() if line[:3].strip().rstrip(".").isdigit()}
    assert states["03_pretraining-tiny"] == "cached"
    # Notebook 04 fine-tunes on the CLI's model; notebook 03 does not run.
    row = "04_finetuning-ehr_tiny_cls_512"
    proc = subprocess.run([sys.executable, "run_all.py", "--profile", "ci", "--out", str(run), "--only", row,
                           "--force", "--no-site"], cwd=REPO, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "03_pretraining" not in proc.stdout and f"{row}: executed" in proc.stdout
    assert Path(run / "models" / "ehr_tiny_cls_512" / "config.json").exists()
