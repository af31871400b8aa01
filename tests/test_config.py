"""Profiles and overrides: one source of truth, unknown keys and wrong types are errors."""
import pytest

from bertxml_lib import config


def test_profiles_resolve_and_differ():
    ci, quick, paper = (config.resolve(p) for p in ("ci", "quick", "paper"))
    assert set(ci) == set(quick) == set(paper)
    assert ci["data.n_patients"] < quick["data.n_patients"] < paper["data.n_patients"]
    assert paper["pretrain.encoders"] == ["small", "big"] and paper["tokenizer.vocab_size"] == 20000
    assert paper["finetune.lr"] == 2e-5 and paper["cohort.min_train_count"] == 1000


def test_override_types_are_checked():
    assert config.resolve("ci", {"cohort.min_train_count": 5})["cohort.min_train_count"] == 5
    assert config.resolve("ci", {"finetune.lr": 1})["finetune.lr"] == 1.0  # int accepted for float
    with pytest.raises(config.ConfigError, match="expects int"):
        config.resolve("ci", {"cohort.min_train_count": "five"})
    with pytest.raises(config.ConfigError, match="expects bool"):
        config.resolve("ci", {"render.show_text": 1})
    with pytest.raises(config.ConfigError, match="unknown parameter 'cohort.min_count'"):
        config.resolve("ci", {"cohort.min_count": 5})
    with pytest.raises(config.ConfigError, match="unknown profile"):
        config.resolve("huge")


def test_parse_sets_splits_global_and_per_notebook():
    g, per = config.parse_sets(["cohort.min_train_count=5", "4.finetune.epochs=2", "pretrain.encoders=[tiny, mini]"])
    assert g == {"cohort.min_train_count": 5, "pretrain.encoders": ["tiny", "mini"]}
    assert per == {"04": {"finetune.epochs": 2}}
    with pytest.raises(config.ConfigError, match="key=value"):
        config.parse_sets(["cohort.min_train_count"])


def test_speed_only_keys_exist():
    flat = config.resolve("quick")
    assert config.speed_only_keys() <= set(flat)
