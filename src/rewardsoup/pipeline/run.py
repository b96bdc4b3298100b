"""The main job: the whole recipe, offline, each stage skipped when its output exists.

`make demo` runs the `demo` recipe on the embedded default; `make report-real` runs the `real` recipe on
../shared/data. Besides the soup's members a recipe may train `alternatives` (a multi-task model on the
members' data, at the members' optimizer steps together; seed runs) and `averages` of runs, all tested
beside the soup. A recipe is a YAML file in conf/recipe/ (`pipeline.recipes`); the command line's overrides
come last, each sent to the entry points whose configs have its key (`pipeline.overrides`). Every unfinished
member's and alternative's data is read and checked first (a bad file stops the job with nothing written), then
the stages: base -> members -> Optuna sweep of in-memory trials (val) -> with a `routed:` recipe key, a routed
soup from the sweep's pick (router fitted on val) -> pick the best trial, export it with mergekit, test it
beside members, baselines and the routed soup -> best-of-4 samples (demo only) -> a recipe with a `loop:` block
(conf/recipe/demo_loop.yaml) then runs sample -> pick -> fine-tune rounds per picker and judges them (`loop`).
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
from pathlib import Path
from typing import Callable

from omegaconf import DictConfig

from rewardsoup.core.allocator import keep_freed_memory
from rewardsoup.core.atomic import atomic_write_text
from rewardsoup.core.config import ROUTED_MANIFEST, validate
from rewardsoup.core.errors import RewardSoupError
from rewardsoup.core.plain import plain
from rewardsoup.loop.config import SOUP, roles
from rewardsoup.loop.prompts import prompt_files
from rewardsoup.loop.report import judge_loop
from rewardsoup.loop.rounds import Loop
from rewardsoup.models.base import BASE_META, build_base
from rewardsoup.pipeline.overrides import route
from rewardsoup.pipeline.recipes import CONF, Member, Recipe, compose_cfg, load_recipe, member_overrides, recipe_names
from rewardsoup.pipeline.report import write_real_report
from rewardsoup.sweep import ledger
from rewardsoup.sweep.pick import PICK_DONE, pick_best
from rewardsoup.sweep.summary import PICK_FILE
from rewardsoup.training import lora
from rewardsoup.training.member import MEMBER_META, train_member
from rewardsoup.training.preflight import member_data

DEMO_PROMPTS = Path(__file__).resolve().parents[1] / "data" / "demo_prompts.jsonl"  # role-play prompts we wrote


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


def _ledger_rows(sweep_dir) -> int:

    return len(ledger.read(sweep_dir)[1]) if (Path(str(sweep_dir)) / ledger.HEADER).exists() else 0


ROUTED_ROW = "routed"  # the routed soup's row in the pick's test table
WALLS = "pipeline-walls.json"  # under paths.root: seconds per stage, from the run that did the stage's work


def _record_walls(root: Path, walls: dict) -> dict:
    """Stage walls of this run merged over earlier runs' (a resumed run skips finished stages)."""
    path = root / WALLS
    recorded = json.loads(path.read_text()) if path.exists() else {}
    recorded.update(walls)
    atomic_write_text(path, json.dumps(recorded, indent=1))
    return recorded


def stage_overrides(recipe: Recipe, overrides: list[str]) -> dict[str, list[str]]:
    """The command line's overrides routed to train.py, merge.py and (when the recipe samples) sample.py,
    each root composed with the recipe's own overrides (`pipeline.overrides.route`)."""
    roots = {"train": member_overrides(recipe, recipe.members[0], []), "merge": ["search=optuna"] + recipe.merge}
    if recipe.sample or recipe.loop:
        roots["sample"] = [f"prompts={DEMO_PROMPTS}"]
    if recipe.loop:
        roots["tune"] = list(recipe.loop.tune)
    return {"sample": [], "tune": [], **route(overrides, roots, compose_cfg)}


def _train_cfgs(recipe: Recipe, overrides: list[str]) -> dict[str, DictConfig]:
    """Every member's and alternative's train.py config, composed and checked before anything is written."""
    return {m.name: validate(compose_cfg("train", member_overrides(recipe, m, overrides)))
            for m in recipe.members + recipe.alternatives}


