"""Pick the best trial of a finished sweep, export it with mergekit, test it, and plot the sweep.

1. the ledger's row picked by `sweep.summary.choose` (the objective's rule: floors, mean, worst, weighted);
2. that request merged to disk by mergekit (atomic, mergekit YAML beside) under paths.soups/<pick.name>;
3. the seed's `seed_ties` soup written too when missing (its weights from conf/merge/seed_ties.yaml);
4. evaluate.py's table on the TEST splits, which no trial saw: members, the picked soup, seed_ties, the
   uniform soup, the logit ensemble, the alternatives a user weighs (`pick.alternatives`: a multi-task
   model, seed runs; `pick.averages`: runs averaged linearly) and the reference rows (untrained base, length
   heuristic), a routed soup among the alternatives (its card rewritten with the test rows and the router's
   split of each test set), with bootstrap intervals, paired differences against the specialists, the recipe's 2-point
   bar and every comparison's verdict;
5. plots and the W&B summary run (`sweep.summary`): objective against each weight and density; the
   per-dataset trade-off with the Pareto front, the members, the pick and the floors;
6. `PICK_DONE` in the soup's folder, last: what the pipeline checks to skip the pick (a pick killed after the
   export, or after the test table but before the card, is done again).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf, open_dict

from rewardsoup.core.atomic import atomic_write_json
from rewardsoup.core.config import ROUTED_MANIFEST
from rewardsoup.sweep import ledger
from rewardsoup.core.errors import ConfigError
from rewardsoup.core.plain import plain
from rewardsoup.merging.on_disk import SOUP_CONFIG
from rewardsoup.merging.soup import export
from rewardsoup.evaluation.job import evaluate_models, model_kind
from rewardsoup.models.cards import check_upload, push_folder, write_soup_card
from rewardsoup.routing.card import write_routed_card
from rewardsoup.sweep.plots import COEFFICIENTS_PNG, plot_coefficients
from rewardsoup.sweep.summary import choose, summarize

PICK_DONE = "rewardsoup_pick.json"  # written last in the picked soup's folder: the pick (test table, card) is done


def best_row(rows: list[dict], objective: Mapping[str, Any] | None = None,
             floors: Mapping[str, float] | None = None) -> dict:
    """The row the pick takes (`summary.choose`)."""
    return choose(rows, objective, floors)[0]


def _seed_ties_request(cfg: DictConfig, members: dict) -> dict:
    """The seed's soup (conf/merge/seed_ties.yaml, composed at pick.seed_ties) over this sweep's members;
    empty when its weights do not name exactly these members."""
    seed = cfg.pick.seed_ties
    weights = {n: float(seed.weights[n]) for n in members if n in seed.weights}
    if set(weights) != set(members):
        return {}
    return {"method": "ties", "base": cfg.model.base_dir, "members": members, "weights": weights,
            "density": float(seed.density), "params": {"normalize": bool(seed.normalize)},
            "dtype": str(seed.dtype), "seed": None}


def test_config(cfg: DictConfig, models: Mapping[str, str], alternatives: Mapping[str, str]) -> DictConfig:
    """evaluate.py's config of the pick's test table: `models` (members, the soup, seed_ties, `alternatives`)
    on the test splits at the trials' length and batch, in `pick.dtype`, with baselines and reference rows."""
    eval_cfg = OmegaConf.create(plain(cfg))
    with open_dict(eval_cfg):
        eval_cfg.models, eval_cfg.split = dict(models), "test"
        eval_cfg.runs = [n for n, p in alternatives.items() if model_kind(Path(p)) == "member"]
        eval_cfg.averages = plain(cfg.pick.get("averages") or {})
        eval_cfg.max_length, eval_cfg.batch_size = cfg.trial.max_length, cfg.trial.batch_size
        eval_cfg.bootstrap = cfg.pick.bootstrap
        eval_cfg.scoring.dtype = cfg.pick.dtype  # the trials' scoring.dtype may differ: the test table has its own
        eval_cfg.baselines = {"uniform_soup": True, "ensemble": True}
        eval_cfg.references = {"base": True, "length": True, "arrow": bool(cfg.pick.arrow)}
    return eval_cfg


