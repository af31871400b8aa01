"""Figures 3-4 (paper 4.5): word merging, PNG/HTML output, privacy mode, note picking, the stage on a tiny model."""
import random

import numpy as np
import pandas as pd
import pytest
import torch
import transformers
from conftest import assert_png_figure, figure_texts
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

from bertxml_lib.core.atomic import write_json
from bertxml_lib.core.paths import RunPaths
from bertxml_lib.evaluation.predictions import save_predictions
from bertxml_lib.models.modeling import BertForIcdCoding
from bertxml_lib.reporting import attention

TOKENS = ["[CLS]", "right", "hip", "frac", "##ture", "<b>", "[SEP]"]
WEIGHTS = np.array([0.1, 0.2, 0.1, 0.3, 0.2, 0.05, 0.05])


def test_merge_wordpieces_sums_pieces_and_drops_special_tokens():
    words, mass = attention.merge_wordpieces(TOKENS, WEIGHTS)
    assert words == ["right", "hip", "fracture", "<b>"]
    np.testing.assert_allclose(mass, [0.2, 0.1, 0.5, 0.05])
    with pytest.raises(ValueError, match="one weight per token"):
        attention.merge_wordpieces(TOKENS, WEIGHTS[:3])
    with pytest.raises(ValueError, match="non-negative"):
        attention.merge_wordpieces(["a"], np.array([-0.1]))


def test_xml_attention_figure_writes_png_and_html_coloured_by_relative_weight(tmp_path):
    png, page = tmp_path / "f3.png", tmp_path / "f3.html"
    fig = attention.xml_attention_figure(TOKENS, WEIGHTS, "S72.001A", "Fracture of right femur", png, page)
    assert_png_figure(png, fig, ("S72.001A", "fracture", "right"), min_px=100)
    text = page.read_text()
    # Intensity = weight / max weight: fracture 0.5/0.5 = 1, right 0.2/0.5 = 0.4, hip 0.1/0.5 = 0.2.
    assert "rgba(203, 24, 29, 1.000); color: white\" title=\"word 2: 0.5000\">fracture</span>" in text
    assert "rgba(203, 24, 29, 0.400)" in text and "rgba(203, 24, 29, 0.200)" in text
    assert ">&lt;b&gt;</span>" in text and "><b></span>" not in text  # tokens are HTML-escaped
    assert "S72.001A" in text and "Figure 3" in text


def test_dollar_signs_are_drawn_as_text(tmp_path):
    tokens = ["copay", "$\\nocommand$", "paid"]  # would be invalid mathtext if parsed
    fig = attention.xml_attention_figure(tokens, np.full(3, 0.2), "Z00.00", "exam", tmp_path / "a.png",
                                         tmp_path / "a.html")
    assert_png_figure(tmp_path / "a.png", fig, ("$\\nocommand$", "copay"), min_px=100)


def test_privacy_mode_writes_no_words(tmp_path):
    png, page = tmp_path / "f3.png", tmp_path / "f3.html"
    fig = attention.xml_attention_figure(TOKENS, WEIGHTS, "S72.001A", "Fracture of right femur", png, page,
                                         show_text=False)
    assert_png_figure(png, fig, ("S72.001A",), min_px=100)
    assert "hip" not in figure_texts(fig).split() and "<b>" not in figure_texts(fig)  # words of the note only
    body = page.read_text().split("<p>", 2)[2]
    for word in ("right", "hip", "fracture", "&lt;b&gt;"):
        assert word not in body
    assert body.count('class="w"') == 4


def test_attention_heads_figure_and_bad_shapes(tmp_path):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 20, 20))
    attn = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    png = tmp_path / "f4.png"
    fig = attention.attention_heads_figure(attn, png, "Figure 4 test")
    assert_png_figure(png, fig, ("Figure 4 test",))
    with pytest.raises(ValueError, match=r"\(heads, seq, seq\)"):
        attention.attention_heads_figure(attn[:, :, :5], png, "bad")


def test_head_statistics_by_hand():
    seq = 5
    diagonal = np.eye(seq)[None]  # every token attends to itself
    to_first = np.zeros((1, seq, seq))
    to_first[0, :, 1] = 1.0  # every token attends to position 1 (the first note token)
    stats = attention.head_statistics(np.concatenate([diagonal, to_first]), local=1, header=1)
    assert stats.loc[0, ["mean_distance", "local_mass", "header_mass"]].tolist() == [0.0, 1.0, 0.2]
    # Distances to position 1 from queries 0..4: 1, 0, 1, 2, 3 -> mean 7/5; within 1 of it: queries 0, 1, 2.
    assert stats.loc[1, ["mean_distance", "local_mass", "header_mass"]].tolist() == pytest.approx([1.4, 0.6, 1.0])


