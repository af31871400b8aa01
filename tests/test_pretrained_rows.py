"""Table 2 rows on encoders not pretrained here: a user's local BioBERT / clinical BERT checkpoint
(tested with a tiny checkpoint saved here), the "not run" row without one, and the off-the-shelf BERT
cut to a few layers with positions extended to 1,024."""
import json

import numpy as np
import pandas as pd
import pytest
import transformers

from bertxml_lib import stages
from bertxml_lib.core.config import ConfigError
from bertxml_lib.core.paths import RunPaths
from bertxml_lib.evaluation import analysis
from bertxml_lib.evaluation.predictions import load_predictions
from bertxml_lib.text.tokenizer import train_wordpiece

FT = dict(epochs=1, batch_tokens=1024, lr=1e-3, head_lr=1e-2, warmup=0.1, weight_decay=0.01, eval_batch_size=16)


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    stages.run_cohort(out, seed=0, source="synthetic", n_patients=24, n_codes=30, min_chars=50,
                      excluded_types=["erroneous"], split_fractions=[0.6, 0.2, 0.2], chronic_min_count=2,
                      min_train_count=4)
    return out


@pytest.fixture(scope="module")
def clinical_checkpoint(tmp_path_factory, cohort_dir):
    """A tiny 'clinical BERT': BertForMaskedLM + its own WordPiece, 64 positions, saved with save_pretrained."""
    folder = tmp_path_factory.mktemp("clinical_bert")
    texts = pd.read_parquet(RunPaths(cohort_dir).cohort_notes)["text"].tolist()[:50]
    tok = train_wordpiece(texts, vocab_size=300, min_frequency=1, out_dir=folder)
    config = transformers.BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=64, pad_token_id=tok.pad_token_id)
    transformers.BertForMaskedLM(config).save_pretrained(folder)
    return folder


def test_clinical_row_fine_tunes_a_local_checkpoint(cohort_dir, clinical_checkpoint):
    res = stages.run_finetuning(cohort_dir, seed=0, encoder="clinical", variant="cls", max_len=128, **FT,
                                pretrained_path=str(clinical_checkpoint))
    assert res["row"] == "clinical_cls_128"
    record = json.loads(RunPaths(cohort_dir).metrics_file("clinical_cls_128").read_text())
    assert record["status"] == "ok" and record["family"] == "clinical" and 0.0 <= record["micro_auc"] <= 1.0
    pred = load_predictions(RunPaths(cohort_dir).predictions_file("clinical_cls_128"))
    assert pred.test_probs.shape[1] == len(pred.codes) and np.isfinite(pred.test_probs).all()
    saved = transformers.AutoConfig.from_pretrained(RunPaths(cohort_dir).model_dir("clinical_cls_128"))
    assert saved.max_position_embeddings == 128  # 64 own positions + 64 new random rows (paper 4.2.1)


def test_clinical_row_without_weights_is_recorded_as_not_run(cohort_dir):
    res = stages.run_finetuning(cohort_dir, seed=0, encoder="clinical", variant="cls", max_len=512, **FT)
    assert res["metrics"]["status"].startswith("not run: weights not available offline")
    assert not RunPaths(cohort_dir).predictions_file("clinical_cls_512").exists()
    t2 = pd.DataFrame(columns=analysis.TABLE2_COLUMNS)
    rows = analysis.with_not_run_rows(t2, [res["metrics"]])
    assert rows.loc[0, "model"] == "clinical_cls_512" and rows.loc[0, "family"] == "clinical"
    assert rows.loc[0, "status"].startswith("not run") and pd.isna(rows.loc[0, "micro_auc"])


def test_clinical_row_with_a_bad_path_is_a_config_error(cohort_dir, tmp_path):
    with pytest.raises(ConfigError, match="04.pretrained_path"):
        stages.run_finetuning(cohort_dir, seed=0, encoder="clinical", variant="cls", max_len=512, **FT,
                              pretrained_path=str(tmp_path / "nowhere"))


def test_offshelf_checkpoint_keeps_the_first_layers_and_its_general_vocabulary(tmp_path):
    from bertxml_lib.models.offshelf import prepare_offshelf_dir

    folder = prepare_offshelf_dir(tmp_path / "off", layers=1)
    config = transformers.AutoConfig.from_pretrained(folder)
    assert config.num_hidden_layers == 1 and config.hidden_size == 384 and config.max_position_embeddings == 512
    full = transformers.BertModel.from_pretrained(folder.parent / "off", add_pooling_layer=False)
    assert len(full.encoder.layer) == 1
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    assert len(tok) == 30522  # bert-base-uncased WordPiece, the general vocabulary of the OOV comparison
    with pytest.raises(ValueError, match="between 0"):
        prepare_offshelf_dir(tmp_path / "bad", layers=9)


def test_row_names_and_families():
    assert stages.row_name("offshelf", "cls", 512) == "offshelf_cls_512"
    assert stages.row_name("offshelf_finetuned", "cls", 1024) == "offshelf_finetuned_cls_1024"
    assert stages.row_name("tiny", "xml", 1024) == "ehr_tiny_xml_1024"
    meta = analysis.row_meta("offshelf_finetuned_cls_1024")
    assert meta["family"] == "offshelf" and meta["encoder"] == "offshelf_finetuned" and meta["max_len"] == 1024
    assert analysis.row_meta("clinical_cls_512")["family"] == "clinical"
    assert analysis.row_meta("cnn_512")["family"] == "cnn" and analysis.row_meta("mha_512")["family"] == "mha"


def test_offshelf_row_is_deterministic(cohort_dir, tmp_path):
    """the off-the-shelf row fine-tuned twice with one seed gives the same test probabilities bit for bit
    (the end-to-end determinism check covers the rows of the ci profile; this row runs in `full`)."""
    import shutil

    probs = []
    for name in ("first", "again"):
        out = shutil.copytree(cohort_dir, tmp_path / name)
        # large batches: few optimizer steps over the 30K-row embedding (the cost of this row)
        stages.run_finetuning(out, seed=0, encoder="offshelf", variant="cls", max_len=128,
                              **{**FT, "batch_tokens": 8192}, offshelf_layers=1)
        probs.append(load_predictions(RunPaths(out).predictions_file("offshelf_cls_128")).test_probs)
    assert probs[0].shape[0] > 0 and np.array_equal(probs[0], probs[1])
