"""The main job: the whole recipe, offline, each stage skipped when its output exists.

`make demo` runs the `demo` recipe on the embedded default; `make report-real` runs the `real` recipe on
../shared/data. A recipe is a YAML file in conf/recipe/ (its members with data, objective and their own
train.* overrides, the recipe-wide train.py and merge.py overrides, whether to sample); overrides given on
the command line come last, so they win over the recipe's. Stages: base -> members -> Optuna sweep of
in-memory trials (val) -> pick the best trial, export it with mergekit, test it beside members and
baselines -> best-of-4 samples (demo only).
Stages run through the same work functions and configs as the entry points; the sweep is its own
`python merge.py -m …` (a Hydra multirun). A second run is fast, and a run after an interruption finishes
the job: training resumes from its last checkpoint, the Optuna study from its sqlite file.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import rewardsoup.core.jobs  # noqa: F401  (resolvers)
from rewardsoup.core.atomic import atomic_write_text
from rewardsoup.core.errors import ConfigError, RewardSoupError
from rewardsoup.models.base import BASE_META, build_base
from rewardsoup.pipeline.report import write_real_report
from rewardsoup.sweep import ledger
from rewardsoup.sweep.pick import pick_best
from rewardsoup.training.member import MEMBER_META, train_member

CONF = Path(__file__).resolve().parents[3] / "conf"
DEMO_PROMPTS = Path(__file__).resolve().parents[1] / "data" / "demo_prompts.jsonl"  # role-play prompts we wrote


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
    from omegaconf import OmegaConf

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


def _stage(title: str, done: Path | None, work: Callable[[], object], walls: dict) -> None:
    if done is not None and done.exists():
        print(f"== {title}: already done ({done})", flush=True)
        return
    print(f"== {title} ...", flush=True)
    start = time.monotonic()
    work()
    walls[title] = round(time.monotonic() - start, 1)
    print(f"== {title}: done in {walls[title]:.0f}s", flush=True)


def _run(cmd: list[str]) -> None:
    """A stage that is its own command (a Hydra multirun): stream its output, fail loudly."""
    print("   $ python " + " ".join(cmd[1:]), flush=True)
    if subprocess.run(cmd, cwd=CONF.parent).returncode != 0:
        raise RewardSoupError(f"stage failed: python {' '.join(cmd[1:])}")


MERGE_ONLY = ("hydra.sweeper.", "trial.", "pick.", "sweep.", "merge.", "members", "datasets", "greedy.", "mode=")
TRAIN_ONLY = ("train.", "data", "objective=", "objective.")


def split_overrides(overrides: list[str]) -> tuple[list[str], list[str]]:
    """Command-line overrides -> (for train.py, for merge.py); keys of one root only go to that root."""
    key = lambda o: o.lstrip("+~")  # noqa: E731
    train = [o for o in overrides if not key(o).startswith(MERGE_ONLY)]
    merge = [o for o in overrides if not key(o).startswith(TRAIN_ONLY)]
    return train, merge


def _ledger_rows(sweep_dir) -> int:

    return len(ledger.read(sweep_dir)[1]) if (Path(str(sweep_dir)) / ledger.HEADER).exists() else 0


WALLS = "pipeline-walls.json"  # under paths.root: seconds per stage, from the run that did the stage's work


def _record_walls(root: Path, walls: dict) -> dict:
    """Stage walls of this run merged over earlier runs' (a resumed run skips finished stages)."""
    path = root / WALLS
    recorded = json.loads(path.read_text()) if path.exists() else {}
    recorded.update(walls)
    atomic_write_text(path, json.dumps(recorded, indent=1))
    return recorded


def run_recipe(name: str, overrides: list[str]) -> dict:

    recipe = load_recipe(name)
    start, walls = time.monotonic(), {}
    overrides, merge_overrides = split_overrides(overrides)
    cfg = compose_cfg("train", overrides)
    _stage(f"1/5 base: {cfg.model.source} cut to {cfg.model.layers} layers, 1-logit head",
           Path(cfg.model.base_dir) / BASE_META, lambda: build_base(cfg.model), walls)
    members = {}
    for i, m in enumerate(recipe.members, 1):
        mcfg = compose_cfg("train", member_overrides(recipe, m, overrides))
        members[m.name] = Path(mcfg.train.output_dir)
        own = f", {' '.join(m.train)}" if m.train else ""
        _stage(f"2/5 member {i}/{len(recipe.members)} '{m.name}': {m.data} ({m.objective}{own})",
               members[m.name] / MEMBER_META, lambda c=mcfg: train_member(c), walls)
    merge_args = ["search=optuna"] + recipe.merge + merge_overrides
    scfg = compose_cfg("merge", merge_args)
    # always launched: the Optuna study resumes, so a rerun only adds the trials still missing
    sweep_title = "3/5 sweep: Optuna trials (conf/search/optuna.yaml) merged in memory, scored on val"
    trials_before = _ledger_rows(scfg.sweep.dir)
    _stage(sweep_title, None, lambda: _run([sys.executable, "merge.py", "-m", *merge_args]), walls)
    if _ledger_rows(scfg.sweep.dir) == trials_before:  # nothing new: keep the wall of the run that did the trials
        walls.pop(sweep_title)
    pcfg = compose_cfg("merge", merge_args + ["mode=pick"])
    picked = Path(pcfg.paths.soups) / str(pcfg.pick.name)
    report = Path(pcfg.paths.reports) / "evaluate-test" / "table.md"
    _stage("4/5 pick the best trial, export it with mergekit, test it beside members and baselines",
           report if (picked / "mergekit_config.yml").exists() else None, lambda: pick_best(pcfg), walls)
    samples = Path(cfg.paths.root) / "samples" / "demo-best-of-4.jsonl"
    if recipe.sample:
        _stage("5/5 best-of-4: SmolLM2 writes four replies per role-play prompt, the soup picks one", samples,
               lambda: _run([sys.executable, "sample.py", f"reward_model={picked}", f"prompts={DEMO_PROMPTS}", "n=4",
                             f"output={samples}", *[o for o in overrides if o.startswith(("paths.", "model", "logger"))]]),
               walls)
    total = time.monotonic() - start
    walls = _record_walls(Path(cfg.paths.root), walls)
    print(f"\n{name} finished in {total:.0f}s. Results on the test splits (unseen by the sweep):\n")
    print(report.read_text())
    print(f"Outputs under {cfg.paths.root}:")
    for member, path in members.items():
        print(f"  member {member}: {path}")
    print(f"  picked soup: {picked}  (mergekit YAML beside it)")
    print(f"  sweep ledger: {Path(scfg.sweep.dir) / 'ledger.jsonl'}  plots: {Path(scfg.sweep.dir) / 'plots'}")
    if recipe.sample:
        print(f"  best-of-4 samples: {samples}")
    print(f"  W&B offline runs: {cfg.paths.root}/wandb  (upload: wandb sync {cfg.paths.root}/wandb/offline-run-*)")
    return {"root": str(cfg.paths.root), "report": str(report), "walls": walls, "total_s": round(total, 1),
            "members": {k: str(v) for k, v in members.items()}, "sweep": str(scfg.sweep.dir)}


def main() -> None:
    parser = argparse.ArgumentParser(description="run a whole recipe (make demo / make report-real)")
    parser.add_argument("--recipe", choices=recipe_names(), default="demo", help="a file in conf/recipe/")
    args, overrides = parser.parse_known_args()
    try:
        if args.recipe == "real":

            write_real_report(run_recipe("real", overrides))
        else:
            run_recipe(args.recipe, overrides)
    except RewardSoupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
