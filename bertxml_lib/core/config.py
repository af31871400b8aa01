"""Profiles (`ci`, `quick`, `paper`) from configs/profiles.yaml and type-checked `--set` overrides."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

PROFILES_FILE = Path(__file__).resolve().parents[2] / "configs" / "profiles.yaml"
REPO = PROFILES_FILE.parent.parent
# Parameters the runner sets per execution (not profile keys): output folder, the row of Table 2 (encoder,
# variant, max_len for notebook 04; the baseline `model` for notebook 05), and the local checkpoint of the
# `clinical` row (`--set 04.pretrained_path=DIR`, given to that row only).
RUNNER_PARAMS = ("out_dir", "encoder", "variant", "max_len", "pretrained_path", "model")


class ConfigError(ValueError):
    """A usage error in profiles or overrides (run_all exits 2)."""


def load_profiles_file(path: str | Path = PROFILES_FILE) -> dict:
    with open(path) as fh:
        return yaml.safe_load(fh)


def profile_names(path: str | Path = PROFILES_FILE) -> list[str]:
    return list(load_profiles_file(path)["profiles"])


def flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{'cohort': {'min_train_count': 5}} -> {'cohort.min_train_count': 5} (lists stay values)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def param_name(key: str) -> str:
    """The notebook parameter that carries a config key: dots become underscores."""
    return key.replace(".", "_")


def resolve(profile: str, overrides: dict[str, Any] | None = None, path: str | Path = PROFILES_FILE) -> dict[str, Any]:
    """The flat parameter dict of a profile, with validated overrides applied on top."""
    doc = load_profiles_file(path)
    if profile not in doc["profiles"]:
        raise ConfigError(f"unknown profile {profile!r}; expected one of {sorted(doc['profiles'])}")
    base = flatten(doc["base"])
    layered = copy.deepcopy(base)
    for key, value in flatten(doc["profiles"][profile] or {}).items():
        if key not in base:
            raise ConfigError(f"{path}: profile {profile!r} sets unknown key {key!r}")
        try:  # profile values are checked like `--set` values: a typo in the file is an error, not a new type
            layered[key] = check_override(key, value, base)
        except ConfigError as exc:
            raise ConfigError(f"{path}: profile {profile!r}: {exc}") from None
    for key, value in (overrides or {}).items():
        layered[key] = check_override(key, value, base)
    return layered


def speed_only_keys(path: str | Path = PROFILES_FILE) -> set[str]:
    return set(load_profiles_file(path).get("speed_only", []))


def render_only_keys(path: str | Path = PROFILES_FILE) -> set[str]:
    """Keys that change only what is drawn or printed: they enter the fingerprint of the notebooks that
    take them, not their downstream notebooks' (`runner.plan`)."""
    return set(load_profiles_file(path).get("render_only", []))


def choices(path: str | Path = PROFILES_FILE) -> dict[str, list]:
    """{key: allowed values} for keys whose values are not all of the default's type (render.show_text)."""
    return dict(load_profiles_file(path).get("choices", {}) or {})


def resolve_show_text(value: Any, source: str = "", out_dir: str | Path | None = None) -> bool:
    """`render.show_text` as a bool: true/false as given; `auto` shows note text only for the synthetic
    source (real notes reach no figure, notebook, site page or log unless the user asks).

    Without `source`, the run folder `out_dir` tells: `raw/source.json` is written for every real source,
    `raw/notes.parquet` alone only by the synthetic one; with neither, text stays hidden."""
    if isinstance(value, bool):
        return value
    if value != "auto":
        raise ConfigError(f"render.show_text must be auto, true or false, got {value!r}")
    if not source and out_dir is not None:
        raw = Path(out_dir) / "raw"
        if (raw / "source.json").exists():
            source = str(yaml.safe_load((raw / "source.json").read_text()).get("source", "real"))
        elif (raw / "notes.parquet").exists():
            source = "synthetic"
    return source == "synthetic"


def resolve_out_dir(out_dir: str | Path) -> str:
    """A run folder as an absolute path: relative paths are the repository's (`results/quick`), never the
    working directory's, so a notebook opened from `notebooks/` reads the same run `run_all.py` wrote."""
    path = Path(out_dir).expanduser()
    return str(path if path.is_absolute() else (REPO / path).resolve())


