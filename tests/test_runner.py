"""run_all's plan: one 04 execution per Table 2 row, fingerprints that change exactly where they should,
and usage errors (exit 2) before anything runs."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bertxml_lib import runner
from conftest import REPO


def _plan(sets=None, per=None, tmp="/tmp/plan"):
    return runner.plan("ci", Path(tmp), sets or {}, per or {})[0]


def test_plan_has_one_finetune_execution_per_row():
    names = [j.name for j in _plan()]
    assert names[:3] == ["01_cohort", "02_tokenizer", "03_pretraining-tiny"]
    assert [n for n in names if n.startswith("04")] == [
        "04_finetuning-ehr_tiny_cls_512", "04_finetuning-ehr_tiny_cls_1024",
        "04_finetuning-ehr_tiny_xml_512", "04_finetuning-ehr_tiny_xml_1024"]
    assert names[-3:] == ["05_baselines", "06_per_icd_auc", "07_attention"]


def test_fingerprints_change_only_downstream_of_a_change():
    base = {j.name: j.fingerprint for j in _plan()}
    assert base == {j.name: j.fingerprint for j in _plan()}  # stable
    late = {j.name: j.fingerprint for j in _plan(per={"06": {"analysis.top_codes": 5}})}
    changed = sorted(n for n in base if base[n] != late[n])
    assert changed == ["06_per_icd_auc", "07_attention"]
    early = {j.name: j.fingerprint for j in _plan({"tokenizer.vocab_size": 1500})}
    assert sorted(n for n in base if base[n] != early[n]) == sorted(n for n in base if n != "01_cohort")
    speed = {j.name: j.fingerprint for j in _plan({"run.threads": 1})}
    assert speed == base  # speed-only settings never invalidate results


def test_output_folder_does_not_enter_fingerprints():
    assert [j.fingerprint for j in _plan(tmp="/tmp/a")] == [j.fingerprint for j in _plan(tmp="/tmp/b")]


@pytest.mark.parametrize("args, message", [
    (["--set", "cohort.min_count=3"], "unknown parameter"),
    (["--set", "cohort.min_train_count=abc"], "expects int"),
    (["--set", "04.analysis.top_codes=3"], "has no parameter"),
    (["--set", "09.seed=3"], "names notebook"),
    (["--only", "99"], "matches no notebook"),
])
def test_usage_errors_exit_2_before_running(tmp_path, args, message):
    proc = subprocess.run([sys.executable, "run_all.py", "--profile", "ci", "--out", str(tmp_path / "o"), *args],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and message in proc.stderr
    assert not (tmp_path / "o").exists()


def test_list_and_dry_run(tmp_path):
    proc = subprocess.run([sys.executable, "run_all.py", "--profile", "paper", "--dry-run", "--out", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "04_finetuning-ehr_big_xml_1024" in proc.stdout and "GPU-hours" in proc.stdout


def test_a_failing_notebook_exits_1_naming_notebook_and_cell(tmp_path):
    proc = subprocess.run([sys.executable, "run_all.py", "--profile", "ci", "--out", str(tmp_path / "o"),
                           "--only", "01", "--set", "cohort.min_train_count=100000", "--no-site"],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 1
    assert "01_cohort failed in cell" in proc.stderr and "min_train_count" in proc.stderr
    assert not (tmp_path / "o" / "notebooks" / "01_cohort.ipynb").exists()  # no half-written output
    assert (tmp_path / "o" / "failed" / "01_cohort.ipynb").exists()
    manifest = json.loads((tmp_path / "o" / "run_manifest.json").read_text())
    assert [n["status"] for n in manifest["notebooks"] if n["name"] == "01_cohort"] == ["failed"]


def test_bad_real_data_exits_2_and_data_files_enter_the_fingerprint(tmp_path):
    notes = tmp_path / "notes.csv"
    notes.write_text("patient_id,note_id,text\np1,n1," + "a" * 60 + "\np2,n1," + "b" * 60 + "\n")
    codes = tmp_path / "codes.csv"
    codes.write_text("note_id,code\nn1,I10\n")
    sets = ["--set", "data.source=csv", f"data.notes={notes}", f"data.codes={codes}"]
    proc = subprocess.run([sys.executable, "run_all.py", "--profile", "ci", "--out", str(tmp_path / "o"),
                           "--only", "01", "--no-site", *sets], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "DataError" in proc.stderr and "duplicate note_id" in proc.stderr and str(notes) in proc.stderr

    flat = {"data.source": "csv", "data.notes": str(notes), "data.codes": str(codes)}
    before = runner.source_data_hash(flat)
    codes.write_text("note_id,code\nn1,E78.5\n")
    assert runner.source_data_hash(flat) != before
    assert runner.source_data_hash(flat | {"data.source": "synthetic"}) == ""


def test_dry_run_estimates_from_a_measured_benchmark(tmp_path):
    bench = {"encoder": "mini", "machine": {"device": "cuda", "date": "d"},
             "baseline": {"name": "baseline", "real_tokens_per_s": 1000.0},
             "rungs": [{"name": "fast", "real_tokens_per_s": 4000.0}]}
    (tmp_path / "b.json").write_text(json.dumps(bench))
    proc = subprocess.run([sys.executable, "run_all.py", "--profile", "paper", "--dry-run", "--out", str(tmp_path / "o"),
                           "--bench", str(tmp_path / "b.json"), "--gpus", "4"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "measured: 4,000 real tokens/s (fast" in proc.stdout and "on 4 such device(s)" in proc.stdout


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_exits_130_keeps_finished_notebooks_and_the_next_run_continues(tmp_path, sig):
    out = tmp_path / "o"
    cmd = [sys.executable, "run_all.py", "--profile", "ci", "--out", str(out), "--only", "01", "02", "--no-site"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:  # interrupt while notebook 02 runs, after 01 has finished
        if "02_tokenizer: executing" in line:
            break
    time.sleep(2)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert (out / "notebooks" / "01_cohort.ipynb").exists()
    assert not (out / "notebooks" / "02_tokenizer.ipynb").exists()
    assert not list((out / "notebooks").glob(".*"))  # no temp leftovers
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert again.returncode == 0 and "01_cohort: cached" in again.stdout and "02_tokenizer: executed" in again.stdout
