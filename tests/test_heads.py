"""The companion study's heads (Ji et al., seed 003) on the EHR encoder: LAN label attention (LAAT form) and
hierarchical BERT — masking, checkpoints, fine-tuning, note-level inference and predict's evidence."""
import csv
import json

import numpy as np
import pytest
import torch
import transformers
from conftest import make_toy_tokenizer
from sklearn.metrics import roc_auc_score
from test_finetune import toy_notes

from bertxml_lib.inference import predict
from bertxml_lib.models.modeling import BertForIcdCoding, HierHead, LanHead, from_pretrained_encoder, hier_max_tokens
from bertxml_lib.text.segments import (
    encode_notes_hierarchical,
    hier_note_lengths,
    hier_pad_fraction,
    n_hier_segments,
    pad_hier_batch,
)
from bertxml_lib.training.finetune import FinetuneConfig, _param_groups, finetune, predict_notes, predict_with_attention

CODES = ["I10", "E11.9", "S72.001A"]


def tiny_config(head: str, segment_len: int = 8, max_segments: int = 4) -> transformers.BertConfig:
    config = transformers.BertConfig(vocab_size=120, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=64, attn_implementation="sdpa")
    config.icd_head, config.icd_codes = head, list(CODES)
    if head == "hier":
        config.hier_segment_len, config.hier_max_segments = segment_len, max_segments
    return config


def tiny_model(head: str, seed: int = 0, **kwargs) -> BertForIcdCoding:
    torch.manual_seed(seed)
    model = BertForIcdCoding(tiny_config(head, **kwargs)).eval()
    with torch.no_grad():  # away from the init values (uniform attention, zero bias), so masking errors show
        for param in model.head.parameters():
            param.add_(torch.randn_like(param) * 0.5)
    return model


def padded_tokens():
    input_ids = torch.tensor([[2, 10, 11, 12, 13, 3], [2, 14, 15, 3, 0, 0]])
    return input_ids, (input_ids != 0).long()


# Two notes of segments: note 0 has two segments, note 1 one (its second is absent).
HIER_NOTES = [[[2, 10, 11, 12, 3], [2, 13, 3]], [[2, 14, 15, 16, 17, 18, 3]]]


# --- LAN ----------------------------------------------------------------------------------------

def test_lan_shapes_and_padding_gets_zero_attention():
    model = tiny_model("lan")
    assert isinstance(model.head, LanHead) and model.config.lan_hidden == 16
    input_ids, attention_mask = padded_tokens()
    out = model(input_ids, attention_mask, labels=torch.ones(2, 3))
    assert out.logits.shape == (2, 3) and out.label_attention.shape == (2, 3, 6) and out.loss.ndim == 0
    torch.testing.assert_close(out.label_attention.sum(-1), torch.ones(2, 3))
    assert torch.all(out.label_attention[1, :, 4:] == 0) and torch.all(out.label_attention[1, :, :4] > 0)
    # Different ids under the mask, and more padding, change nothing.
    changed = input_ids.clone()
    changed[1, 4:] = torch.tensor([40, 41])
    torch.testing.assert_close(model(changed, attention_mask).logits, out.logits, rtol=0, atol=1e-6)
    longer = torch.cat([input_ids, torch.zeros(2, 5, dtype=torch.long)], 1)
    torch.testing.assert_close(model(longer, (longer != 0).long()).logits, out.logits, rtol=0, atol=1e-6)
    alone = model(input_ids[1:, :4], attention_mask[1:, :4])
    torch.testing.assert_close(alone.logits, out.logits[1:], rtol=0, atol=1e-6)


def test_lan_logits_follow_the_laat_equations():
    model = tiny_model("lan")
    model.config.lan_hidden = 16
    input_ids, attention_mask = padded_tokens()
    hidden = model.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[1, :4]  # (4, h)
    head = model.head
    attention = torch.softmax(torch.tanh(hidden @ head.W.weight.T) @ head.U.weight.T, dim=0).T  # (L, 4)
    expected = ((attention @ hidden) * head.beta).sum(-1) + head.bias
    torch.testing.assert_close(model(input_ids, attention_mask).logits[1], expected, rtol=1e-5, atol=1e-6)


def test_lan_softmax_in_float32_under_autocast():
    model = tiny_model("lan")
    input_ids, attention_mask = padded_tokens()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(input_ids, attention_mask, labels=torch.ones(2, 3))
    assert out.label_attention.dtype == torch.float32 and out.loss.dtype == torch.float32
    assert torch.all(out.label_attention[1, :, 4:] == 0)