#: Data sources and the input parameters each one reads (files for csv, a folder for the others).
SOURCE_INPUTS = {"csv": {"data.notes": "file", "data.codes": "file"}, "mimic3": {"data.dir": "folder"},
                 "mimic4": {"data.dir": "folder"}, "codiesp": {"data.dir": "folder"}, "fhir": {"data.dir": "folder"}}
VALUE_CHOICES = {"data.icd_version": (9, 10), "data.language": ("en", "es")}


def check_values(flat: dict[str, Any]) -> None:
    """Checks of a resolved profile that need no kernel: choices, the input files and folders the data
    source reads, the split fractions. Raises ConfigError naming the parameter (run_all exits 2)."""
    for key, allowed in VALUE_CHOICES.items():
        if key in flat and flat[key] not in allowed:
            raise ConfigError(f"parameter {key!r} expects one of {', '.join(map(str, allowed))}, got {flat[key]!r}")
    source = flat.get("data.source", "synthetic")
    for key, kind in SOURCE_INPUTS.get(source, {}).items():
        value = str(flat.get(key) or "")
        if not value:
            raise ConfigError(f"data.source={source} reads {key}: give it with --set {key}=PATH")
        path = Path(value).expanduser()
        if not (path.is_file() if kind == "file" else path.is_dir()):
            found = "a folder" if path.is_dir() else "a file" if path.exists() else "nothing"
            raise ConfigError(f"{key}={value}: expected an existing {kind} for data.source={source}, found {found}")
    evidence = str(flat.get("data.evidence") or "")
    if evidence and not Path(evidence).expanduser().is_file():
        raise ConfigError(f"data.evidence={evidence}: expected an existing evidence table file (note_id, code, spans)")
    fractions = flat.get("cohort.split_fractions")
    if fractions is not None and (len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1) > 1e-6):
        raise ConfigError(f"cohort.split_fractions={fractions}: expected three non-negative fractions "
                          f"(train, dev, test) summing to 1")


def parse_value(text: str) -> Any:
    """`--set` values are YAML scalars or lists: 5, 0.1, true, cpu, [small, big]."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse value {text!r}: {exc}") from None


def check_override(key: str, value: Any, defaults: dict[str, Any]) -> Any:
    """Unknown keys and wrong types are errors, never silently ignored.

    An int is accepted where a float is expected; a string "null"-like value is not coerced."""
    if key not in defaults:
        close = [k for k in defaults if k.split(".")[-1] == key.split(".")[-1]]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"unknown parameter {key!r}{hint}")
    allowed = choices().get(key)
    if allowed is not None:
        # Compare types too: 1 == True in Python, but `render.show_text=1` is not a choice.
        if not any(value == a and type(value) is type(a) for a in allowed):
            raise ConfigError(f"parameter {key!r} expects one of {', '.join(map(_yaml_scalar, allowed))}, "
                              f"got {type(value).__name__} {value!r}")
        return value
    expected = defaults[key]
    if isinstance(expected, bool) or isinstance(value, bool):
        ok = isinstance(value, bool) and isinstance(expected, bool)
    elif isinstance(expected, float):
        ok = isinstance(value, (int, float))
        value = float(value) if ok else value
    elif isinstance(expected, int):
        ok = isinstance(value, int)
    elif isinstance(expected, list):
        ok = isinstance(value, list)
    else:
        ok = isinstance(value, type(expected))
        if not ok and isinstance(expected, str) and isinstance(value, (int, float)):
            value, ok = str(value), True
    if not ok:
        raise ConfigError(
            f"parameter {key!r} expects {type(expected).__name__} (default {expected!r}), "
            f"got {type(value).__name__} {value!r}"
        )
    return value


def parse_sets(items: list[str]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Split `key=value` and `NN.key=value` items into global and per-notebook overrides."""
    global_sets: dict[str, Any] = {}
    per_notebook: dict[str, dict[str, Any]] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--set expects key=value, got {item!r}")
        key, text = item.split("=", 1)
        key = key.strip()
        value = parse_value(text)
        head, _, rest = key.partition(".")
        if head.isdigit() and rest:
            per_notebook.setdefault(head.zfill(2), {})[rest] = value
        else:
            global_sets[key] = value
    return global_sets, per_notebook


def _yaml_scalar(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)