def budget_overrides(alternative: Member, member_dirs: dict[str, Path]) -> list[str]:
    """budget=members: as many optimizer steps as the members took together (their metadata's `steps`)."""
    if alternative.budget != "members":
        return []
    steps = sum(int(json.loads((d / MEMBER_META).read_text())["steps"]) for d in member_dirs.values())
    return [f"train.max_steps={steps}"]


def _check_data(recipe: Recipe, cfgs: dict[str, DictConfig]) -> None:
    """Every unfinished member's and alternative's data read and checked as train.py checks it (`member_data`),
    before stage 1 builds the base: a bad data file is one `error:` line naming it, and nothing is written."""
    start, seen = time.monotonic(), set()
    for m in recipe.members + recipe.alternatives:
        cfg = cfgs[m.name]
        key = json.dumps([plain(cfg.data), plain(cfg.objective)], sort_keys=True, default=str)
        if (Path(cfg.train.output_dir) / MEMBER_META).exists():
            continue
        try:
            if lora.enabled(cfg.train):  # LoRA targets that adapt no module, as train.py checks them
                lora.check_targets(cfg.model, cfg.train.lora)
            if key not in seen:
                member_data(cfg)
            seen.add(key)
        except RewardSoupError as exc:
            role = "alternative" if m.alternative else "member"
            raise type(exc)(f"{role} '{m.name}' (data={m.data}): {exc}") from exc
    if seen:
        print(f"== data: {len(seen)} sets read and checked in {time.monotonic() - start:.0f}s", flush=True)


def _members(recipe: Recipe, overrides: list[str], walls: dict,
             cfgs: dict[str, DictConfig]) -> tuple[dict[str, Path], dict[str, Path]]:
    """Train the members, then the alternatives (with their budgets); (members, alternatives) -> folders."""
    folders = {name: Path(c.train.output_dir) for name, c in cfgs.items()}
    members = {x.name: folders[x.name] for x in recipe.members}
    for i, m in enumerate(recipe.members + recipe.alternatives, 1):
        done = (folders[m.name] / MEMBER_META).exists()
        extra = budget_overrides(m, members) if m.alternative and not done else []
        mcfg = validate(compose_cfg("train", member_overrides(recipe, m, overrides + extra))) if extra else cfgs[m.name]
        own = " ".join(m.train + extra)
        role = "alternative" if m.alternative else "member"
        _stage(f"2/5 {role} {i}/{len(recipe.members) + len(recipe.alternatives)} '{m.name}': {m.data} ({m.objective}"
               f"{', ' + own if own else ''})", folders[m.name] / MEMBER_META, lambda c=mcfg: train_member(c), walls)
    return members, {m.name: folders[m.name] for m in recipe.alternatives}


def pick_overrides(recipe: Recipe, alternatives: dict[str, Path]) -> list[str]:
    """The recipe's alternatives and averages, handed to the pick's test table."""
    alts = ",".join(f"{name}:'{path}'" for name, path in alternatives.items())
    avgs = ",".join(f"{row}:[{','.join(runs)}]" for row, runs in recipe.averages.items())
    return [f"++pick.alternatives={{{alts}}}", f"++pick.averages={{{avgs}}}"]  # ++: new keys in the dicts


def routed_args(recipe: Recipe, overrides: list[str]) -> list[str] | None:
    """merge.py's overrides of the recipe's routed soup (None when it has none): the recipe's merge overrides,
    its `routed:` list, then the command line's merge overrides (later win). The sweeper's own settings
    (`hydra.sweeper.*`) stay with the sweep: a single run has no Optuna sweeper to take them."""
    if recipe.routed is None:
        return None
    return ["search=routed", *[o for o in [*recipe.merge, *recipe.routed, *overrides]
                               if not o.lstrip("+~").startswith("hydra.sweeper.")]]


