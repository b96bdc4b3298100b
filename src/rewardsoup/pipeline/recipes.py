"""Recipes of the main job: conf/recipe/<name>.yaml, and composing the entry points' configs for them.

A recipe lists its members (name, data, objective and their own `train.*` overrides), the recipe-wide
train.py and merge.py overrides, whether to sample, and optionally a `loop:` block (loop/config.py: sample ->
pick -> fine-tune rounds), and optionally `routed:` (merge.py overrides of a routed soup fitted from the sweep's
pick and tested beside it; an empty list takes conf/merge.yaml's `routed` block). `base: <recipe>` takes another recipe's keys and sets only what differs. Overrides given on the command line come last, so
they win over the recipe's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

import rewardsoup.schemas  # noqa: F401  (the config schemas and the resolvers conf/ uses)
from rewardsoup.core.errors import ConfigError
from rewardsoup.loop.config import LoopSettings, settings

CONF = Path(__file__).resolve().parents[3] / "conf"


def _conf_dir() -> Path:
    return CONF if CONF.exists() else Path.cwd() / "conf"


@dataclass
class Member:
    name: str  # the member's key in merges and tables (merge.weights.<name>)
    data: str  # a conf/data choice
    objective: str  # a conf/objective choice
    train: list[str] = field(default_factory=list)  # this member's own train.* overrides
    budget: str | None = None  # alternatives only: "members" = as many optimizer steps as the members together
    alternative: bool = False  # trained beside the soup and tested against it, never merged


BUDGETS = ("members",)  # an alternative's `budget`: the members' optimizer steps together (equal compute)


@dataclass
class Recipe:
    name: str
    members: list[Member]
    alternatives: list[Member] = field(default_factory=list)  # multi-task model, seed runs: tested beside the soup
    averages: dict[str, list[str]] = field(default_factory=dict)  # row name -> runs averaged linearly (WARM)
    merge: list[str] = field(default_factory=list)  # extra overrides of merge.py (members, eval sets)
    train: list[str] = field(default_factory=list)  # extra overrides of train.py, for every member
    sample: bool = True  # best-of-4 stage
    loop: LoopSettings | None = None  # sample -> pick -> fine-tune rounds after the pick (loop/, conf/recipe/*loop*)
    routed: list[str] | None = None  # merge.py search=routed overrides: a routed soup beside the pick; None = none


def recipe_names() -> list[str]:
    return sorted(p.stem for p in (_conf_dir() / "recipe").glob("*.yaml"))


def _strings(value, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be a list of override strings, got {value!r}")
    return list(value)


def _member(path: Path, where: str, m, alternative: bool) -> Member:
    missing = [k for k in ("name", "data", "objective") if not isinstance(m, dict) or not m.get(k)]
    if missing:
        raise ConfigError(f"{path}: {where} lacks {missing}")
    unknown = set(m) - {"name", "data", "objective", "train", "budget"}
    if unknown or (m.get("budget") is not None and not alternative):
        raise ConfigError(f"{path}: {where} ('{m['name']}') has unknown keys {sorted(unknown or {'budget'})}")
    own = _strings(m.get("train"), f"{path}: {where} ('{m['name']}').train")
    bad = [o for o in own if not o.lstrip("+~").startswith("train.")]
    if bad:
        raise ConfigError(f"{path}: {where} ('{m['name']}').train may only override train.*, got {bad}")
    budget = m.get("budget")
    if budget is not None and budget not in BUDGETS:
        raise ConfigError(f"{path}: {where} ('{m['name']}').budget={budget!r}: expected null or one of {list(BUDGETS)}")
    return Member(str(m["name"]), str(m["data"]), str(m["objective"]), own, budget, alternative)


def _averages(path: Path, raw, names: list[str]) -> dict[str, list[str]]:
    if not raw:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: averages must map a row name to the runs it averages, got {raw!r}")
    out = {}
    for row, runs in raw.items():
        runs = _strings(runs, f"{path}: averages.{row}")
        unknown = [r for r in runs if r not in names]
        if len(runs) < 2 or unknown:
            raise ConfigError(f"{path}: averages.{row} must name >= 2 members or alternatives of this recipe "
                              f"({names}); got {runs}")
        out[str(row)] = runs
    return out


def _raw(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """A recipe file's keys; with `base: <recipe>`, that recipe's keys under this file's own."""
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    if not isinstance(raw, dict) or not raw.get("base"):
        return raw
    base = _conf_dir() / "recipe" / f"{raw['base']}.yaml"
    if not base.exists() or base in seen + (path,):
        raise ConfigError(f"{path}: base={raw['base']!r}: not another recipe of {recipe_names()} (or a cycle)")
    return {**_raw(base, seen + (path,)), **{k: v for k, v in raw.items() if k != "base"}}


def load_recipe(name: str, loop_args: list[str] = ()) -> Recipe:
    """conf/recipe/<name>.yaml -> Recipe; a malformed file is a ConfigError naming the file and field.
    `loop_args` (`loop.rounds=1` from the command line) change the recipe's `loop:` block."""
    path = _conf_dir() / "recipe" / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(f"unknown recipe '{name}': no {path}; expected one of {recipe_names()}")
    raw = _raw(path)
    if loop_args:
        if not isinstance(raw, dict) or not raw.get("loop"):
            raise ConfigError(f"{loop_args[0]}: recipe '{name}' has no loop (the loop recipes: "
                              f"{[n for n in recipe_names() if 'loop' in n or 'iterate' in n]})")
        raw["loop"] = OmegaConf.to_container(OmegaConf.merge(raw["loop"], OmegaConf.from_dotlist(
            [a.split(".", 1)[1] for a in loop_args])))
    if not isinstance(raw, dict) or not raw.get("members"):
        raise ConfigError(f"{path}: `members` must list at least one member")
    unknown = set(raw) - {"members", "alternatives", "averages", "train", "merge", "sample", "loop", "routed"}
    if unknown:
        raise ConfigError(f"{path}: unknown keys {sorted(unknown)}; expected base, members, alternatives, averages, "
                          "train, merge, sample, loop, routed")
    members = [_member(path, f"members[{i}]", m, False) for i, m in enumerate(raw["members"])]
    alternatives = [_member(path, f"alternatives[{i}]", m, True) for i, m in enumerate(raw.get("alternatives") or [])]
    names = [m.name for m in members + alternatives]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: member and alternative names must be unique, got {names}")
    return Recipe(name, members, alternatives, _averages(path, raw.get("averages"), names),
                  merge=_strings(raw.get("merge"), f"{path}: merge"),
                  train=_strings(raw.get("train"), f"{path}: train"), sample=bool(raw.get("sample", True)),
                  loop=settings(raw["loop"], str(path)) if raw.get("loop") is not None else None,
                  routed=_strings(raw["routed"], f"{path}: routed") if raw.get("routed") is not None else None)


def member_overrides(recipe: Recipe, member: Member, overrides: list[str]) -> list[str]:
    """train.py overrides of one member: recipe-wide, the member's own, then the command line's (later win).
    An alternative's folder is named after it (`train.member_name`), so runs of the same data and objective
    (seeds) do not share one; members keep `<data>-<objective>`, the names conf/members/ lists."""
    named = [f"train.member_name={member.name}"] if member.alternative else []
    return recipe.train + member.train + [f"data={member.data}", f"objective={member.objective}",
                                          "train.resume=true"] + named + overrides


def compose_cfg(root: str, overrides: list[str]) -> DictConfig:
    with initialize_config_dir(config_dir=str(_conf_dir()), version_base="1.3"):
        return compose(config_name=root, overrides=overrides)
