"""Encoder configs (Table 1), the [CLS] and BERT-XML heads (eqs. 1-4), checkpoints and label init (3.3.2)."""

import pytest
import torch
import transformers
from conftest import make_toy_tokenizer as make_tokenizer

from bertxml_lib.models.encoders import ENCODERS, make_bert_config
from bertxml_lib.models.modeling import (
    BertForIcdCoding,
    extend_position_embeddings,
    from_pretrained_encoder,
    init_label_vectors,
)

CODES = ["I10", "E11.9", "S72.001A"]


def tiny_config(head: str = "xml", max_positions: int = 64) -> transformers.BertConfig:
    config = transformers.BertConfig(vocab_size=120, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=max_positions,
                                     attn_implementation="sdpa")
    config.icd_head, config.icd_codes = head, list(CODES)
    return config


def tiny_model(head: str = "xml", seed: int = 0) -> BertForIcdCoding:
    torch.manual_seed(seed)
    return BertForIcdCoding(tiny_config(head)).eval()


def padded_inputs():
    input_ids = torch.tensor([[2, 10, 11, 12, 13, 3], [2, 14, 15, 3, 0, 0]])
    attention_mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    return input_ids, attention_mask


def test_encoder_configs_match_table1():
    small, big = make_bert_config("small", 20000), make_bert_config("big", 20000)
    assert (small.hidden_size, small.num_hidden_layers, small.num_attention_heads, small.intermediate_size) == \
        (512, 8, 8, 2048)
    assert (big.hidden_size, big.num_hidden_layers, big.num_attention_heads, big.intermediate_size) == \
        (768, 12, 12, 3072)
    for name in ENCODERS:
        config = make_bert_config(name, 500)
        assert config.max_position_embeddings == 1024 and config.hidden_act == "gelu"
        assert config.hidden_dropout_prob == config.attention_probs_dropout_prob == 0.1
        assert config._attn_implementation == "sdpa" and config.vocab_size == 500
    with pytest.raises(ValueError, match="tiny"):
        make_bert_config("huge", 500)


def test_xml_attention_masks_padding_exactly():
    model = tiny_model("xml")
    input_ids, attention_mask = padded_inputs()
    out = model(input_ids, attention_mask)
    assert out.logits.shape == (2, 3) and out.label_attention.shape == (2, 3, 6) and out.loss is None
    torch.testing.assert_close(out.label_attention.sum(-1), torch.ones(2, 3))
    assert torch.all(out.label_attention[1, :, 4:] == 0)
    assert torch.all(out.label_attention[1, :, :4] > 0)
    changed = input_ids.clone()
    changed[1, 4:] = torch.tensor([40, 41])  # different ids under the padding mask
    torch.testing.assert_close(model(changed, attention_mask).logits, out.logits, rtol=0, atol=1e-6)


def test_xml_attention_softmax_in_float32_under_autocast():
    model = tiny_model("xml")
    input_ids, attention_mask = padded_inputs()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(input_ids, attention_mask, labels=torch.ones(2, 3))
    assert out.label_attention.dtype == torch.float32 and out.loss.dtype == torch.float32
    assert torch.all(out.label_attention[1, :, 4:] == 0)


def test_cls_head_loss_and_encoder_attentions():
    model = tiny_model("cls")
    input_ids, attention_mask = padded_inputs()
    labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    out = model(input_ids, attention_mask, labels=labels, output_attentions=True)
    assert out.label_attention is None
    expected = torch.nn.functional.binary_cross_entropy_with_logits(out.logits, labels)
    torch.testing.assert_close(out.loss, expected)
    assert len(out.attentions) == 2 and out.attentions[0].shape == (2, 2, 6, 6)
    assert model.config._attn_implementation == "sdpa"  # eager only for that call


@pytest.mark.parametrize("head", ["cls", "xml"])
def test_save_load_identical_logits_and_automodel_encoder(tmp_path, head):
    model = tiny_model(head)
    with torch.no_grad():  # move away from the init values so a re-init would show
        for param in model.head.parameters():
            param.add_(0.5)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    loaded = BertForIcdCoding.from_pretrained(tmp_path).eval()
    assert loaded.config.icd_codes == CODES and loaded.config.icd_head == head
    input_ids, attention_mask = padded_inputs()
    assert torch.equal(loaded(input_ids, attention_mask).logits, model(input_ids, attention_mask).logits)
    encoder = transformers.AutoModel.from_pretrained(tmp_path)
    assert isinstance(encoder, transformers.BertModel)
    source = model.bert.state_dict()
    for name, tensor in encoder.state_dict().items():
        if not name.startswith("pooler."):
            assert torch.equal(tensor, source[name]), name


@pytest.mark.parametrize("source_class", [transformers.BertForMaskedLM, transformers.BertModel])
def test_from_pretrained_encoder_copies_weights(tmp_path, source_class):
    config = make_bert_config("tiny", 120)
    config.num_hidden_layers = 1
    torch.manual_seed(1)
    source = source_class(config)
    source.save_pretrained(tmp_path)
    model = from_pretrained_encoder(tmp_path, "xml", CODES, xml_hidden=8)
    assert model.head.W_b.out_features == 8 and model.config.xml_hidden == 8
    source_bert = source.bert if hasattr(source, "bert") else source
    source_state = source_bert.state_dict()
    for name, tensor in model.bert.state_dict().items():
        assert torch.equal(tensor, source_state[name]), name
    again = from_pretrained_encoder(tmp_path, "xml", CODES, xml_hidden=8)
    assert torch.equal(again.head.label_vectors, model.head.label_vectors)  # head init is seeded


def test_init_label_vectors_is_mean_word_embedding():
    tokenizer = make_tokenizer()
    model = tiny_model("xml")
    descriptions = ["right hip fracture", "chest pain", ""]
    init_label_vectors(model, tokenizer, descriptions)
    embeddings = model.bert.embeddings.word_embeddings.weight.detach()
    for j, text in enumerate(descriptions[:2]):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        expected = sum(embeddings[i] for i in ids) / len(ids)
        torch.testing.assert_close(model.head.label_vectors[j].detach(), expected)
    torch.testing.assert_close(model.head.label_vectors[2].detach(), embeddings.mean(0))
    with pytest.raises(ValueError, match="descriptions"):
        init_label_vectors(model, tokenizer, descriptions[:2])


def test_extend_position_embeddings():
    torch.manual_seed(0)
    model = BertForIcdCoding(tiny_config("xml", max_positions=8)).eval()
    old = model.bert.embeddings.position_embeddings.weight.detach().clone()
    extend_position_embeddings(model, 40, seed=5)
    new = model.bert.embeddings.position_embeddings.weight.detach()
    assert new.shape == (40, 16) and torch.equal(new[:8], old)
    expected = torch.randn(32, 16, generator=torch.Generator().manual_seed(5)) * model.config.initializer_range
    torch.testing.assert_close(new[8:], expected)
    assert model.config.max_position_embeddings == 40
    assert model.bert.embeddings.position_ids.tolist() == [list(range(40))]
    input_ids = torch.full((1, 30), 10)
    out = model(input_ids, torch.ones_like(input_ids))  # longer than the old 8 positions
    assert out.logits.shape == (1, 3)
    with pytest.raises(ValueError, match="below"):
        extend_position_embeddings(model, 16, seed=5)
