"""Table 2 rows (paper Table 2; Ji et al.'s companion models): their names, families, and which notebook
execution makes each. The one place a row name is built or read.

Names:
- `ehr_<encoder>_<head>_<max_len>`: an EHR BERT pretrained here (notebook 03) fine-tuned with a head
  (`cls` eq. 1, `xml` eqs. 2-4, `lan`/`hier` of Ji et al.) in notebook 04;
- `<offshelf|offshelf_finetuned|clinical>_<head>_<max_len>`: encoders not pretrained here (notebook 04);
- `<logreg|mha|cnn>_<max_tokens>`: the baselines of notebook 05;
- `prior`, `oracle`: the floor (each code's training frequency) and, on synthetic data, the ceiling (a scorer
  that knows what the generator wrote).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from bertxml_lib.core.config import ConfigError

OFFSHELF, OFFSHELF_FT, CLINICAL = "offshelf", "offshelf_finetuned", "clinical"
PRETRAINED_ENCODERS = (OFFSHELF, OFFSHELF_FT, CLINICAL)
HEADS = ("cls", "xml", "lan", "hier")
BASELINES = ("logreg", "mha", "cnn")
REFERENCE_ROWS = ("prior", "oracle")

_EHR = re.compile(r"ehr_(?P<encoder>[a-z0-9]+)_(?P<head>cls|xml|lan|hier)_(?P<max_len>\d+)")
_PRETRAINED = re.compile(r"(?P<encoder>offshelf|offshelf_finetuned|clinical)_(?P<head>cls|xml)_(?P<max_len>\d+)")
_BASELINE = re.compile(r"(?P<family>logreg|mha|cnn)_(?P<max_len>\d+)")
_EXTRA_HEAD = re.compile(r"(?P<head>lan|hier|cls|xml)_(?P<max_len>\d+)")


@dataclass(frozen=True)
class Row:
    """One Table 2 row: `family` is the head for EHR BERT rows, else offshelf, clinical, logreg, mha, cnn,
    prior or oracle; `notebook` is the notebook execution that makes it."""
    name: str
    family: str
    encoder: str = ""
    head: str = ""
    max_len: int | None = None
    notebook: str = ""


def row_name(encoder: str, head: str, max_len: int) -> str:
    """`ehr_<encoder>_<head>_<max_len>` for encoders pretrained here, `<encoder>_<head>_<max_len>` otherwise."""
    prefix = encoder if encoder in PRETRAINED_ENCODERS else f"ehr_{encoder}"
    return f"{prefix}_{head}_{int(max_len)}"


def baseline_row(model: str, max_tokens: int) -> str:
    return f"{model}_{int(max_tokens)}"


def row_family(encoder: str, head: str) -> str:
    """The head for EHR BERT rows, else the encoder's family (offshelf, clinical)."""
    return {OFFSHELF: "offshelf", OFFSHELF_FT: "offshelf", CLINICAL: "clinical"}.get(encoder, head)


def bert_row(encoder: str, head: str, max_len: int) -> Row:
    return Row(row_name(encoder, head, max_len), row_family(encoder, head), encoder, head, int(max_len), "04")


def parse_row(name: str) -> Row | None:
    """The row a name stands for, or None when it follows none of the patterns above."""
    if name in REFERENCE_ROWS:
        return Row(name, name)
    if m := _EHR.fullmatch(name) or _PRETRAINED.fullmatch(name):
        return bert_row(m["encoder"], m["head"], int(m["max_len"]))
    if m := _BASELINE.fullmatch(name):
        return Row(name, m["family"], "", "", int(m["max_len"]), "05")
    return None


def parse_pretrained_row(name: str) -> Row:
    """An `offshelf.rows` entry: offshelf_cls_512, offshelf_finetuned_cls_1024, clinical_cls_512."""
    row = parse_row(str(name))
    if row is None or row.encoder not in PRETRAINED_ENCODERS:
        raise ConfigError(f"offshelf.rows: {name!r} is not <offshelf|offshelf_finetuned|clinical>_<cls|xml>_<max_len>")
    return row


def parse_extra_head(name: str) -> tuple[str, int]:
    """A `finetune.extra_heads` entry -> (head, max_len): lan_512, hier_1024."""
    m = _EXTRA_HEAD.fullmatch(str(name))
    if not m:
        raise ConfigError(f"finetune.extra_heads: {name!r} is not <lan|hier|cls|xml>_<max_len>")
    return m["head"], int(m["max_len"])


def baseline_models(models: list) -> list[str]:
    """`baselines.models`, checked: each of logreg, mha, cnn at most once (one notebook-05 execution each)."""
    models = [str(m) for m in models]
    unknown = sorted(set(models) - set(BASELINES))
    if unknown or len(set(models)) != len(models):
        raise ConfigError(f"baselines.models: {models} must name each of {', '.join(BASELINES)} at most once")
    return models


def planned_rows(flat: dict) -> list[Row]:
    """Every notebook-04/05 row a resolved profile makes, in execution order: EHR BERT variants x max_lens per
    encoder, the companion study's extra heads on the first encoder, the pretrained encoders' rows, baselines."""
    encoders = list(flat["pretrain.encoders"])
    rows = [bert_row(enc, head, n) for enc in encoders for head in flat["finetune.variants"]
            for n in flat["finetune.max_lens"]]
    rows += [bert_row(enc, head, n) for enc in encoders[:1] for head, n in map(parse_extra_head, flat["finetune.extra_heads"])]
    rows += [parse_pretrained_row(r) for r in flat["offshelf.rows"]]
    rows += [Row(baseline_row(m, flat["baselines.max_tokens"]), m, "", "", int(flat["baselines.max_tokens"]), "05")
             for m in baseline_models(flat["baselines.models"])]
    return rows
