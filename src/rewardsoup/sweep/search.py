"""merge.py's work: a soup on disk, one sweep trial, a soup-baseline search, or the pick of a sweep.

`merge.mode`:
- `soup` (single run default): mergekit writes the soup (`rewardsoup.merging.soup.merge_soup`);
- `trial` (multirun default): in-memory merge, val objective, one ledger row, one W&B run
  (`job_type=trial`, group = the sweep, flat `weight_<member>`/`density` config keys); returns the
  objective so the Optuna sweeper can tell it. A request already in the ledger is not recomputed;
- `greedy` / `uniform`: the model-soups baselines as searches, recorded in the same ledger;
- `pick`: best trial by val objective -> mergekit soup + test evaluation + plots (`rewardsoup.sweep.pick`).
"""

from __future__ import annotations

import os
import time
from typing import Any, Mapping

from omegaconf import DictConfig

from rewardsoup.sweep import ledger
from rewardsoup.core.plain import plain
from rewardsoup.core.trial import TRIAL_ENV_VAR
from rewardsoup.merging.soup import merge_request, merge_soup
from rewardsoup.core.tracking import start_run
from rewardsoup.sweep.objective import objective_value
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
    return out


def _header(cfg: DictConfig, request: Mapping[str, Any]) -> dict:
    return ledger.header_for(request, list(cfg.datasets.keys()), plain(cfg.sweep.objective))


def record(cfg: DictConfig, request: Mapping[str, Any], source: str, trial: Any) -> dict[str, Any]:
    """Score one request (or reuse its ledger row), log one W&B run, append one ledger row."""
    objective_value({ds: 0.5 for ds in cfg.datasets}, plain(cfg.sweep.objective))  # checked before anything is written
    sweep_dir = ledger.open_sweep(cfg.sweep.dir, _header(cfg, merge_request(cfg)))  # the sweep's full member set
    _, rows = ledger.read(sweep_dir)
    done = ledger.find(rows, request)
    if done is not None:
        print(f"[rewardsoup] trial {trial}: already in the ledger (objective {done['objective']:.4f})", flush=True)
        return done
    result = score_request(cfg, request)
    params = flat_params(request)
    row = {"trial": trial, "source": source, "key": ledger.request_key(request), "request": dict(request),
           "params": params, "objective": result["objective"], "val": result["val"],
           "merge_s": result["merge_s"], "trial_s": result["trial_s"], "time": time.time()}
    with start_run(cfg, job_type="trial", name=f"{cfg.sweep.name}-{source}-{trial}", group=str(cfg.sweep.name),
                   config={**params, "sweep": str(cfg.sweep.name), "source": source, "trial": trial}) as tracker:
        tracker.log({"objective": result["objective"], **{f"val/{k}": v for k, v in result["val"].items()},
                     "trial_s": result["trial_s"]})
        tracker.summary({"objective": result["objective"]})
    ledger.append(sweep_dir, row)
    vals = ", ".join(f"{k} {v:.3f}" for k, v in result["val"].items())
    print(f"[rewardsoup] trial {trial} ({source}): objective {result['objective']:.4f} [{vals}] "
          f"{params} in {result['trial_s']:.1f}s", flush=True)
    return row


def run_trial(cfg: DictConfig) -> float:
    from hydra.core.hydra_config import HydraConfig

    trial = os.environ.get(TRIAL_ENV_VAR)
    if trial is None:  # a Hydra multirun job number, or (wandb agent, single runs) a unique run id
        trial = HydraConfig.get().job.num if _multirun() else os.environ.get("WANDB_RUN_ID", f"run-{time.time_ns()}")
    source = "optuna" if TRIAL_ENV_VAR in os.environ else "grid"
    return float(record(cfg, merge_request(cfg), source, trial)["objective"])


def _with(request: Mapping[str, Any], members: list[str], method: str) -> dict[str, Any]:
    """`request` restricted to `members` with equal weights (the model-soups ingredients)."""
    r = dict(request)
    r["members"] = {n: request["members"][n] for n in members}
    r["method"] = method
    r["weights"] = {n: 1.0 for n in members}
    r["density"] = None if method == "linear" else (request.get("density") if request.get("density") else 1.0)
    r["params"] = {"normalize": True} if method == "linear" else dict(request.get("params") or {})
    return r


def run_uniform(cfg: DictConfig) -> float:
    """The uniform soup: an equal-weight linear merge of every member."""
    request = merge_request(cfg)
    return float(record(cfg, _with(request, sorted(request["members"]), "linear"), "uniform", "uniform")["objective"])


def run_greedy(cfg: DictConfig) -> float:
    """Greedy soup (Wortsman et al. 2022): rank members by their own val objective, then add each in turn
    to an equal-weight soup (method `greedy.method`, linear by default) if the objective improves."""
    request = merge_request(cfg)
    method = str(cfg.greedy.method)
    solo = {n: record(cfg, _with(request, [n], "linear"), "greedy", f"solo-{n}")["objective"]
            for n in sorted(request["members"])}
    order = sorted(solo, key=lambda n: -solo[n])
    soup, best = [order[0]], solo[order[0]]
    for n in order[1:]:
        value = record(cfg, _with(request, soup + [n], method), "greedy", f"add-{'+'.join(soup + [n])}")["objective"]
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
    return {"soup": merge_soup, "trial": run_trial, "greedy": run_greedy, "uniform": run_uniform}[mode](cfg)