def _routed_folder(args: list[str] | None) -> Path | None:
    """Where the routed stage writes its soup (composed, not validated: the members do not exist yet; merge.py
    checks its settings when the stage runs, before any merge)."""
    if args is None:
        return None
    rcfg = compose_cfg("merge", args)
    return Path(rcfg.paths.soups) / str(rcfg.routed.name)


def _sweep_and_pick(merge_args: list[str], walls: dict, pick_args: list[str],
                    routed: tuple[list[str], Path] | None = None) -> tuple:
    scfg = validate(compose_cfg("merge", merge_args))  # a bad value stops the job before the sweep
    # always launched: the Optuna study resumes, so a rerun only adds the trials still missing
    sweep_title = "3/5 sweep: Optuna trials (conf/search/optuna.yaml) merged in memory, scored on val"
    trials_before = _ledger_rows(scfg.sweep.dir)
    _stage(sweep_title, None, lambda: _run([sys.executable, "merge.py", "-m", *merge_args]), walls)
    if _ledger_rows(scfg.sweep.dir) == trials_before:  # nothing new: keep the wall of the run that did the trials
        walls.pop(sweep_title)
    if routed:  # before the pick: its test table holds the routed row
        args, folder = routed
        _stage("3b/5 routed soup: the sweep's pick plus each member's difference, weighted per prompt by a router "
               "fitted on val (conf/search/routed.yaml)", folder / ROUTED_MANIFEST,
               lambda: _run([sys.executable, "merge.py", *args]), walls)
    pcfg = validate(compose_cfg("merge", merge_args + ["mode=pick"] + pick_args))
    picked = Path(pcfg.paths.soups) / str(pcfg.pick.name)
    report = Path(pcfg.paths.reports) / "evaluate-test" / "table.md"
    _stage("4/5 pick the best trial, export it with mergekit, test it beside members and baselines",
           picked / PICK_DONE, lambda: pick_best(pcfg), walls)
    return scfg, picked, report


def _print_pick(sweep_dir: Path) -> None:
    """The pick's rule and, when no trial met the floors, the loud line saying so."""
    path = sweep_dir / PICK_FILE
    if not path.exists():
        return
    pick = json.loads(path.read_text())
    floors = ", ".join(f"{d} >= {f:.3f}" for d, f in (pick.get("floors") or {}).items())
    print(f"Picked trial {pick['trial']} by the '{pick['kind']}' rule among {pick['n_trials']} trials"
          + (f" (val floors: {floors})" if floors else "") + ".")
    if pick.get("note"):
        print(f"WARNING: {pick['note']}")


def _picked_folder(merge_args: list[str], pick_args: list[str]) -> Path:
    pcfg = compose_cfg("merge", merge_args + ["mode=pick"] + pick_args)
    return Path(pcfg.paths.soups) / str(pcfg.pick.name)


def _loop_roles(recipe: Recipe, cfgs: dict[str, DictConfig], picked: Path, root: Path) -> tuple[dict, Path]:
    """The loop's pickers and judge as folders, and its prompt sets checked disjoint, before stage 1."""
    named = {SOUP: picked, **{name: Path(c.train.output_dir) for name, c in cfgs.items()}}
    pickers, judge = roles(recipe.loop, named)
    prompt_files(recipe.loop, root / "loop", write=False)
    return pickers, judge


def _loop(recipe: Recipe, roles_: tuple[dict, Path], root: Path, routed: dict[str, list[str]], walls: dict) -> dict:
    """After the pick: the loop's rounds for every picker, then the judge's table (loop/)."""
    pickers, judge = roles_
    folder = root / "loop"
    Loop(recipe.loop, pickers, judge, folder, compose_cfg, lambda t, done, work: _stage(t, done, work, walls),
         routed).run()
    scfg = validate(compose_cfg("sample", list(recipe.loop.sample) + [f"reward_model={judge}"] + routed["sample"]))
    return judge_loop(recipe.loop, pickers, judge, folder, scfg)


