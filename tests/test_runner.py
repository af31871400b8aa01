"""run_all's plan: one 04 execution per Table 2 row, fingerprints that change exactly where they should,
and usage errors (exit 2) before anything runs."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO, process_alive

from bertxml_lib import runner


PRETRAINED_ROWS = {"offshelf.rows": ["offshelf_cls_512", "offshelf_cls_1024", "offshelf_finetuned_cls_1024",
                                     "clinical_cls_512"]}  # the rows on encoders not pretrained here, planned explicitly


def _plan(sets=None, per=None, tmp="/tmp/plan"):
    return runner.plan("ci", Path(tmp), sets or {}, per or {})[0]


def test_plan_has_one_finetune_execution_per_row():
    names = [j.name for j in _plan(PRETRAINED_ROWS)]
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
    tail = names[names.index("05_baselines-logreg"):]
    assert tail[:6] == ["05_baselines-logreg", "05_baselines-mha", "05_baselines-cnn", "06_per_icd_auc",
                        "07_attention", "08_scaling"]


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
    mha = {j.name: j.fingerprint for j in _plan({"baselines.mha_epochs": 3})}
    changed = sorted(n for n in base if base[n] != mha[n])
    assert changed[:3] == ["05_baselines-mha", "06_per_icd_auc", "07_attention"]
    assert all(n[:2] > "07" for n in changed[3:])  # and later notebooks that read every row


def test_pretrained_path_reaches_only_the_clinical_row(tmp_path):
    (tmp_path / "biobert").mkdir()
    (tmp_path / "biobert" / "config.json").write_text("{}")
    base = {j.name: j for j in _plan(PRETRAINED_ROWS)}
    given = {j.name: j for j in _plan(PRETRAINED_ROWS, per={"04": {"pretrained_path": str(tmp_path / "biobert")}})}
    assert given["04_finetuning-clinical_cls_512"].params["pretrained_path"] == str(tmp_path / "biobert")
    assert base["04_finetuning-clinical_cls_512"].params["pretrained_path"] == ""
    changed = sorted(n for n in base if base[n].fingerprint != given[n].fingerprint)
    assert changed[:3] == ["04_finetuning-clinical_cls_512", "06_per_icd_auc", "07_attention"]
    assert all(n[:2] > "07" for n in changed[3:])
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


def test_scaling_fine_tunes_the_first_encoder_and_a_scaling_setting_reruns_only_it():
    jobs = {j.name: j for j in _plan({"pretrain.encoders": ["tiny", "mini"]})}
    job = jobs["08_scaling"]
    assert job.params["encoder"] == "tiny"
    assert job.upstream == ["01_cohort", "02_tokenizer", "03_pretraining-tiny"]  # the cohort, not Table 2's rows
    base = {j.name: j.fingerprint for j in _plan()}
    more = {j.name: j.fingerprint for j in _plan({"scaling.epochs": 3})}
    assert sorted(n for n in base if base[n] != more[n]) == ["08_scaling"]
    assert not any(n.startswith("08") for n in (j.name for j in _plan({"pretrain.encoders": []})))


def test_output_folder_does_not_enter_fingerprints():
    assert [j.fingerprint for j in _plan(tmp="/tmp/a")] == [j.fingerprint for j in _plan(tmp="/tmp/b")]


@pytest.mark.parametrize("args, message", [
    (["--set", "cohort.min_count=3"], "unknown parameter"),
    (["--set", "cohort.min_train_count=abc"], "expects int"),
    (["--set", "04.analysis.top_codes=3"], "has no parameter"),
    (["--set", "99.seed=3"], "names notebook"),
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
    cmd = [sys.executable, "run_all.py", "--profile", "ci", "--out", str(tmp_path / "o"), "--only", "02", "--no-site"]
    # Notebook 02 alone on an empty folder is refused before it starts: its upstream 01 never ran here.
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and "02_tokenizer reads 01_cohort" in proc.stderr and not (tmp_path / "o").exists()
    # A cache that claims 01 ran while its outputs are gone: 02 starts and fails, not because of input data.
    jobs = {j.name: j for j in _plan(tmp=tmp_path / "o")}
    fake_finished_run(tmp_path / "o", [jobs["01_cohort"]])
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
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
    evidence = tmp_path / "evidence.csv"
    evidence.write_text("note_id,code,spans\nn1,E78.5,0 5\n")
    with_evidence = runner.source_data_hash(flat | {"data.evidence": str(evidence)})
    evidence.write_text("note_id,code,spans\nn1,E78.5,0 6\n")  # the spans enter the fingerprint, not only the path
    assert runner.source_data_hash(flat | {"data.evidence": str(evidence)}) not in (with_evidence, before)
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
    out, hold = tmp_path / "o", tmp_path / "hold"
    hold.mkdir()
    cmd = [sys.executable, "run_all.py", "--profile", "ci", "--out", str(out), "--only", "01", "02", "--no-site"]
    # The runner's test hook: notebook 02 writes hold/ready after its parameters and waits there, so the
    # signal arrives while its kernel runs, at a point this test controls (no sleeps, no race).
    env = dict(os.environ, **{runner.HOLD_JOB_ENV: "02_tokenizer", runner.HOLD_DIR_ENV: str(hold)})
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 900
    while not (hold / "ready").exists():
        assert proc.poll() is None and time.monotonic() < deadline, "notebook 02 never reached the hold cell"
        time.sleep(0.2)
    assert (out / "notebooks" / "01_cohort.ipynb").exists()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    assert not process_alive(int((hold / "ready").read_text()))  # the held kernel did not outlive the run
    assert (out / "notebooks" / "01_cohort.ipynb").exists()
    assert not (out / "notebooks" / "02_tokenizer.ipynb").exists()
    assert not list((out / "notebooks").glob(".*"))  # no temp leftovers
    again = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert again.returncode == 0 and "01_cohort: cached" in again.stdout and "02_tokenizer: executed" in again.stdout
    assert "runner.hold_point" not in (out / "notebooks" / "02_tokenizer.ipynb").read_text()  # test-only cell


def test_show_text_auto_is_resolved_and_reexecutes_only_the_notebooks_that_draw_text(tmp_path):
    base = {j.name: j for j in _plan()}
    assert base["07_attention"].params["render_show_text"] is True  # auto: the synthetic source's text may show
    for name in ("n.csv", "c.csv"):
        (tmp_path / name).write_text("x\n")
    real = {j.name: j for j in _plan({"data.source": "csv", "data.notes": str(tmp_path / "n.csv"),
                                      "data.codes": str(tmp_path / "c.csv")})}
    assert real["07_attention"].params["render_show_text"] is False  # auto: real notes stay hidden
    same = {j.name: j.fingerprint for j in _plan({"render.show_text": True})}
    assert same == {n: j.fingerprint for n, j in base.items()}
    hidden = {j.name: j.fingerprint for j in _plan({"render.show_text": False})}
    changed = sorted(n for n in base if base[n].fingerprint != hidden[n])
    # Only the notebooks that take the flag re-execute (Figure 1, Figures 3-4, the evidence review list), not
    # fine-tuning downstream of 03.
    assert "03_pretraining-tiny" in changed and "07_attention" in changed
    takes_it = {j.name for j in base.values() if "render_show_text" in j.params}
    assert set(changed) <= takes_it and not any(n.startswith("04_") for n in changed)


# --- up-front checks: everything that needs no kernel runs first, in --dry-run too, and writes nothing -------

@pytest.mark.parametrize("sets, message", [
    (["data.source=foo"], "expects one of synthetic, csv"),
    (["data.source=csv"], "data.source=csv reads data.notes"),
    (["data.source=csv", "data.notes=/no/such/notes.csv", "data.codes=/no/such/codes.csv"],
     "data.notes=/no/such/notes.csv: expected an existing file"),
    (["data.source=codiesp", "data.dir=/no/such/codiesp"], "expected an existing folder for data.source=codiesp"),
    (["data.icd_version=11"], "data.icd_version"),
    (["cohort.split_fractions=[0.5,0.5,0.5]"], "summing to 1"),
    (["04.pretrained_path=/no/such/biobert"], "expected a local HF checkpoint folder"),
])
@pytest.mark.parametrize("mode", [["--dry-run"], ["--no-site"]])
def test_bad_values_exit_2_before_any_kernel_in_dry_run_too_and_write_nothing(tmp_path, sets, message, mode):
    out = tmp_path / "o"
    proc = subprocess.run([sys.executable, "run_all.py", "--profile", "ci", "--out", str(out), *mode, "--set", *sets],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert "executing" not in proc.stdout
    assert not out.exists()  # no failed/, no run_manifest.json, no run_identity.json


def test_profile_values_are_type_checked_like_set_values(tmp_path):
    doc = runner.config.load_profiles_file()
    doc["profiles"]["broken"] = {"finetune": {"epochs": "three"}}
    path = tmp_path / "profiles.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(runner.config.ConfigError, match="profile 'broken'.*finetune.epochs.*expects int"):
        runner.config.resolve("broken", path=path)
    doc["profiles"]["broken"] = {"data": {"source": "foo"}}
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(runner.config.ConfigError, match="profile 'broken'.*data.source"):
        runner.config.resolve("broken", path=path)
    for name in runner.config.profile_names():  # the shipped profiles pass
        runner.config.resolve(name)


# --- the cache records what a notebook consumed --------------------------------------------------------------

def fake_finished_run(out: Path, jobs) -> Path:
    """A run folder whose cache says every job ran at these fingerprints (no kernel: records and empty outputs),
    written as `runner.execute` writes them."""
    for job in jobs:
        runner.executed_path(out, job).parent.mkdir(parents=True, exist_ok=True)
        runner.executed_path(out, job).write_text("{}")
        write_record(out, job)
    return out


def write_record(out: Path, job, upstream=None):
    runner.write_json(runner.cache_file(out, job), {
        "fingerprint": job.fingerprint, "result_fingerprint": job.result_fingerprint,
        "upstream": job.upstream_results if upstream is None else upstream, "seconds": 12.5,
        "executed_at": "2026-01-01T00:00:00+00:00", "producer": "run_all"})


def test_only_with_changed_upstream_parameters_refuses_with_the_command_to_run(tmp_path):
    """`--set 04.finetune.epochs=5 --only 06` used to run 06 on the old 04 predictions, record it under the new
    fingerprint, and a later full run re-executed 04 but reported 06 as cached: Table 2 no longer matched."""
    out = fake_finished_run(tmp_path / "run", _plan(tmp=tmp_path / "run"))
    new = _plan(per={"04": {"finetune.epochs": 5}}, tmp=tmp_path / "run")
    assert {(a, b) for a, b in runner.stale_upstream(out, new, runner.select(new, ["06"], None), False)} >= {
        ("06_per_icd_auc", "04_finetuning-ehr_tiny_xml_512")}
    before = sorted(p.name for p in out.rglob("*"))
    for mode in ([], ["--dry-run"]):
        proc = subprocess.run([sys.executable, "run_all.py", "--profile", "ci", "--out", str(out), "--no-site",
                               "--set", "04.finetune.epochs=5", "--only", "06", *mode],
                              cwd=REPO, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert "06_per_icd_auc reads 04_finetuning-ehr_tiny_xml_512" in proc.stderr
        command = proc.stderr.split("run the upstream notebooks too:")[1].strip()
        assert command.startswith("python run_all.py --profile ci --out") and "--set 04.finetune.epochs=5" in command
        assert "04_finetuning-ehr_tiny_xml_512" in command and command.endswith("06_per_icd_auc")
        assert "01_cohort" not in command  # only what is out of date
    assert sorted(p.name for p in out.rglob("*")) == before  # nothing written, nothing recorded
    # With the upstream notebooks in the selection the plan is accepted.
    names = [n for n in command.split("--only ")[1].split()]
    assert runner.stale_upstream(out, new, [j for j in new if j.name in names], False) == []


def test_a_job_is_not_cached_once_its_upstream_outputs_were_replaced(tmp_path):
    """The other half of the hazard: `--only 04` with other parameters replaces 04's outputs; a later run with
    the old parameters must re-execute 04 and then 06, never report 06 as cached."""
    jobs = _plan(tmp=tmp_path / "run")
    out = fake_finished_run(tmp_path / "run", jobs)
    by_name = {j.name: j for j in jobs}
    assert all(runner.is_cached(out, j) for j in jobs)
    changed = {j.name: j for j in _plan(per={"04": {"finetune.epochs": 5}}, tmp=out)}
    write_record(out, changed["04_finetuning-ehr_tiny_xml_512"])  # as `--only 04` would leave it
    assert not runner.is_cached(out, by_name["04_finetuning-ehr_tiny_xml_512"])
    assert not runner.is_cached(out, by_name["06_per_icd_auc"]) and not runner.is_cached(out, by_name["07_attention"])
    assert runner.is_cached(out, by_name["04_finetuning-ehr_tiny_xml_1024"])
    assert runner.stale_upstream(out, jobs, jobs, False) == []  # a full run re-executes 04, then 06 and 07
    # A record that names other consumed upstream outputs than the plan's is never taken as cached.
    write_record(out, by_name["04_finetuning-ehr_tiny_xml_512"])
    write_record(out, by_name["06_per_icd_auc"], upstream={"01_cohort": "elsewhere"})
    assert not runner.is_cached(out, by_name["06_per_icd_auc"])


def test_execute_never_records_a_job_on_other_upstream_outputs(tmp_path):
    jobs = {j.name: j for j in _plan(tmp=tmp_path)}
    with pytest.raises(runner.config.ConfigError, match="upstream outputs of 01_cohort"):
        runner.execute(jobs["02_tokenizer"], tmp_path, 60, echo=False)  # no kernel starts
    assert not runner.cache_file(tmp_path, jobs["02_tokenizer"]).exists()


# --- a run folder keeps its data identity --------------------------------------------------------------------

def test_a_folder_of_other_data_is_refused_naming_the_difference(tmp_path):
    release = tmp_path / "codiesp"
    (release / "final_dataset_v4_to_publish").mkdir(parents=True)
    (release / "final_dataset_v4_to_publish" / "x.tsv").write_text("a\tb\n")
    out = tmp_path / "run"
    out.mkdir()
    real = runner.config.resolve("ci", {"data.source": "codiesp", "data.dir": str(release)})
    runner.write_identity(out, real)
    (out / "cohort").mkdir()
    (out / "cohort" / "notes.parquet").write_text("real-data outputs")
    before = sorted(p.name for p in out.rglob("*"))
    for mode in (["--dry-run"], ["--no-site"]):
        proc = subprocess.run([sys.executable, "run_all.py", "--profile", "ci", "--out", str(out), *mode],
                              cwd=REPO, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert "data.source: folder has 'codiesp', this run 'synthetic'" in proc.stderr
        assert "--force-new" in proc.stderr and "executing" not in proc.stdout
    assert sorted(p.name for p in out.rglob("*")) == before
    # Same data: accepted. Changed files under the same path: named.
    assert runner.check_identity(out, real) == []
    (release / "final_dataset_v4_to_publish" / "x.tsv").write_text("a\tc\n")
    assert any("changed since this folder was made" in d for d in runner.check_identity(out, real))
    # --force-new in a dry run says what it would do and moves nothing.
    proc = subprocess.run([sys.executable, "run_all.py", "--profile", "ci", "--out", str(out), "--dry-run",
                           "--force-new"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "would be moved aside" in proc.stdout, proc.stderr
    assert (out / "cohort" / "notes.parquet").exists()


def test_force_new_moves_the_old_folder_aside_and_deletes_nothing(tmp_path):
    out = tmp_path / "run"
    (out / "cohort").mkdir(parents=True)
    (out / "cohort" / "notes.parquet").write_text("real-data outputs")
    aside = runner.move_aside(out)
    assert not out.exists() and aside.parent == tmp_path and aside.name.startswith("run.replaced-")
    assert (aside / "cohort" / "notes.parquet").read_text() == "real-data outputs"
    out.mkdir()
    assert runner.move_aside(out) != aside  # a second replacement gets its own name


def test_a_folder_from_before_identities_is_known_by_its_manifest(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    flat = runner.config.resolve("ci", {"data.source": "codiesp", "data.dir": str(tmp_path)})
    runner.write_json(out / "run_manifest.json", {"parameters": flat})
    diffs = runner.check_identity(out, runner.config.resolve("ci"))
    assert "data.source: folder has 'codiesp', this run 'synthetic'" in diffs
    assert runner.check_identity(tmp_path / "new", runner.config.resolve("ci")) == []
    # A parameter added to the profiles later is its default in an older folder, not a difference.
    synthetic = runner.config.resolve("ci")
    runner.write_json(out / "run_manifest.json", {"parameters": {k: v for k, v in synthetic.items()
                                                                 if k != "data.icd_version"}})
    assert runner.check_identity(out, synthetic) == []


# --- the manifest keeps history ------------------------------------------------------------------------------

def test_a_cached_rerun_keeps_each_notebooks_last_real_execution_and_when_it_was_reused(tmp_path):
    jobs = _plan(tmp=tmp_path)
    fake_finished_run(tmp_path, jobs)
    flat = runner.config.resolve("ci")
    first = runner.write_manifest(tmp_path, "ci", flat, jobs, {j.name: {"status": "executed", "seconds": 12.5}
                                                             for j in jobs}, 100.0)
    assert first["notebooks"][0]["reused_at"] == [] and len(first["runs"]) == 1
    again = runner.write_manifest(tmp_path, "ci", flat, jobs, {j.name: {"status": "cached", "seconds": 0.0}
                                                             for j in jobs}, 1.0)
    entry = again["notebooks"][0]
    assert entry["status"] == "cached" and entry["seconds"] == 0.0
    assert entry["last_execution"] == {"at": "2026-01-01T00:00:00+00:00", "seconds": 12.5,
                                       "fingerprint": jobs[0].fingerprint, "producer": "run_all"}
    assert len(entry["reused_at"]) == 1 and [r["cached"] for r in again["runs"]] == [0, len(jobs)]
    third = runner.write_manifest(tmp_path, "ci", flat, jobs, {j.name: {"status": "cached", "seconds": 0.0}
                                                             for j in jobs}, 1.0)
    assert len(third["notebooks"][0]["reused_at"]) == 2 and len(third["runs"]) == 3
    assert third["identity"]["source"] == "synthetic"


# --- executed notebooks say which row they ran -----------------------------------------------------------------

def test_each_04_and_05_execution_gets_a_title_cell_naming_its_row():
    jobs = {j.name: j for j in _plan()}
    nb = runner.notebook_to_execute(jobs["04_finetuning-ehr_tiny_xml_512"])
    assert nb.cells[0].source.startswith("# 04") and "run-title" in nb.cells[1].metadata["tags"]
    assert "Table 2 row `ehr_tiny_xml_512`" in nb.cells[1].source and "head `xml`" in nb.cells[1].source
    assert "`mha_512`" in runner.notebook_to_execute(jobs["05_baselines-mha"]).cells[1].source
    assert "encoder `tiny`" in runner.notebook_to_execute(jobs["03_pretraining-tiny"]).cells[1].source
    stored = runner.notebook_to_execute(jobs["06_per_icd_auc"])
    assert not any("run-title" in c.metadata.get("tags", []) for c in stored.cells)
    assert not any("hold_point" in c.source for c in stored.cells)  # the test hook only when asked for


def test_progress_bars_go_to_the_log_as_plain_lines(tmp_path, monkeypatch):
    from bertxml_lib.core import progress

    log = tmp_path / "job.log"
    monkeypatch.setenv(progress.PROGRESS_LOG_ENV, str(log))
    for _ in progress.progress_bar(range(3), desc="epoch 1/1", mininterval=0):
        pass
    text = log.read_text()
    assert "epoch 1/1" in text and "3/3" in text and "\r" not in text and "\x1b" not in text
