"""merge.py's work: a soup on disk, one sweep trial, a soup-baseline search, or the pick of a sweep.

`merge.mode`:
- `soup` (single run default): mergekit writes the soup (`rewardsoup.merging.soup.merge_soup`);
- `trial` (multirun default): in-memory merge, val objective, one ledger row, one W&B run
  (`job_type=trial`, group = the sweep, flat `weight_<member>`/`density` config keys); returns the
  objective so the Optuna sweeper can tell it. A request already in the ledger is not recomputed;
- `greedy` / `uniform`: the model-soups baselines as searches, recorded in the same ledger;
- `pick`: best trial by val objective -> mergekit soup + test evaluation + plots (`rewardsoup.sweep.pick`);
- `proxy` / `layerwise`: searches of their own (`sweep.proxy`, `sweep.layerwise`), recording through `record`.
"""

from __future__ import annotations

import os
import time
from typing import Any, Mapping

from omegaconf import DictConfig

from rewardsoup.sweep import ledger
from rewardsoup.core.plain import plain
from rewardsoup.core.trial import TRIAL_ENV_VAR
from rewardsoup.merging.layers import layer_groups
from rewardsoup.merging.soup import merge_request, merge_soup
from rewardsoup.core.tracking import start_run
from rewardsoup.sweep import references
from rewardsoup.sweep.objective import floor_constraints, objective_value, violation
from rewardsoup.sweep.layerwise import run_layerwise
from rewardsoup.sweep.proxy import run_proxy
from rewardsoup.sweep.pruning import Reporter, reporter
from rewardsoup.sweep.references import ingredients
from rewardsoup.sweep.trials import score_request
from rewardsoup.sweep.pick import pick_best


def _multirun() -> bool:
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:  # not under @hydra.main (compose API)
        return False


def flat_params(request: Mapping[str, Any]) -> dict[str, Any]:
    """Flat keys for W&B parallel coordinates: method, weight_<member>, density[_<member>], params."""
    out: dict[str, Any] = {"method": request["method"]}
    for name, w in (request.get("weights") or {}).items():
        out[f"weight_{name}"] = w
    density = request.get("density")
    if isinstance(density, Mapping):
        out.update({f"density_{n}": d for n, d in density.items()})
    elif density is not None:
        out["density"] = density
    out.update({k: v for k, v in (request.get("params") or {}).items() if isinstance(v, (int, float, bool, str))})
    for name, per_tensor in (request.get("layer_weights") or {}).items():  # one key per (member, layer group)
        groups = layer_groups(sorted(per_tensor))
        out.update({f"layer_{name}_{groups[k]}": w for k, w in sorted(per_tensor.items())})
    return out


def _header(cfg: DictConfig, request: Mapping[str, Any]) -> dict:
    return ledger.header_for(request, list(cfg.datasets.keys()), plain(cfg.sweep.objective))


def _feasibility(cfg: DictConfig, sweep_dir, result: Mapping[str, Any]) -> dict[str, Any]:
    """kind=floors: each dataset's constraint (floor - score, <= 0 holds) and whether all hold."""
    if str(cfg.sweep.objective.kind) != "floors" or result["state"] != "complete":
        return {"constraints": None, "feasible": None}
    cons = floor_constraints(result["val"], references.floors(cfg, sweep_dir))
    return {"constraints": cons, "feasible": violation(cons) == 0.0}


def wandb_metrics(row: Mapping[str, Any]) -> dict[str, Any]:
    """A trial's W&B summary: objective, val/<dataset>/<metric>, state, pruned, feasibility, cost."""
    out: dict[str, Any] = {"objective": row["objective"], "state": row["state"], "pruned": row["state"] == "pruned",
                           "texts_scored": row["texts"], "trial_s": row["trial_s"]}
    for ds, m in row["val_detail"].items():
        out.update({f"val/{ds}/{k}": v for k, v in m.items() if k in ("accuracy", "auc", "n")})
    if row.get("feasible") is not None:
        out.update({"feasible": row["feasible"], "violation": violation(row["constraints"]),
                    **{f"constraint/{ds}": c for ds, c in row["constraints"].items()}})
    return out