# --- hierarchical BERT --------------------------------------------------------------------------

def test_hier_segments_and_padding_helpers():
    tok = make_toy_tokenizer()
    assert n_hier_segments(1024, 128) == 9 and n_hier_segments(512, 514) == 1 and n_hier_segments(12, 8) == 2
    texts = [" ".join(["alpha beta gamma"] * 10), "", "chest"]
    notes = encode_notes_hierarchical(tok, texts, max_len=14, segment_len=8)
    ids = tok(texts[0], add_special_tokens=False)["input_ids"]
    assert notes[0] == [[tok.cls_token_id, *ids[i:i + 6], tok.sep_token_id] for i in (0, 6)] + \
        [[tok.cls_token_id, *ids[12:14], tok.sep_token_id]]  # only the first 14 tokens are read
    assert notes[1] == [[tok.cls_token_id, tok.sep_token_id]] and len(notes[2]) == 1
    input_ids, mask = pad_hier_batch(notes, tok.pad_token_id)
    assert input_ids.shape == mask.shape == (3, 3, 8)
    assert mask[1].sum() == 2 and mask[1, 1:].sum() == 0 and mask[0, 2].sum() == 4
    assert hier_note_lengths(notes).tolist() == [24, 2, 3]
    assert hier_pad_fraction(notes, [np.array([0, 1, 2])]) == pytest.approx(1 - (8 + 8 + 4 + 2 + 3) / (5 * 8))


def test_hier_shapes_masking_and_padding_independence():
    model = tiny_model("hier")
    assert isinstance(model.head, HierHead)
    input_ids, mask = pad_hier_batch(HIER_NOTES, 0)
    out = model(input_ids, mask, labels=torch.ones(2, 3))
    assert out.logits.shape == (2, 3) and out.label_attention.shape == (2, 3, 2) and out.loss.ndim == 0
    torch.testing.assert_close(out.label_attention.sum(-1), torch.ones(2, 3))
    assert torch.all(out.label_attention[1, :, 1] == 0) and torch.all(out.label_attention[0] > 0)
    # Each note alone (no absent segments, no padding columns) gives the same logits.
    for i, note in enumerate(HIER_NOTES):
        alone = model(*pad_hier_batch([note], 0))
        torch.testing.assert_close(alone.logits[0], out.logits[i], rtol=0, atol=1e-6)
    # More absent segments and padding columns, and junk ids under the mask, change nothing.
    bigger_ids = torch.full((2, 4, 11), 0)
    bigger_ids[:, :2, :7] = input_ids
    bigger_mask = torch.zeros_like(bigger_ids)
    bigger_mask[:, :2, :7] = mask
    bigger_ids[bigger_mask == 0] = 77
    bigger = model(bigger_ids, bigger_mask)
    torch.testing.assert_close(bigger.logits, out.logits, rtol=0, atol=1e-6)
    assert torch.all(bigger.label_attention[1, :, 1:] == 0) and torch.all(bigger.label_attention[0, :, 2:] == 0)


def test_hier_segment_order_matters_and_bad_inputs_are_rejected():
    model = tiny_model("hier")
    forward = model(*pad_hier_batch([HIER_NOTES[0]], 0)).logits
    swapped = model(*pad_hier_batch([HIER_NOTES[0][::-1]], 0)).logits
    assert not torch.allclose(forward, swapped)  # segment positions are learned, so order is seen
    input_ids, mask = padded_tokens()
    with pytest.raises(ValueError, match="n_segments"):
        model(input_ids, mask)
    with pytest.raises(ValueError, match="segment positions"):
        model(*pad_hier_batch([[[2, 10, 3]] * 5], 0))  # 5 segments, the model has 4
    with pytest.raises(ValueError, match="hier_segment_len"):
        config = tiny_config("hier")
        config.hier_segment_len = 100  # beyond the 64 positions
        BertForIcdCoding(config)


@pytest.mark.parametrize("head", ["lan", "hier"])
def test_save_reload_identical_logits_and_automodel_encoder(tmp_path, head):
    model = tiny_model(head)
    model.save_pretrained(tmp_path)
    loaded = BertForIcdCoding.from_pretrained(tmp_path).eval()
    assert loaded.config.icd_head == head and loaded.config.icd_codes == CODES
    inputs = pad_hier_batch(HIER_NOTES, 0) if head == "hier" else padded_tokens()
    assert torch.equal(loaded(*inputs).logits, model(*inputs).logits)
    assert torch.equal(loaded(*inputs).label_attention, model(*inputs).label_attention)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    encoder = transformers.AutoModel.from_pretrained(tmp_path)
    assert isinstance(encoder, transformers.BertModel)
    source = model.bert.state_dict()
    for name, tensor in encoder.state_dict().items():
        if not name.startswith("pooler."):
            assert torch.equal(tensor, source[name]), name