def pick_best(cfg: DictConfig) -> dict[str, Any]:
    sweep_dir = Path(cfg.sweep.dir)
    header, _ = ledger.read(sweep_dir)
    repo = cfg.pick.get("push_to_hub")
    if repo:
        check_upload(str(repo))  # the hub is unreachable: say so before minutes of export and testing
    outcome = summarize(cfg)  # front marked, rule applied, plots, pick.json, the W&B summary run
    best, rows = outcome["best"], outcome["rows"]
    request = best["request"]
    print(f"[rewardsoup] {len(rows)} trials in {sweep_dir}; picked: trial {best['trial']} ({best['source']}) "
          f"val objective {best['objective']:.4f} {best['params']}", flush=True)
    soups = Path(cfg.paths.soups)
    picked = export(request, soups / str(cfg.pick.name))
    models = {n: p for n, p in header["members"].items()}
    models[str(cfg.pick.name)] = str(picked)
    seed_req = _seed_ties_request(cfg, header["members"])
    if seed_req:
        seed_dir = soups / f"seed_ties-{cfg.sweep.name}"
        if not (seed_dir / SOUP_CONFIG).exists():
            export(seed_req, seed_dir)
        models["seed_ties"] = str(seed_dir)
    alternatives = {str(n): str(p) for n, p in (cfg.pick.get("alternatives") or {}).items()}
    clash = sorted(set(alternatives) & set(models))
    if clash:
        raise ConfigError(f"pick.alternatives: {clash} already name a member or soup of this sweep")
    models.update(alternatives)
    result = evaluate_models(test_config(cfg, models, alternatives))
    layerwise = None
    if best.get("coefficients"):  # a layer-wise soup: its coefficients as a heat map and a table in the card
        layerwise = {"members": sorted(request["members"]), "groups": best["groups"],
                     "coefficients": best["coefficients"], "kept_step": best.get("kept_step")}
        plot_coefficients(picked / COEFFICIENTS_PNG, layerwise["members"], best["groups"], best["coefficients"])
    write_soup_card(picked, request, name=str(cfg.pick.name), evaluation=result, load_from=str(repo) if repo else None,
                    sweep={"name": str(cfg.sweep.name), "dir": str(sweep_dir), "objective": header["objective"],
                           "rule": str(cfg.sweep.objective.kind), "trial": best["trial"], "source": best["source"],
                           "params": best["params"], "objective_value": best["objective"], "val": best["val"],
                           "n_trials": len(rows), "note": outcome["note"],
                           **({"layerwise": layerwise} if layerwise else {})})
    for name, by_set in (result.get("routed_shares") or {}).items():  # a routed alternative's card: its test rows
        folder = Path(alternatives[name])
        write_routed_card(folder, json.loads((folder / ROUTED_MANIFEST).read_text()), by_set, "test", result, name)
    if repo:
        print(f"[rewardsoup] pushed {picked} -> {push_folder(picked, str(repo))}", flush=True)
    atomic_write_json(picked / PICK_DONE, {"sweep": str(sweep_dir), "trial": best["trial"], "source": best["source"],
                                           "objective": best["objective"], "report": result["report"],
                                           "pushed_to": str(repo) if repo else None})
    if outcome["note"]:
        print(f"[rewardsoup] WARNING: {outcome['note']}", flush=True)
    plots = outcome["plots"]
    print(f"[rewardsoup] picked soup: {picked}\n[rewardsoup] plots: {', '.join(str(p) for p in plots)}", flush=True)
    return {"best": best, "soup": str(picked), "plots": [str(p) for p in plots], "note": outcome["note"], **result}
