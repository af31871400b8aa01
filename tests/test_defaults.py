"""One source of defaults: every default a library entry point or config dataclass carries equals the base
profile of configs/profiles.yaml (so a call without arguments runs what the profile says)."""
from __future__ import annotations

import dataclasses
import inspect

import pytest

from bertxml_lib import stages
from bertxml_lib.core import config
from bertxml_lib.evaluation import analysis
from bertxml_lib.reporting import attention
from bertxml_lib.training import baselines, neural_baselines
from bertxml_lib.training.finetune import FinetuneConfig
from bertxml_lib.training.pretrain import PretrainConfig

BASE = config.flatten(config.load_profiles_file()["base"])

FINETUNE = {"epochs": "finetune.epochs", "batch_tokens": "finetune.batch_tokens", "lr": "finetune.lr",
            "head_lr": "finetune.head_lr", "warmup": "finetune.warmup", "weight_decay": "finetune.weight_decay",
            "eval_batch_size": "finetune.eval_batch_size", "seed": "seed", "device": "run.device"}
PRETRAIN = {"max_len": "pretrain.max_len", "epochs": "pretrain.epochs", "batch_tokens": "pretrain.batch_tokens",
            "lr": "pretrain.lr", "warmup": "pretrain.warmup", "weight_decay": "pretrain.weight_decay",
            "mask_prob": "pretrain.mask_prob", "seed": "seed", "device": "run.device"}
RUN = {"seed": "seed", "device": "run.device", "threads": "run.threads"}
FUNCTIONS = {
    neural_baselines.run_mha: RUN | {
        "max_tokens": "baselines.max_tokens", "min_word_count": "baselines.min_word_count",
        "emb_dim": "baselines.mha_emb_dim", "starspace_epochs": "baselines.mha_starspace_epochs",
        "hidden": "baselines.mha_hidden", "heads": "baselines.mha_heads", "lrs": "baselines.mha_lrs",
        "epochs": "baselines.mha_epochs", "batch_size": "baselines.mha_batch_size"},
    neural_baselines.run_cnn: RUN | {
        "max_tokens": "baselines.max_tokens", "min_word_count": "baselines.min_word_count",
        "emb_dim": "baselines.cnn_emb_dim", "filters": "baselines.cnn_filters", "kernel": "baselines.cnn_kernel",
        "lr": "baselines.cnn_lr", "epochs": "baselines.cnn_epochs", "batch_size": "baselines.cnn_batch_size"},
    baselines.run_logreg: {"max_tokens": "baselines.max_tokens", "C": "baselines.C", "seed": "seed"},
    analysis.run_analysis: {"low_freq_max": "analysis.low_freq_max", "top_codes": "analysis.top_codes",
                            "high_auc": "analysis.high_auc", "confused_top": "analysis.confused_pairs",
                            "n_bootstrap": "analysis.n_bootstrap", "seed": "seed",
                            "n_freq_bins": "analysis.n_freq_bins", "min_test_positives": "analysis.min_test_positives"},
    attention.run_attention: {"row": "attention.row", "min_tokens": "attention.min_tokens", "device": "run.device"},
    stages.run_pretraining: RUN | {"offshelf_layers": "offshelf.layers", "offshelf_mlm_epochs": "offshelf.mlm_epochs",
                                   "offshelf_lr": "offshelf.lr"},
    stages.run_finetuning: RUN | {"offshelf_layers": "offshelf.layers", "offshelf_lr": "offshelf.lr",
                                  "hier_segment_len": "finetune.hier_segment_len"},
    stages.run_evidence: {"seed": "seed", "top_k": "evidence.top_k", "precision_target": "evidence.precision_target",
                          "n_bootstrap": "evidence.n_bootstrap", "max_notes": "evidence.max_notes",
                          "length_bins": "evidence.length_bins", "evidence_table": "data.evidence",
                          "device": "run.device"},
    stages.run_cohort: {"notes": "data.notes", "codes": "data.codes", "data_dir": "data.dir",
                        "icd_version": "data.icd_version", "language": "data.language"},
}


def _same(a, b) -> bool:
    return list(a) == list(b) if isinstance(a, (list, tuple)) else a == b


@pytest.mark.parametrize("cls, mapping", [(FinetuneConfig, FINETUNE), (PretrainConfig, PRETRAIN)],
                         ids=["FinetuneConfig", "PretrainConfig"])
def test_config_dataclass_defaults_equal_the_base_profile(cls, mapping):
    fields = {f.name: f.default for f in dataclasses.fields(cls)}
    assert {k: fields[k] for k in mapping} == {k: BASE[v] for k, v in mapping.items()}
    assert PretrainConfig().encoder == BASE["pretrain.encoders"][0]


@pytest.mark.parametrize("fn", list(FUNCTIONS), ids=lambda f: f.__qualname__)
def test_entry_point_defaults_equal_the_base_profile(fn):
    params = inspect.signature(fn).parameters
    wrong = {name: (params[name].default, BASE[key]) for name, key in FUNCTIONS[fn].items()
             if params[name].default is not inspect.Parameter.empty and not _same(params[name].default, BASE[key])}
    assert wrong == {}
