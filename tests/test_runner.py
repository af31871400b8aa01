"""run_all's plan: one 04 execution per Table 2 row, fingerprints that change exactly where they should,
and usage errors (exit 2) before anything runs."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO

from bertxml_lib import runner


def _plan(sets=None, per=None, tmp="/tmp/plan"):
    return runner.plan("ci", Path(tmp), sets or {}, per or {})[0]


def test_plan_has_one_finetune_execution_per_row():
    names = [j.name for j in _plan()]
    assert names[:3] == ["01_cohort", "02_tokenizer", "03_pretraining-tiny"]
    finetune = [n for n in names if n.startswith("04")]
    assert finetune[:4] == [
        "04_finetuning-ehr_tiny_cls_512", "04_finetuning-ehr_tiny_cls_1024",
        "04_finetuning-ehr_tiny_xml_512", "04_finetuning-ehr_tiny_xml_1024"]
    pretrained = ["04_finetuning-offshelf_cls_512", "04_finetuning-offshelf_cls_1024",
                  "04_finetuning-offshelf_finetuned_cls_1024", "04_finetuning-clinical_cls_512"]
    assert [n for n in finetune if n in pretrained] == pretrained
    assert "03_pretraining-offshelf_finetuned" in names  # continued MLM before its row
    assert names.index("03_pretraining-offshelf_finetuned") < names.index("04_finetuning-offshelf_finetuned_cls_1024")
    assert ["04_finetuning-ehr_tiny_lan_512", "04_finetuning-ehr_tiny_hier_1024"] == [
        n for n in finetune if "_lan_" in n or "_hier_" in n]  # companion-study heads, first encoder only
    assert names[-5:] == ["05_baselines-logreg", "05_baselines-mha", "05_baselines-cnn", "06_per_icd_auc",
                          "07_attention"]


def test_extra_heads_and_baseline_models_are_checked():
    with pytest.raises(runner.config.ConfigError, match="finetune.extra_heads"):
        _plan({"finetune.extra_heads": ["laat_512"]})
    with pytest.raises(runner.config.ConfigError, match="baselines.models"):
        _plan({"baselines.models": ["logreg", "rnn"]})
    names = [j.name for j in _plan({"finetune.extra_heads": [], "baselines.models": ["logreg"]})]
    assert not any("_lan_" in n or "_hier_" in n for n in names)
    assert [n for n in names if n.startswith("05")] == ["05_baselines-logreg"]
    jobs = {j.name: j for j in _plan()}
    assert jobs["04_finetuning-ehr_tiny_hier_1024"].params["finetune_hier_segment_len"] == 128
    assert jobs["05_baselines-mha"].params["model"] == "mha"
    # Changing an MHA setting re-runs the MHA row and what reads every row, not the other baselines.
    base = {j.name: j.fingerprint for j in _plan()}
    mha = {j.name: j.fingerprint for j in _plan({"baselines.mha_epochs": 1})}
    assert sorted(n for n in base if base[n] != mha[n]) == ["05_baselines-mha", "06_per_icd_auc", "07_attention"]


def test_pretrained_path_reaches_only_the_clinical_row():
    base = {j.name: j for j in _plan()}
    given = {j.name: j for j in _plan(per={"04": {"pretrained_path": "/data/biobert"}})}
    assert given["04_finetuning-clinical_cls_512"].params["pretrained_path"] == "/data/biobert"
    assert base["04_finetuning-clinical_cls_512"].params["pretrained_path"] == ""
    changed = sorted(n for n in base if base[n].fingerprint != given[n].fingerprint)
    assert changed == ["04_finetuning-clinical_cls_512", "06_per_icd_auc", "07_attention"]
    assert all(j.params.get("pretrained_path", "") == "" for n, j in given.items() if "clinical" not in n)


def test_offshelf_rows_are_checked():
    with pytest.raises(runner.config.ConfigError, match="offshelf.rows"):
        _plan({"offshelf.rows": ["offshelf_cls_512", "biobert_512"]})
    names = [j.name for j in _plan({"offshelf.rows": []})]
    assert not any("offshelf" in n or "clinical" in n for n in names)


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
    # Notebook 02 alone on an empty folder: no cohort to read, a failure that is not about input data.
    proc = subprocess.run([sys.executable, "run_all.py", "--profile", "ci", "--out", str(tmp_path / "o"),
                           "--only", "02", "--no-site"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    assert "02_tokenizer failed in cell" in proc.stderr and "run notebook 01_cohort first" in proc.stderr
    assert not (tmp_path / "o" / "notebooks" / "02_tokenizer.ipynb").exists()  # no half-written output
    assert (tmp_path / "o" / "failed" / "02_tokenizer.ipynb").exists()
    manifest = json.loads((tmp_path / "o" / "run_manifest.json").read_text())
    assert [n["status"] for n in manifest["notebooks"] if n["name"] == "02_tokenizer"] == ["failed"]


def test_an_empty_label_set_exits_2_naming_the_threshold(tmp_path):
    proc = subprocess.run([sys.executable, "run_all.py", "--profile", "ci", "--out", str(tmp_path / "o"),
                           "--only", "01", "--set", "cohort.min_train_count=100000", "--no-site"],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "01_cohort failed in cell" in proc.stderr and "DataError" in proc.stderr
    assert "cohort.min_train_count=100000" in proc.stderr and "data.source=synthetic" in proc.stderr
    assert not (tmp_path / "o" / "notebooks" / "01_cohort.ipynb").exists()
    assert not (tmp_path / "o" / "cohort" / "notes.parquet").exists()  # nothing half-written


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


def test_show_text_auto_is_resolved_and_reexecutes_only_the_notebooks_that_draw_text():
    base = {j.name: j for j in _plan()}
    assert base["07_attention"].params["render_show_text"] is True  # auto: the synthetic source's text may show
    real = {j.name: j for j in _plan({"data.source": "csv", "data.notes": "n.csv", "data.codes": "c.csv"})}
    assert real["07_attention"].params["render_show_text"] is False  # auto: real notes stay hidden
    same = {j.name: j.fingerprint for j in _plan({"render.show_text": True})}
    assert same == {n: j.fingerprint for n, j in base.items()}
    hidden = {j.name: j.fingerprint for j in _plan({"render.show_text": False})}
    changed = sorted(n for n in base if base[n].fingerprint != hidden[n])
    # Only the notebooks that take the flag re-execute (Figure 1, Figures 3-4), not fine-tuning downstream of 03.
    assert "03_pretraining-tiny" in changed and "07_attention" in changed
    assert all(n.startswith(("03_", "07_")) for n in changed)