def record(cfg: DictConfig, request: Mapping[str, Any], source: str, trial: Any,
           report: Reporter | None = None, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Score one request (or reuse its ledger row), log one W&B run, append one ledger row (plus `extra`:
    what a search wants kept beside the scores, e.g. the layer-wise coefficients)."""
    objective_value({ds: 0.5 for ds in cfg.datasets}, plain(cfg.sweep.objective))  # checked before anything is written
    sweep_dir = ledger.open_sweep(cfg.sweep.dir, _header(cfg, merge_request(cfg)))  # the sweep's full member set
    _, rows = ledger.read(sweep_dir)
    done = ledger.find(rows, request)
    if done is not None:
        print(f"[rewardsoup] trial {trial}: already in the ledger (objective {done['objective']:.4f}, "
              f"{done.get('state', 'complete')})", flush=True)
        return done
    result = score_request(cfg, request, report)
    params = flat_params(request)
    row = {"trial": trial, "source": source, "key": ledger.request_key(request), "request": dict(request),
           "params": params, "objective": result["objective"], "val": result["val"],
           "val_detail": {ds: {k: v for k, v in m.items() if k in ("n", "accuracy", "auc")}
                          for ds, m in result["val_detail"].items()},
           "state": result["state"], "texts": result["texts"], "steps": result["steps"],
           **_feasibility(cfg, sweep_dir, result),
           "merge_s": result["merge_s"], "trial_s": result["trial_s"], "time": time.time(), **(extra or {})}
    with start_run(cfg, job_type="trial", name=f"{cfg.sweep.name}-{source}-{trial}", group=str(cfg.sweep.name),
                   config={**params, "sweep": str(cfg.sweep.name), "source": source, "trial": trial}) as tracker:
        summary = wandb_metrics(row)
        tracker.log(summary)
        tracker.summary(summary)
    ledger.append(sweep_dir, row)
    vals = ", ".join(f"{k} {v:.3f}" for k, v in result["val"].items())
    extra = "" if row["feasible"] is None else (" feasible" if row["feasible"] else " below a floor")
    print(f"[rewardsoup] trial {trial} ({source}, {row['state']}{extra}): objective {result['objective']:.4f} "
          f"[{vals}] {params} in {result['trial_s']:.1f}s, {row['texts']} texts", flush=True)
    return row


def sweeper_result(row: Mapping[str, Any]) -> dict[str, Any]:
    """What a trial job hands the rewardsoup_optuna sweeper: the objective, each dataset's score (for
    multi-objective studies), the floor constraints and the state (complete or pruned)."""
    cons = row.get("constraints")
    return {"objective": float(row["objective"]), "values": dict(row["val"]), "state": row.get("state", "complete"),
            "constraints": None if cons is None else {d: cons[d] for d in sorted(cons)}}


def run_trial(cfg: DictConfig) -> dict[str, Any]:
    from hydra.core.hydra_config import HydraConfig

    trial: Any = os.environ.get(TRIAL_ENV_VAR)
    if trial is not None:  # the Optuna trial number, as Optuna counts it
        trial = int(trial)
    else:  # a Hydra multirun job number, or (wandb agent, single runs) a unique run id
        trial = HydraConfig.get().job.num if _multirun() else os.environ.get("WANDB_RUN_ID", f"run-{time.time_ns()}")
    source = "optuna" if TRIAL_ENV_VAR in os.environ else "grid"
    return sweeper_result(record(cfg, merge_request(cfg), source, trial, reporter(cfg.sweep.dir)))


def run_uniform(cfg: DictConfig) -> float:
    """The uniform soup: an equal-weight linear merge of every member."""
    request = merge_request(cfg)
    return float(record(cfg, ingredients(request, sorted(request["members"]), "linear"), "uniform", "uniform")["objective"])


def run_greedy(cfg: DictConfig) -> float:
    """Greedy soup (Wortsman et al. 2022): rank members by their own val objective, then add each in turn
    to an equal-weight soup (method `greedy.method`, linear by default) if the objective improves."""
    request = merge_request(cfg)
    method = str(cfg.greedy.method)
    solo = {n: record(cfg, ingredients(request, [n], "linear"), "greedy", f"solo-{n}")["objective"]
            for n in sorted(request["members"])}
    order = sorted(solo, key=lambda n: -solo[n])
    soup, best = [order[0]], solo[order[0]]
    for n in order[1:]:
        value = record(cfg, ingredients(request, soup + [n], method), "greedy", f"add-{'+'.join(soup + [n])}")["objective"]
        if value > best:
            soup, best = soup + [n], value
    print(f"[rewardsoup] greedy soup: {soup} (val objective {best:.4f}; solo {solo})", flush=True)
    return float(best)


def merge_job(cfg: DictConfig) -> Any:
    mode = str(cfg.get("mode", "auto"))  # one of sweep/config.py's MODES (run_job checked it)
    if mode == "auto":
        mode = "trial" if _multirun() else "soup"
    if mode == "pick":

        return pick_best(cfg)
    if mode == "proxy":
        return run_proxy(cfg, record)
    if mode == "layerwise":
        return run_layerwise(cfg, record)
    return {"soup": merge_soup, "trial": run_trial, "greedy": run_greedy, "uniform": run_uniform}[mode](cfg)
