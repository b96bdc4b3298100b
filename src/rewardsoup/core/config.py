"""Typed configs: the field helpers and value rules every stage's `config.py` uses, the `paths` and `logger`
schemas, and `validate`, the one place value rules are applied.

Each stage package has a `config.py` whose dataclasses are registered in Hydra's ConfigStore at import (Hydra's
"Structured Config schema" pattern: a conf/ YAML names its schema first in its defaults list and states only
what differs). Hydra then refuses, while it composes, a key the schema lacks (`train.lrr=1`) or a value of the
wrong type (`train.epochs=abc`). A value rule sits beside its field, `checked(default, check=positive)`, and
`validate` applies all of them to a composed config before any work: `rewardsoup.core.jobs` calls it for every
entry point (before Hydra creates a run folder) and `run_job`. `rewardsoup.schemas` imports every stage's
`config.py`, so whoever composes imports it first.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import InterpolationResolutionError

from rewardsoup.core.errors import ConfigError

Check = Callable[[Any], Optional[str]]  # a value -> why it is wrong, or None when it is fine


def checked(default: Any = MISSING, check: Check | None = None, each: Check | None = None,
            factory: Callable[[], Any] | None = None) -> Any:
    """A dataclass field whose value must pass `check` (or, for a mapping, whose every value must pass `each`).
    A null value of an Optional field passes: null means "not set" and each field says what that does."""
    metadata = {k: v for k, v in (("check", check), ("each", each)) if v is not None}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def greater(low: float) -> Check:
    return lambda v: None if _number(v) and v > low else f"must be > {low}"  # nan fails too


def at_least(low: float) -> Check:
    return lambda v: None if _number(v) and v >= low else f"must be >= {low}"


def within(low: float, high: float, low_open: bool = False, high_open: bool = False) -> Check:
    """A number in an interval, e.g. within(0, 1, high_open=True) is [0, 1)."""
    text = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"

    def check(v: Any) -> str | None:
        ok = _number(v) and (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
        return None if ok else f"must be in {text}"

    return check


def one_of(*choices: str) -> Check:
    return lambda v: None if v in choices else f"expected one of {', '.join(choices)}"


def finite(v: Any) -> str | None:
    return None if _number(v) and math.isfinite(v) else "must be a finite number"


ROUTED_MANIFEST = "routed_soup.json"  # marks a routed soup folder (rewardsoup.routing.folder)
ADAPTER_CONFIG = "adapter_config.json"  # marks a peft adapter folder (rewardsoup.models.adapters)


def model_folder(path: Any) -> str | None:
    """A folder holding a saved model's config.json (a member, a soup): checked before any run folder."""
    if (Path(str(path)) / "config.json").is_file():
        return None
    if (Path(str(path)) / ROUTED_MANIFEST).is_file():
        return (f"a routed soup ({ROUTED_MANIFEST}): weights that change with each prompt, which this job (and "
                f"mergekit) cannot take; its shared/ folder is the static soup it routes from")
    return "not a model folder (no config.json there)"


def member_folder(path: Any) -> str | None:
    """A merge member: a saved model, or a peft LoRA adapter folder (trained elsewhere: the merge request checks
    and applies it, models/adapters.py)."""
    if (Path(str(path)) / ADAPTER_CONFIG).is_file():
        return None
    why = model_folder(path)
    return None if why is None else why.replace("no config.json there", f"no config.json or {ADAPTER_CONFIG} there")


def scorer_folder(path: Any) -> str | None:
    """A folder that scores texts: a saved reward model (config.json) or a routed soup (routed_soup.json)."""
    return None if (Path(str(path)) / ROUTED_MANIFEST).is_file() else model_folder(path)


def existing_file(path: Any) -> str | None:
    """An input file that exists (a jsonl the job reads), so a typo stops the job before any model loads."""
    return None if str(path) and Path(str(path)).is_file() else "no such file"


def folder_name(v: Any) -> str | None:
    """One folder name under an output root: '' or '..' would name the root itself (or its parent), which
    the atomic rename that writes a model folder would replace, deleting every sibling."""
    ok = isinstance(v, str) and v.strip() not in ("", ".", "..") and "/" not in v
    return None if ok else "must be one folder name (not empty, no '/', not '.' or '..')"


def folder_path(v: Any) -> str | None:
    """An output folder whose last part is a folder name (same reason as `folder_name`)."""
    ok = isinstance(v, str) and Path(v).name.strip() not in ("", ".", "..")
    return None if ok else "must be a folder path ending in a folder name (not empty, not '/', '.' or '..')"


positive = greater(0)
at_least_one = at_least(1)
not_negative = at_least(0)


def store(node: Any, name: str, group: str | None = None) -> None:
    """Register a schema in Hydra's ConfigStore: a YAML extends it with `defaults: [<name>, _self_]`."""
    ConfigStore.instance().store(group=group, name=name, node=node)