def test_from_pretrained_encoder_sets_the_head_config(tmp_path):
    config = transformers.BertConfig(vocab_size=120, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=64)
    torch.manual_seed(1)
    transformers.BertForMaskedLM(config).save_pretrained(tmp_path)
    lan = from_pretrained_encoder(tmp_path, "lan", CODES, lan_hidden=8)
    assert lan.head.W.out_features == 8 and lan.config.lan_hidden == 8 and not hasattr(lan.config, "hier_segment_len")
    hier = from_pretrained_encoder(tmp_path, "hier", CODES, hier_segment_len=16, max_len=40)
    assert (hier.config.hier_segment_len, hier.config.hier_max_segments, hier.config.icd_max_len) == (16, 3, 40)
    assert hier_max_tokens(hier.config) == 42 and hier.config.lan_hidden == 16
    again = from_pretrained_encoder(tmp_path, "hier", CODES, hier_segment_len=16, max_len=40)
    for name, tensor in hier.state_dict().items():
        assert torch.equal(again.state_dict()[name], tensor), name  # head init is seeded
    with pytest.raises(ValueError, match="hier_segment_len"):
        from_pretrained_encoder(tmp_path, "hier", CODES)


# --- fine-tuning and inference --------------------------------------------------------------------

def toy_model(tokenizer, head: str, seed: int = 0) -> BertForIcdCoding:
    config = transformers.BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                                     pad_token_id=tokenizer.pad_token_id, attn_implementation="sdpa")
    config.icd_head, config.icd_codes = head, ["A01", "B02"]
    if head == "hier":
        config.hier_segment_len, config.hier_max_segments = 8, n_hier_segments(32, 8)
    torch.manual_seed(seed)
    return BertForIcdCoding(config)


CFG = FinetuneConfig(epochs=2, batch_tokens=128, lr=3e-3, head_lr=3e-3, warmup=0.1, weight_decay=0.01,
                     eval_batch_size=16, seed=0, device="cpu", max_len=16)


@pytest.mark.parametrize("head", ["lan", "hier"])
def test_finetune_learns_toy_task_and_predict_notes_matches(head):
    tokenizer = make_toy_tokenizer()
    # hier reads a note's first 32 tokens (segments of 8) and needs more steps: one item per note.
    n_train, cfg = (300, CFG) if head == "lan" else (600, FinetuneConfig(**{**CFG.__dict__, "max_len": 32}))
    train_texts, train_labels = toy_notes(n_train, seed=1)
    dev_texts, dev_labels = toy_notes(60, seed=2)
    model = toy_model(tokenizer, head)
    result = finetune(model, tokenizer, train_texts, train_labels, dev_texts, dev_labels, cfg, progress=False)
    assert max(h["dev_micro_auc"] for h in result["history"]) > 0.95
    assert 0.0 <= result["pad_fraction"] < 0.5
    probs = predict_notes(model, tokenizer, dev_texts, cfg.max_len, eval_batch_size=8, device="cpu", progress=False)
    assert probs.shape == (60, 2)
    assert roc_auc_score(dev_labels.ravel(), probs.ravel()) == pytest.approx(result["best_dev_micro_auc"], abs=1e-6)
    if head == "hier":
        assert result["n_train_segments"] > n_train  # notes of more than 6 tokens have several segments
        notes = encode_notes_hierarchical(tokenizer, dev_texts[:5], 32, 8)
        model.eval()
        with torch.no_grad():
            for note, p in zip(notes, probs[:5]):  # one prediction per note, whatever its batch
                np.testing.assert_allclose(torch.sigmoid(model(*pad_hier_batch([note], 0)).logits)[0].numpy(), p,
                                           rtol=0, atol=1e-6)


@pytest.mark.parametrize("head", ["lan", "hier"])
def test_finetune_is_deterministic(head):
    tokenizer = make_toy_tokenizer()
    texts, labels = toy_notes(80, seed=3)
    cfg = FinetuneConfig(**{**CFG.__dict__, "epochs": 1, "max_len": 16 if head == "lan" else 32})
    runs = []
    for _ in range(2):
        model = toy_model(tokenizer, head)
        result = finetune(model, tokenizer, texts, labels, texts, labels, cfg, progress=False)
        runs.append(([(e["train_loss"], e["dev_micro_auc"]) for e in result["history"]], model.state_dict()))
    (history, state), (again, state_again) = runs
    assert again == history
    assert all(torch.equal(state[k], state_again[k]) for k in state)


