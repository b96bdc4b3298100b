"""One ledger row per scored merge: every search strategy (`rewardsoup.search`) records its trials here.

`record` scores a merge request in memory (`sweep.trials`), or finds it already in the ledger, logs one W&B run
(`job_type=trial`, group = the sweep, flat `weight_<member>` / `density` / `layer_<member>_<group>` config keys)
and appends one ledger row; `sweeper_result` is what a trial job hands the rewardsoup_optuna sweeper.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

from omegaconf import DictConfig

from rewardsoup.core.plain import plain
from rewardsoup.core.tracking import start_run
from rewardsoup.merging.layers import layer_groups
from rewardsoup.merging.soup import merge_request
from rewardsoup.sweep import ledger, references
from rewardsoup.sweep.objective import floor_constraints, objective_value, violation
from rewardsoup.sweep.pruning import Reporter
from rewardsoup.sweep.trials import score_request


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
    if result["state"] == "complete":  # a pruned trial's rewards have holes
        references.keep_trial_rewards(cfg, sweep_dir, request, result["rewards"])
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