def _shown(value: Any) -> str:
    return str(value) if isinstance(value, (str, int, float, bool)) or value is None else repr(value)


def _field_problem(node: DictConfig, f: dataclasses.Field, key: str) -> str | None:
    if OmegaConf.is_missing(node, f.name):
        return f"{key}: missing value (???): give {key}=..."
    value = node[f.name]
    if value is None:
        return None
    check, each = f.metadata.get("check"), f.metadata.get("each")
    if check is not None and (why := check(value)) is not None:
        return f"{key}={_shown(value)}: {why}"
    if each is not None:
        for sub, item in value.items():
            if (why := each(item)) is not None:
                return f"{key}.{sub}={_shown(item)}: {why}"
    return None


def problems(cfg: DictConfig, prefix: str = "") -> list[str]:
    """Every value-rule violation in `cfg`, each as `full.key=value: reason` (nested schemas included).

    A schema may add rules across its fields as a static method `rules(node) -> [(field, reason), ...]`."""
    found: list[str] = []
    kind = OmegaConf.get_type(cfg)
    if dataclasses.is_dataclass(kind):
        present = set(cfg.keys())  # `in cfg` is False for a missing (???) value
        for f in dataclasses.fields(kind):
            if f.name in present and (why := _field_problem(cfg, f, prefix + f.name)) is not None:
                found.append(why)
        rules = getattr(kind, "rules", None)
        if callable(rules) and not found:
            found += [f"{prefix}{key}: {why}" if isinstance(cfg.get(key.split(".")[0]), DictConfig)
                      else f"{prefix}{key}={_shown(cfg[key])}: {why}" for key, why in rules(cfg)]
    for key in cfg:
        if prefix == "" and key == "hydra":  # Hydra's own settings: checked by Hydra
            continue
        if OmegaConf.is_missing(cfg, key) or OmegaConf.is_interpolation(cfg, key):
            continue
        child = cfg[key]
        if isinstance(child, DictConfig):
            found += problems(child, f"{prefix}{key}.")
    return found


def unset(node: DictConfig | ListConfig, prefix: str = "") -> list[str]:
    """Every ??? value and every interpolation that does not resolve, anywhere in `node` (mappings of any type
    and lists included). A value rule, or a job, that read one would fail with OmegaConf's traceback."""
    found: list[str] = []
    for key in node.keys() if isinstance(node, DictConfig) else range(len(node)):
        full = f"{prefix}{key}"
        if full == "hydra":  # Hydra's own settings: resolved by Hydra (some only inside a run)
            continue
        if OmegaConf.is_missing(node, key):
            found.append(f"{full}: missing value (???): give {full}=...")
            continue
        try:
            child = node[key]
        except InterpolationResolutionError as exc:
            found.append(f"{full}: its interpolation cannot be resolved ({str(exc.msg).splitlines()[0]})")
            continue
        if isinstance(child, (DictConfig, ListConfig)) and not OmegaConf.is_interpolation(node, key):
            found += unset(child, f"{full}.")
    return found


def validate(cfg: DictConfig) -> DictConfig:
    """Apply every value rule of the schemas in `cfg`; the first violation is a ConfigError naming the full
    key and value (`train.lr=-1.0: must be > 0`). Returns `cfg`, so `validate(compose(...))` reads well.
    ??? values and unresolvable interpolations come first: the rules read values and would trip on them."""
    found = unset(cfg) or problems(cfg)
    if found:
        raise ConfigError(found[0] + (f" (and {len(found) - 1} more: {'; '.join(found[1:3])})" if found[1:] else ""))
    return cfg


# ---------- paths and logger: the settings every stage shares ----------

@dataclass
class PathsConfig:
    """Where outputs go (conf/paths/default.yaml gives the values and their reasons)."""

    root: str = MISSING
    bases: str = MISSING
    members: str = MISSING
    soups: str = MISSING
    cache: str = MISSING
    reports: str = MISSING


LOGGER_BACKENDS = ("none", "wandb")
WANDB_MODES = ("offline", "online", "disabled")


@dataclass
class LoggerConfig:
    """logger=none: no tracking at all."""

    backend: str = checked(check=one_of(*LOGGER_BACKENDS))


@dataclass
class WandbLoggerConfig(LoggerConfig):
    """logger=wandb: one W&B run per job (conf/logger/wandb.yaml gives the values and their reasons)."""

    project: str = MISSING
    entity: Optional[str] = None
    group: Optional[str] = None
    tags: List[str] = field(default_factory=list)
    mode: str = checked(check=one_of(*WANDB_MODES))
    dir: Optional[str] = None
    init_timeout: float = checked(30.0, check=positive)


store(PathsConfig, "schema", group="paths")
store(LoggerConfig, "none_schema", group="logger")
store(WandbLoggerConfig, "wandb_schema", group="logger")
