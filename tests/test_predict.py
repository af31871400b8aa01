"""`python -m bertxml_lib.predict`: top-k codes, attention evidence spans and clear input errors."""
import csv
import io
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
import transformers
from conftest import REPO

from bertxml_lib.core.atomic import write_json
from bertxml_lib.inference import evidence, predict
from bertxml_lib.models.modeling import BertForIcdCoding
from bertxml_lib.text.segments import encode_notes
from bertxml_lib.text.tokenizer import train_wordpiece
from bertxml_lib.training.finetune import predict_notes

CODES = ["I10", "E11.9", "K21.9"]
WORDS = ("patient reports chest pain and shortness of breath with a history of hypertension diabetes and reflux "
         "seen today for follow up").split()
NOTES = [
    ("n1", "Patient reports chest pain; history of hypertension."),
    ("n2", " ".join(WORDS * 3) + ", \"quoted\" café"),  # several segments at max_len 16
    ("n3", "reflux"),  # a one-word note
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder with a tiny tokenizer, one saved model per head (max_len 16 in its config, as notebook 04
    saves it) and a label set."""
    root = tmp_path_factory.mktemp("run")
    rng = np.random.default_rng(0)
    sentences = [" ".join(rng.choice(WORDS, 12)) for _ in range(60)]
    tok = train_wordpiece(sentences, vocab_size=120, min_frequency=1, out_dir=root / "tokenizer")
    for head in ("cls", "xml"):
        config = transformers.BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1,
                                         num_attention_heads=2, intermediate_size=32, max_position_embeddings=64,
                                         pad_token_id=tok.pad_token_id)
        config.icd_head, config.icd_codes, config.icd_max_len = head, CODES, 16
        torch.manual_seed(0)
        folder = root / "models" / f"ehr_tiny_{head}_16"
        BertForIcdCoding(config).save_pretrained(folder)
        tok.save_pretrained(folder)
    write_json(root / "cohort" / "label_set.json",
               {"codes": CODES, "descriptions": {c: f"label-set {c}" for c in CODES}})
    notes = root / "notes.csv"
    with open(notes, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([("note_id", "text"), *NOTES])
    return root


def cli(*args, cwd=REPO):
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return subprocess.run([sys.executable, "-m", "bertxml_lib.predict", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=300)


def expected_probs(folder) -> np.ndarray:
    model = BertForIcdCoding.from_pretrained(folder)
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    return predict_notes(model, tok, [t for _, t in NOTES], 16, device="cpu", progress=False)


def test_cli_xml_json_gives_top_codes_and_evidence_spans(run_dir):
    folder = run_dir / "models" / "ehr_tiny_xml_16"
    done = cli("--model", folder, "--top-k", 2, "--spans", 2, run_dir / "notes.csv")
    assert done.returncode == 0, done.stderr
    assert "predict" in done.stderr  # the progress bar goes to stderr, the result alone to stdout
    out = json.loads(done.stdout)
    assert (out["head"], out["max_len"], out["max_len_source"]) == ("xml", 16, "config.icd_max_len")
    probs = expected_probs(folder)
    assert [n["note_id"] for n in out["notes"]] == ["n1", "n2", "n3"]
    for (note_id, text), note, p in zip(NOTES, out["notes"], probs):
        codes = [c["code"] for c in note["codes"]]
        assert codes == [CODES[j] for j in np.argsort(-p, kind="stable")[:2]]
        assert [c["probability"] for c in note["codes"]] == pytest.approx(np.sort(p)[::-1][:2], abs=1e-6)
        assert note["codes"][0]["description"] == f"label-set {codes[0]}"
        for c in note["codes"]:
            assert 1 <= len(c["evidence"]) <= 2 if text else c["evidence"] == []
            for span in c["evidence"]:
                assert 0 <= span["start"] < span["end"] <= len(text)
                assert span["text"] == text[span["start"]:span["end"]] and span["text"].strip() == span["text"]
    n_segments = len(encode_notes(transformers.AutoTokenizer.from_pretrained(folder), [NOTES[1][1]], 16)[0])
    assert n_segments > 3
    assert {s["segment"] for c in out["notes"][1]["codes"] for s in c["evidence"]} <= set(range(n_segments))


def test_cli_cls_csv_outside_a_run_folder(run_dir, tmp_path):
    # A copied model folder: descriptions from icd.describe (no label set beside it).
    folder = tmp_path / "elsewhere"
    shutil.copytree(run_dir / "models" / "ehr_tiny_cls_16", folder)
    done = cli("--model", folder, "--max-len", 16, "--format", "csv", "--quiet", run_dir / "notes.csv")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # --quiet: no progress bar (ours or transformers'), no library messages
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [(r["note_id"], r["rank"]) for r in rows] == [(n, str(k)) for n, _ in NOTES for k in (1, 2, 3)]
    probs = expected_probs(folder)
    assert [float(r["probability"]) for r in rows[:3]] == pytest.approx(np.sort(probs[0])[::-1], abs=1e-6)
    assert {r["code"]: r["description"] for r in rows[:3]}["I10"] == "Essential (primary) hypertension"
    assert all(r["evidence"] == "" for r in rows)  # the [CLS] head has no label attention


def test_xml_csv_holds_evidence_as_json_and_output_file(run_dir, tmp_path, capsys):
    out_file = tmp_path / "out.csv"
    args = ["--model", str(run_dir / "models" / "ehr_tiny_xml_16"), "--format", "csv", "--top-k", "9", "--quiet"]
    assert predict.main([*args, "--output", str(out_file), str(run_dir / "notes.csv")]) == 0
    assert capsys.readouterr().out == ""
    rows = list(csv.DictReader(io.StringIO(out_file.read_text())))
    assert len(rows) == 3 * len(CODES)  # top-k beyond the label set gives every code once
    for row in rows:
        text = dict(NOTES)[row["note_id"]]
        for span in json.loads(row["evidence"]):
            assert span["text"] == text[span["start"]:span["end"]]


def test_cli_exit_code_and_message_on_bad_input(run_dir, tmp_path):
    done = cli("--model", run_dir / "models" / "ehr_tiny_xml_16", tmp_path / "missing.csv")
    assert done.returncode == 2 and "missing.csv: notes file not found" in done.stderr and done.stdout == ""


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("data, message", [
    (b"note_id,text\nn1,caf\xe9\n", "not UTF-8 text (byte 0xe9 at line 2)"),
    (b"id,text\nn1,hello\n", "missing column(s) 'note_id'"),
    (b"note_id,body\nn1,hello\n", "missing column(s) 'text'"),
    (b"note_id,text\n", "no notes (only a header)"),
    (b"", "empty file"),
    (b"note_id,text\n,hello\n", "column 'note_id' is empty on data row(s) [1]"),
    (b"note_id,text\nn1,a\nn1,b\n", "column 'note_id' repeats ['n1']"),
])
def test_bad_notes_files_exit_2_naming_file_and_column(run_dir, tmp_path, capsys, data, message):
    path = _write(tmp_path / "notes.csv", data)
    assert predict.main(["--model", str(run_dir / "models" / "ehr_tiny_xml_16"), str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: ") and message in err


def test_bad_model_folders_exit_2(run_dir, tmp_path, capsys):
    notes = str(run_dir / "notes.csv")
    assert predict.main(["--model", str(tmp_path / "nope"), notes]) == 2
    assert "nope: model folder not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert predict.main(["--model", str(tmp_path / "empty"), notes]) == 2
    assert "no config.json" in capsys.readouterr().err
    transformers.BertConfig(vocab_size=10).save_pretrained(tmp_path / "pretrained_tiny")  # an MLM encoder, no head
    assert predict.main(["--model", str(tmp_path / "pretrained_tiny"), notes]) == 2
    assert "not an ICD coding model" in capsys.readouterr().err
    no_tok = tmp_path / "ehr_x_xml_16"
    shutil.copytree(run_dir / "models" / "ehr_tiny_xml_16", no_tok)
    (no_tok / "tokenizer.json").unlink()
    assert predict.main(["--model", str(no_tok), notes]) == 2
    assert "no tokenizer.json" in capsys.readouterr().err
    assert predict.main(["--model", str(run_dir / "models" / "ehr_tiny_xml_16"), "--max-len", "100", notes]) == 2
    assert "must lie in [3, 64]" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # argparse: the same status for a bad option
        predict.main(["--model", "m", "--top-k", "0", notes])
    assert exit_info.value.code == 2


def test_max_len_comes_from_the_models_config_then_the_run_record_never_the_folder_name(run_dir, tmp_path):
    config = transformers.BertConfig(max_position_embeddings=1024)
    folder = tmp_path / "out" / "models" / "ehr_tiny_xml_512"  # a name that says 512: not a source
    folder.mkdir(parents=True)
    with pytest.raises(predict.InputError, match="records no icd_max_len.*pass --max-len"):
        predict.resolve_max_len(folder, config, None)  # never the 1024 positions, never the name
    write_json(tmp_path / "out" / "metrics" / "ehr_tiny_xml_512.json", {"max_len": 32})
    assert predict.resolve_max_len(folder, config, None)[0] == 32
    config.icd_max_len = 48
    assert predict.resolve_max_len(folder, config, None) == (48, "config.icd_max_len")
    assert predict.resolve_max_len(folder, config, 20) == (20, "--max-len")


def test_a_model_folder_copied_under_another_name_keeps_its_max_len(run_dir, tmp_path):
    """A folder renamed `my_coder_1024` once fell back to max_len 1024 (its name, else its positions)."""
    folder = tmp_path / "my_coder_1024"
    shutil.copytree(run_dir / "models" / "ehr_tiny_xml_16", folder)
    done = cli("--model", folder, "--top-k", 1, "--quiet", run_dir / "notes.csv")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["head"], out["max_len"], out["max_len_source"]) == ("xml", 16, "config.icd_max_len")
    probs = expected_probs(folder)
    assert [n["codes"][0]["probability"] for n in out["notes"]] == pytest.approx(probs.max(1), abs=1e-6)


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_a_note_without_text_is_an_error_naming_its_row(run_dir, tmp_path, capsys, text):
    notes = tmp_path / "notes.csv"
    with open(notes, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([("note_id", "text"), ("a", "chest pain"), ("b", text)])
    assert predict.main(["--model", str(run_dir / "models" / "ehr_tiny_xml_16"), str(notes)]) == 2
    err = capsys.readouterr().err
    assert "column 'text' is empty or whitespace on data row(s) [2] (note_id ['b'])" in err
    with pytest.raises(predict.InputError, match="note_id \\['b'\\]"):
        predict.predict(run_dir / "models" / "ehr_tiny_xml_16", ["a", "b"], ["chest pain", text])


def test_a_dash_reads_the_notes_from_standard_input(run_dir):
    data = (run_dir / "notes.csv").read_text(encoding="utf-8")
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    done = subprocess.run([sys.executable, "-m", "bertxml_lib.predict", "--model",
                           str(run_dir / "models" / "ehr_tiny_xml_16"), "--top-k", "2", "--quiet", "-"], input=data,
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    from_file = json.loads(cli("--model", run_dir / "models" / "ehr_tiny_xml_16", "--top-k", 2, "--quiet",
                               run_dir / "notes.csv").stdout)
    assert json.loads(done.stdout)["notes"] == from_file["notes"]


@pytest.mark.parametrize("args, message", [
    (["--model", "/no/such/model", "NOTES"], "/no/such/model: model folder not found"),
    (["--model", "MODEL", "/no/such/notes.csv"], "/no/such/notes.csv: notes file not found"),
    (["--model", "PRETRAINED", "NOTES"], "not an ICD coding model"),
    (["--model", "MODEL", "--output", "/no/such/dir/out.json", "NOTES"], "its folder does not exist"),
])
def test_argument_and_path_errors_come_before_torch_and_transformers_load(run_dir, tmp_path, args, message):
    transformers.BertConfig(vocab_size=10).save_pretrained(tmp_path / "pretrained_tiny")
    names = {"MODEL": str(run_dir / "models" / "ehr_tiny_xml_16"), "NOTES": str(run_dir / "notes.csv"),
             "PRETRAINED": str(tmp_path / "pretrained_tiny")}
    args = [names.get(a, a) for a in args]
    code = ("import sys\nfrom bertxml_lib import predict\nrc = predict.main(sys.argv[1:])\n"
            "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\nsys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert done.stdout.strip() == "[]"  # neither was imported


# --- evidence logic with a model whose attention is known -------------------------------------

class KeywordAttention(torch.nn.Module):
    """Code j attends only to tokens of `keywords[j]` (uniformly when absent); logit +1 if present."""

    def __init__(self, keyword_ids: list[list[int]]):
        super().__init__()
        self.keyword_ids = keyword_ids

    def forward(self, input_ids, attention_mask):
        hits = torch.stack([torch.isin(input_ids, torch.tensor(ids)) for ids in self.keyword_ids], 1).float()
        fallback = attention_mask[:, None, :].float().expand_as(hits)
        att = torch.where(hits.sum(-1, keepdim=True) > 0, hits, fallback)
        att = att / att.sum(-1, keepdim=True)  # (batch, L, seq)
        return transformers.utils.ModelOutput(logits=hits.amax(-1) * 2 - 1, label_attention=att)


def test_evidence_finds_the_attended_words_in_any_segment(run_dir):
    tok = transformers.AutoTokenizer.from_pretrained(run_dir / "models" / "ehr_tiny_xml_16")
    text = " ".join(["patient seen today"] * 8) + " with chest pain and reflux"
    ids = lambda w: tok(w, add_special_tokens=False)["input_ids"]  # noqa: E731
    model = KeywordAttention([ids("reflux"), ids("chest pain"), ids("diabetes")])
    evidence = predict.attention_evidence(model, tok, [text, "reflux"], 16, np.array([[0, 1, 2], [0, 1, 2]]),
                                          n_spans=1, span_words=2, device="cpu", progress=False)
    position = len(tok(text[:text.index("reflux")], add_special_tokens=False)["input_ids"])
    reflux = evidence[0][0][0]
    assert (reflux["text"], reflux["start"], reflux["segment"]) == ("reflux", text.index("reflux"), position // 14)
    assert reflux["segment"] >= 1 and reflux["attention"] == pytest.approx(1.0)
    chest = evidence[0][1][0]  # two adjacent attended words merge into one span
    assert chest["text"] == "chest pain" and chest["attention"] == pytest.approx(1.0)
    assert evidence[1][0][0]["text"] == "reflux" and evidence[1][0][0]["segment"] == 0
    assert len(evidence[0][2]) == 1  # absent keyword: the note still gets its best (uniform) span


def test_evidence_segments_match_the_inference_segments(run_dir):
    tok = transformers.AutoTokenizer.from_pretrained(run_dir / "models" / "ehr_tiny_xml_16")
    texts = [t for _, t in NOTES]
    segments, _ = encode_notes(tok, texts, 16)
    with_offsets = predict._segments_with_offsets(tok, texts, 16)
    assert [s[0] for note in with_offsets for s in note] == segments
    assert all(len(s[1]) == len(s[0]) - 2 == len(s[2]) for note in with_offsets for s in note)


def test_spans_merge_adjacent_top_words():
    # Tokens: w0 w1 w1 w2 w3 (w1 is two word pieces); top 2 words by mass: w1 (0.5) and w2 (0.3) -> one span.
    weights = np.array([0.1, 0.25, 0.25, 0.3, 0.1])
    offsets = np.array([[0, 2], [3, 5], [5, 7], [8, 10], [11, 13]])
    words = np.array([0, 1, 1, 2, 3])
    assert evidence.merge_spans(weights, offsets, words, 2) == [(3, 10, pytest.approx(0.8))]
    assert evidence.merge_spans(weights, offsets, words, 1) == [(3, 7, pytest.approx(0.5))]
    # w3 is in the top 3 but below the uniform share 1/4: left out, so w1 w2 stay one span.
    assert evidence.merge_spans(weights, offsets, words, 3) == [(3, 10, pytest.approx(0.8))]
    assert evidence.merge_spans(np.array([]), offsets[:0], words[:0], 3) == []


def test_descriptions_follow_the_label_sets_icd_version(tmp_path):
    from bertxml_lib.inference.evidence import describe_codes

    write_json(tmp_path / "cohort" / "label_set.json",
               {"codes": ["401.9"], "descriptions": {"401.9": "label-set 401.9"}, "icd_version": 9})
    got = describe_codes(["401.9", "250.00", "not-a-code"], tmp_path / "models" / "row")
    assert got == ["label-set 401.9", "Diabetes mellitus without mention of complication, type II or unspecified "
                   "type, not stated as uncontrolled", "not-a-code"]


def test_what_automodel_loads_from_a_row_folder_is_the_encoder_and_the_whole_model_loads_with_its_class(run_dir):
    """README: AutoModel gives the encoder (head weights left out, pooler new); BertForIcdCoding gives all."""
    folder = run_dir / "models" / "ehr_tiny_xml_16"
    saved = BertForIcdCoding.from_pretrained(folder)
    encoder, info = transformers.AutoModel.from_pretrained(folder, output_loading_info=True)
    assert type(encoder).__name__ == "BertModel"
    assert set(info["missing_keys"]) == {"pooler.dense.weight", "pooler.dense.bias"}
    assert info["unexpected_keys"] and all(k.startswith("head.") for k in info["unexpected_keys"])
    for name, tensor in saved.bert.state_dict().items():
        assert torch.equal(tensor, encoder.state_dict()[name]), name
    assert (saved.config.icd_head, saved.config.icd_codes, saved.config.icd_max_len) == ("xml", CODES, 16)
    assert transformers.AutoTokenizer.from_pretrained(folder).is_fast