def test_pick_note_for_code_and_long_note():
    probs = np.array([[0.9, 0.2], [0.3, 0.8], [0.95, 0.1]])
    labels = np.array([[1, 0], [0, 1], [0, 1]])
    assert attention.pick_note_for_code(probs, labels) == (0, 0)  # 0.95 is a false positive
    assert attention.pick_note_for_code(probs, labels, eligible=np.array([False, True, True])) == (1, 1)
    with pytest.raises(ValueError, match="no eligible note"):
        attention.pick_note_for_code(probs, labels, eligible=np.array([False, False, False]))
    assert attention.pick_long_note([100, 900, 750, 20], 735) == 2
    assert attention.pick_long_note([100, 300], 735) == 1


# --- the stage on a tiny fine-tuned model -----------------------------------------------------

CODES = ["S72.001A", "I10"]
WORDS = "right hip pain fracture labral repair patient hypertension lisinopril blood pressure clinic note".split()


def make_run(tmp_path, row="ehr_tiny_xml_64"):
    rng = random.Random(0)
    texts = [" ".join(rng.choice(WORDS) for _ in range(n)) for n in (12, 20, 8, 90, 15, 10)]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(
        vocab_size=80, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]))
    tokenizer = transformers.BertTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                               cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    config = transformers.BertConfig(vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)
    config.icd_head, config.icd_codes = "xml", list(CODES)
    torch.manual_seed(0)
    paths = RunPaths(tmp_path)
    BertForIcdCoding(config).save_pretrained(paths.model_dir(row))
    tokenizer.save_pretrained(paths.model_dir(row))

    labels = [["S72.001A"], ["I10"], [], ["S72.001A", "I10"], ["I10"], []]
    notes = pd.DataFrame({"patient_id": [f"p{i}" for i in range(6)], "note_id": [f"n{i}" for i in range(6)],
                          "note_date": pd.Timestamp("2020-01-01"), "note_type": "progress note", "text": texts,
                          "split": ["train", "dev", "test", "test", "test", "test"], "codes": labels, "labels": labels})
    paths.cohort_dir.mkdir(parents=True)
    notes.to_parquet(paths.cohort_notes, index=False)
    write_json(paths.label_set, {"codes": CODES, "descriptions": {"S72.001A": "Fracture of right femur", "I10": "HTN"},
                                 "train_counts": {"S72.001A": 1, "I10": 1}, "min_train_count": 1})
    # Test notes n2..n5; the most confident true positive is n4/I10 (0.8); n3 (90 words) is the long note.
    test_probs = np.array([[0.9, 0.1], [0.6, 0.7], [0.1, 0.8], [0.2, 0.3]])
    save_predictions(paths.predictions_file(row), CODES, ["n1"], [[0.5, 0.5]], ["n2", "n3", "n4", "n5"], test_probs)
    write_json(paths.metrics_file(row), {"model": row, "family": "xml", "encoder": "tiny", "max_len": 64,
                                         "micro_auc": 0.7})
    write_json(paths.metrics_file("ehr_tiny_xml_32"), {"model": "ehr_tiny_xml_32", "family": "xml", "micro_auc": 0.6})
    return paths, texts, tokenizer


def test_run_attention_writes_figures_3_and_4(tmp_path):
    paths, texts, tokenizer = make_run(tmp_path)
    res = attention.run_attention(tmp_path, row="", min_tokens=60, show_text=True, device="cpu")
    assert res["row"] == "ehr_tiny_xml_64"  # best recorded XML micro AUC
    assert (res["note_id"], res["code"], res["probability"]) == ("n4", "I10", pytest.approx(0.8))
    assert res["long_note_id"] == "n3" and res["long_note_tokens"] > 64  # the only note of >= 60 tokens
    assert res["figure4_tokens"] == 64 and res["n_heads"] == 2  # cut to max_len = 64
    assert set(res["top_words"].split(", ")) <= set(texts[4].split())
    assert len(res["head_stats"]) == 2
    for name in ("figure3_xml_attention.png", "figure4_attention_heads.png"):
        assert_png_figure(paths.figure(name), min_px=100)
    assert texts[4].split()[0] in paths.figure("figure3_xml_attention.html").read_text()


def test_run_attention_privacy_mode_keeps_words_out(tmp_path):
    paths, texts, _ = make_run(tmp_path)
    res = attention.run_attention(tmp_path, row="ehr_tiny_xml_64", min_tokens=40, show_text=False, device="cpu")
    assert "top_words" not in res
    body = paths.figure("figure3_xml_attention.html").read_text().split("<p>", 2)[2]
    assert not any(word in body for word in WORDS)


def test_run_attention_needs_a_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics of an XML row"):
        attention.run_attention(tmp_path)
