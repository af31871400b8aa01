"""Profiles and overrides: one source of truth, unknown keys and wrong types are errors."""
import pytest

from bertxml_lib.core import config


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
    with pytest.raises(config.ConfigError, match="expects one of auto, true, false"):
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


@pytest.mark.parametrize("value", ["auto", True, False])
def test_show_text_takes_auto_true_or_false(value):
    assert config.resolve("ci", {"render.show_text": value})["render.show_text"] is value or value == "auto"
    with pytest.raises(config.ConfigError, match="expects one of"):
        config.resolve("ci", {"render.show_text": "yes"})


def test_show_text_auto_shows_note_text_for_synthetic_data_only(tmp_path):
    assert config.resolve("quick")["render.show_text"] == "auto"
    assert config.resolve_show_text("auto", "synthetic") is True
    assert all(config.resolve_show_text("auto", s) is False for s in ("csv", "mimic3", "mimic4", "codiesp"))
    assert config.resolve_show_text(True, "mimic3") is True and config.resolve_show_text(False, "synthetic") is False
    # A notebook run on its own reads the source from the run folder; with none yet, text stays hidden.
    assert config.resolve_show_text("auto", out_dir=tmp_path) is False
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "notes.parquet").write_bytes(b"")
    assert config.resolve_show_text("auto", out_dir=tmp_path) is True
    (tmp_path / "raw" / "source.json").write_text('{"source": "mimic3"}')
    assert config.resolve_show_text("auto", out_dir=tmp_path) is False
