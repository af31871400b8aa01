"""MLM pretraining: the masked-positions loss equals HF's, training lowers dev loss, checkpoints load."""
import random

import pytest
import torch
from transformers import AutoModel, BertForMaskedLM, DataCollatorForLanguageModeling

from bertxml_lib.models.encoders import make_bert_config
from bertxml_lib.text.tokenizer import train_wordpiece
from bertxml_lib.training.pretrain import PretrainConfig, masked_positions_loss, mlm_example, pretrain_mlm

WORDS = ("patient hypertension lisinopril denies chest pain htn metformin dm2 review of systems no fever "
         "cough assessment plan follow up labs a1c ldl").split()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rng = random.Random(0)
    # Sentences with structure (a drug follows its condition) so there is something to learn.
    pairs = [("hypertension", "lisinopril"), ("dm2", "metformin"), ("htn", "lisinopril"), ("ldl", "atorvastatin")]
    texts = []
    for _ in range(160):
        parts = []
        for _ in range(rng.randint(5, 60)):
            cond, drug = rng.choice(pairs)
            parts.append(f"{cond} on {drug} . denies {rng.choice(WORDS)} .")
        texts.append(" ".join(parts))
    tok = train_wordpiece(texts, 300, 2, tmp_path_factory.mktemp("tok"))
    return tok, texts


def test_masked_positions_loss_equals_hf_loss(corpus):
    tok, texts = corpus
    torch.manual_seed(0)
    model = BertForMaskedLM(make_bert_config("tiny", len(tok))).eval()
    collator = DataCollatorForLanguageModeling(tok, mlm_probability=0.15, return_tensors="pt")
    batch = collator([{"input_ids": tok(t, truncation=True, max_length=128)["input_ids"]} for t in texts[:6]])
    ref = model(**batch).loss
    ours = masked_positions_loss(model, batch)
    assert torch.allclose(ref, ours, rtol=1e-5, atol=1e-6)
    ref.backward()
    g_ref = model.bert.encoder.layer[0].attention.self.query.weight.grad.clone()
    model.zero_grad()
    masked_positions_loss(model, batch).backward()
    g_ours = model.bert.encoder.layer[0].attention.self.query.weight.grad
    assert torch.allclose(g_ref, g_ours, rtol=1e-4, atol=1e-7)


def test_pretraining_lowers_dev_loss_is_deterministic_and_loads(corpus, tmp_path):
    tok, texts = corpus
    cfg = PretrainConfig(encoder="tiny", max_len=128, epochs=3, batch_tokens=2048, lr=2e-3, seed=3)
    curve = pretrain_mlm(tok, texts[:130], texts[130:], cfg, tmp_path / "a", progress=False)
    dev = curve[curve["split"] == "dev"]["loss"].tolist()
    assert len(dev) == 4 and dev[-1] < dev[0] - 0.5
    again = pretrain_mlm(tok, texts[:130], texts[130:], cfg, tmp_path / "b", progress=False)
    assert again["loss"].tolist() == curve["loss"].tolist()
    encoder = AutoModel.from_pretrained(tmp_path / "a")
    assert encoder.config.max_position_embeddings == 1024 and encoder.config.hidden_size == 64
    example = mlm_example(tmp_path / "a", tok, texts[140], n_tokens=64, seed=0)
    assert example["masked"].any() and (example.loc[example["masked"], "predicted"] != "").all()


def test_continued_pretraining_of_offshelf_model_extends_positions(corpus, tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from bertxml_lib.models.offshelf import offshelf_model_dir
    from bertxml_lib.training.pretrain import continue_pretraining

    _, texts = corpus
    cfg = PretrainConfig(encoder="offshelf", max_len=64, epochs=1, batch_tokens=1024, lr=1e-4, seed=0)
    curve = continue_pretraining(texts[:12], texts[12:16], cfg, tmp_path / "cont", progress=False)
    assert curve["loss"].notna().all() and (curve["split"] == "train").sum() >= 1
    model = BertForMaskedLM.from_pretrained(tmp_path / "cont")
    original = load_file(offshelf_model_dir() / "model.safetensors")
    assert model.config.max_position_embeddings == 1024
    assert model.bert.embeddings.position_embeddings.weight.shape == (1024, 384)
    assert model.config.vocab_size == 30522  # its own general-domain vocabulary, saved alongside
    assert len(AutoTokenizer.from_pretrained(tmp_path / "cont")) == 30522
    key = next(k for k in original if k.endswith("word_embeddings.weight"))
    # Continued, not restarted: after a few small steps the encoder stays close to the original.
    assert torch.allclose(model.bert.embeddings.word_embeddings.weight, original[key], atol=1e-2)