def run_recipe(name: str, overrides: list[str]) -> dict:
    """Every stage of recipe `name`; `overrides` (the command line's) go to the roots that have their keys."""
    recipe = load_recipe(name, [o for o in overrides if o.startswith("loop.")])
    overrides = [o for o in overrides if not o.startswith("loop.")]
    start, walls = time.monotonic(), {}
    routed = stage_overrides(recipe, overrides)
    cfg = validate(compose_cfg("train", routed["train"]))  # the schemas' value rules (core/config.py)
    cfgs = _train_cfgs(recipe, routed["train"])
    _check_data(recipe, cfgs)  # every set read and checked before the base is built
    r_args = routed_args(recipe, routed["merge"])
    r_folder = _routed_folder(r_args)
    merge_args, pick_args = ["search=optuna"] + recipe.merge + routed["merge"], pick_overrides(recipe, {
        **{m.name: Path(cfgs[m.name].train.output_dir) for m in recipe.alternatives},
        **({ROUTED_ROW: r_folder} if r_folder else {})})
    if recipe.loop:  # pickers, judge and prompt sets checked before any work
        loop_roles = _loop_roles(recipe, cfgs, _picked_folder(merge_args, pick_args), Path(cfg.paths.root))
    _stage(f"1/5 base: {cfg.model.source} cut to {cfg.model.layers} layers, 1-logit head",
           Path(cfg.model.base_dir) / BASE_META, lambda: build_base(cfg.model), walls)
    members, alternatives = _members(recipe, routed["train"], walls, cfgs)
    scfg, picked, report = _sweep_and_pick(merge_args, walls, pick_args, (r_args, r_folder) if r_folder else None)
    samples = Path(cfg.paths.root) / "samples" / "demo-best-of-4.jsonl"
    if recipe.sample:
        _stage("5/5 best-of-4: SmolLM2 writes four replies per role-play prompt, the soup picks one", samples,
               lambda: _run([sys.executable, "sample.py", f"reward_model={picked}", f"prompts={DEMO_PROMPTS}", "n=4",
                             f"output={samples}", *routed["sample"]]), walls)
    looped = _loop(recipe, loop_roles, Path(cfg.paths.root), routed, walls) if recipe.loop else None
    total = time.monotonic() - start
    walls = _record_walls(Path(cfg.paths.root), walls)
    print(f"\n{name} finished in {total:.0f}s. Results on the test splits (unseen by the sweep):\n")
    print(report.read_text())
    _print_pick(Path(scfg.sweep.dir))
    print(f"Outputs under {cfg.paths.root}:")
    for member, path in members.items():
        print(f"  member {member}: {path}")
    for name, path in alternatives.items():
        print(f"  alternative {name}: {path}")
    print(f"  picked soup: {picked}  (mergekit YAML beside it)")
    if r_folder:
        print(f"  routed soup: {r_folder}  (row '{ROUTED_ROW}'; its shared/ is the static soup it routes from)")
    print(f"  sweep ledger: {Path(scfg.sweep.dir) / 'ledger.jsonl'}  plots: {Path(scfg.sweep.dir) / 'plots'}")
    if recipe.sample:
        print(f"  best-of-4 samples: {samples}")
    if looped:
        print(f"\nThe loop (judge: {looped['judge']}), held-out prompts:\n\n{looped['table']}")
        for warning in looped["warnings"]:
            print(f"WARNING: {warning}")
        print(f"  loop outputs: {Path(cfg.paths.root) / 'loop'}  (table.md, summary.json, loop.png)")
    print(f"  W&B offline runs: {cfg.paths.root}/wandb  (upload: wandb sync {cfg.paths.root}/wandb/offline-run-*)")
    return {"root": str(cfg.paths.root), "report": str(report), "walls": walls, "total_s": round(total, 1),
            "members": {k: str(v) for k, v in members.items()},
            "alternatives": {k: str(v) for k, v in alternatives.items()}, "sweep": str(scfg.sweep.dir)}


def main() -> None:
    parser = argparse.ArgumentParser(description="run a whole recipe (make demo / make report-real)")
    parser.add_argument("--recipe", choices=recipe_names(), default="demo", help="a file in conf/recipe/")
    args, overrides = parser.parse_known_args()
    keep_freed_memory()  # activations reuse freed heap instead of fresh pages (core.allocator)
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
