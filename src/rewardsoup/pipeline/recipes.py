"""Recipes of the main job: conf/recipe/<name>.yaml, and composing the entry points' configs for them.

A recipe lists its members (name, data, objective and their own `train.*` overrides), the recipe-wide
train.py and merge.py overrides, and whether to sample. Overrides given on the command line come last, so
they win over the recipe's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

import rewardsoup.schemas  # noqa: F401  (the config schemas and the resolvers conf/ uses)
from rewardsoup.core.errors import ConfigError

CONF = Path(__file__).resolve().parents[3] / "conf"


def _conf_dir() -> Path:
    return CONF if CONF.exists() else Path.cwd() / "conf"


@dataclass
class Member:
    name: str  # the member's key in merges and tables (merge.weights.<name>)
    data: str  # a conf/data choice
    objective: str  # a conf/objective choice
    train: list[str] = field(default_factory=list)  # this member's own train.* overrides


@dataclass
class Recipe:
    name: str
    members: list[Member]
    merge: list[str] = field(default_factory=list)  # extra overrides of merge.py (members, eval sets)
    train: list[str] = field(default_factory=list)  # extra overrides of train.py, for every member
    sample: bool = True  # best-of-4 stage


def recipe_names() -> list[str]:
    return sorted(p.stem for p in (_conf_dir() / "recipe").glob("*.yaml"))


def _strings(value, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of override strings, got {value!r}")
    return list(value)


def load_recipe(name: str) -> Recipe:
    """conf/recipe/<name>.yaml -> Recipe; a malformed file is a ConfigError naming the file and field."""
    path = _conf_dir() / "recipe" / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"unknown recipe '{name}': no {path}; expected one of {recipe_names()}")
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    if not isinstance(raw, dict) or not raw.get("members"):
        raise ConfigError(f"{path}: `members` must list at least one member")
    unknown = set(raw) - {"members", "train", "merge", "sample"}
    if unknown:
        raise ConfigError(f"{path}: unknown keys {sorted(unknown)}; expected members, train, merge, sample")
    members = []
    for i, m in enumerate(raw["members"]):
        missing = [k for k in ("name", "data", "objective") if not isinstance(m, dict) or not m.get(k)]
        if missing:
            raise ConfigError(f"{path}: members[{i}] lacks {missing}")
        own = _strings(m.get("train"), f"{path}: members[{i}] ('{m['name']}').train")
        bad = [o for o in own if not o.lstrip("+~").startswith("train.")]
        if bad:
            raise ConfigError(f"{path}: members[{i}] ('{m['name']}').train may only override train.*, got {bad}")
        members.append(Member(str(m["name"]), str(m["data"]), str(m["objective"]), own))
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: member names must be unique, got {names}")
    return Recipe(name, members, merge=_strings(raw.get("merge"), f"{path}: merge"),
                  train=_strings(raw.get("train"), f"{path}: train"), sample=bool(raw.get("sample", True)))


def member_overrides(recipe: Recipe, member: Member, overrides: list[str]) -> list[str]:
    """train.py overrides of one member: recipe-wide, the member's own, then the command line's (later win)."""
    return recipe.train + member.train + [f"data={member.data}", f"objective={member.objective}",
                                          "train.resume=true"] + overrides


def compose_cfg(root: str, overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(_conf_dir()), version_base="1.3"):
        return compose(config_name=root, overrides=overrides)