def test_hier_param_groups_put_the_segment_transformer_at_the_encoder_lr():
    model = toy_model(make_toy_tokenizer(), "hier")
    groups = _param_groups(model, CFG.__class__(lr=1e-3, head_lr=1e-2))
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert lr_of[id(model.head.segment_positions.weight)] == 1e-3
    assert lr_of[id(model.head.segment_encoder.layers[0].linear1.weight)] == 1e-3
    assert lr_of[id(model.head.attention.beta)] == 1e-2 and lr_of[id(model.head.attention.U.weight)] == 1e-2
    decay_of = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert decay_of[id(model.head.segment_encoder.layers[0].norm1.weight)] == 0.0
    assert len(lr_of) == len(list(model.parameters()))


def test_predict_with_attention_accepts_lan():
    tokenizer = make_toy_tokenizer()
    tokens, offsets, weights = predict_with_attention(toy_model(tokenizer, "lan"), tokenizer, "chest pain alpha",
                                                      max_len=12, code_index=0, device="cpu")
    assert tokens[0] == "[CLS]" and weights.sum() == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="token label attention"):
        predict_with_attention(toy_model(tokenizer, "hier"), tokenizer, "chest pain", 12, 0, device="cpu")


# --- predict CLI --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder with a tiny lan model (max_len 16) and a hier model (segments of 8, max_len 24)."""
    root = tmp_path_factory.mktemp("run")
    tok = make_toy_tokenizer()
    for head, row in (("lan", "ehr_tiny_lan_16"), ("hier", "ehr_tiny_hier_24")):
        model = toy_model(tok, head)
        model.config.icd_max_len = 24 if head == "hier" else 16  # as notebook 04 saves it
        model.save_pretrained(root / "models" / row)
        tok.save_pretrained(root / "models" / row)
    texts = [("n1", "chest pain alpha fever"), ("n2", " ".join(["patient history cough beta hip"] * 6)), ("n3", "fever")]
    with open(root / "notes.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([("note_id", "text"), *texts])
    return root, dict(texts)


def test_predict_cli_on_a_lan_model_gives_token_evidence(run_dir, capsys):
    root, texts = run_dir
    assert predict.main(["--model", str(root / "models" / "ehr_tiny_lan_16"), "--top-k", "2", "--quiet",
                         str(root / "notes.csv")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["head"], out["max_len"]) == ("lan", 16)
    for note in out["notes"]:
        text = texts[note["note_id"]]
        assert len(note["codes"]) == 2
        for code in note["codes"]:
            assert (1 <= len(code["evidence"]) <= 3) if text else code["evidence"] == []
            for span in code["evidence"]:
                assert span["text"] == text[span["start"]:span["end"]] and len(span["text"].split()) <= 8


def test_predict_cli_on_a_hier_model_gives_segment_evidence(run_dir, capsys):
    root, texts = run_dir
    folder = root / "models" / "ehr_tiny_hier_24"
    assert predict.main(["--model", str(folder), "--top-k", "2", "--spans", "1", "--quiet",
                         str(root / "notes.csv")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["head"], out["max_len"], out["max_len_source"]) == ("hier", 24, "config.icd_max_len")
    model = BertForIcdCoding.from_pretrained(folder)
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    probs = predict_notes(model, tok, list(texts.values()), 24, device="cpu", progress=False)
    long_note = " ".join(["patient history cough beta hip"] * 6)
    n_read = len(encode_notes_hierarchical(tok, [long_note], 24, 8)[0])
    for note, p in zip(out["notes"], probs):
        text = texts[note["note_id"]]
        assert [c["probability"] for c in note["codes"]] == pytest.approx(np.sort(p)[::-1][:2], abs=1e-6)
        for code in note["codes"]:
            assert len(code["evidence"]) == (1 if text else 0)
            for span in code["evidence"]:
                assert span["text"] == text[span["start"]:span["end"]] and 0 < span["attention"] <= 1
                assert span["segment"] < n_read and span["end"] <= len(text)
    spans = [s for c in out["notes"][1]["codes"] for s in c["evidence"]]
    assert all(len(s["text"].split()) <= 6 for s in spans)  # one segment: at most 6 tokens
    # A longer --max-len than the segments hold is a clear input error.
    assert predict.main(["--model", str(folder), "--max-len", "100", str(root / "notes.csv")]) == 2
    assert "must lie in [3, 36]" in capsys.readouterr().err
