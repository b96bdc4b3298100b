"""Sweep trials: merge in memory into a resident model, score the VAL splits, return the objective.

Hydra's basic launcher (and our Optuna sweeper) runs multirun jobs one after another in one process, so
everything a trial needs is loaded once per process and kept in `_CACHE`, keyed by path, modification
time and config: the base and members' state dicts, one resident model, the tokenized val sets. Every
trial after the first costs a merge (fast TIES/DARE trimming) and forward passes. No model is written to
disk. Under launchers that start fresh processes (joblib, submitit) each process builds its own cache and
the tokenized val sets come from the on-disk evalset cache.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Mapping

from omegaconf import DictConfig, OmegaConf

from rewardsoup.errors import ConfigError
from rewardsoup.evalsets import load_evalset
from rewardsoup.evaluation import metrics, score_evalset

_CACHE: dict[tuple, Any] = {}


def _stamp(path: str | Path) -> tuple[str, float]:
    p = Path(path).resolve()
    files = list(p.glob("*.safetensors")) or [p / "config.json"]
    return str(p), max(f.stat().st_mtime for f in files if f.exists()) if any(f.exists() for f in files) else 0.0


def resident(base_dir: str, members: Mapping[str, str]):
    """(base state dict, member state dicts, resident model) for these folders, loaded once per process."""
    from rewardsoup.evaluate_job import load_reward_model
    from rewardsoup.merging import load_state_dict

    key = ("models", _stamp(base_dir), tuple(sorted((n, _stamp(p)) for n, p in members.items())))
    if key not in _CACHE:
        _CACHE.clear()  # a different member set: free the old tensors first
        base_sd = load_state_dict(base_dir)
        member_sds = {n: load_state_dict(p) for n, p in members.items()}
        _CACHE[key] = (base_sd, member_sds, load_reward_model(Path(base_dir)))
    return _CACHE[key]


def objective_value(per_dataset: Mapping[str, float], objective: Mapping[str, Any]) -> float:
    """mean (default), weighted mean (objective.weights per dataset) or worst dataset accuracy."""
    kind = str(objective.get("kind", "mean"))
    vals = {k: v for k, v in per_dataset.items()}
    if kind == "mean":
        return sum(vals.values()) / len(vals)
    if kind == "worst":
        return min(vals.values())
    if kind == "weighted":
        w = dict(objective.get("weights") or {})
        unknown = [k for k in w if k not in vals]
        if unknown or not w:
            raise ConfigError(f"objective.weights must name datasets among {sorted(vals)}; got {sorted(w)}")
        total = sum(float(x) for x in w.values())
        if total <= 0:
            raise ConfigError(f"objective.weights sum to {total}; expected a positive sum")
        return sum(float(w.get(k, 0.0)) * v for k, v in vals.items()) / total
    raise ConfigError(f"objective.kind='{kind}' is not one of mean, weighted, worst")


def score_request(cfg: DictConfig, request: Mapping[str, Any]) -> dict[str, Any]:
    """Merge `request` (from `rewardsoup.soup.merge_request`) in memory and score every val set."""
    from rewardsoup.merging import apply_state_dict, merge_in_memory

    start = time.perf_counter()
    base_sd, member_sds, model = resident(request["base"], request["members"])
    sds = {n: member_sds[n] for n in request["members"]}
    merged = merge_in_memory(request["method"], base_sd, sds, request["weights"], request["density"],
                             request["params"], seed=request["seed"], fast_trim=True)
    apply_state_dict(model, merged)
    merge_s = time.perf_counter() - start
    per_dataset, detail = {}, {}
    t = cfg.trial
    for name, data_cfg in cfg.datasets.items():
        es = load_evalset(name, data_cfg, "val", request["base"], int(t.max_length), cfg.paths.cache)
        m = metrics(score_evalset(model, es, model.config.pad_token_id, int(t.batch_size)), bootstrap=0)
        per_dataset[name], detail[name] = m["accuracy"], m
    value = objective_value(per_dataset, OmegaConf.to_container(cfg.objective, resolve=True))
    if not math.isfinite(value):
        raise ConfigError(f"objective is {value} (per dataset {per_dataset}); are the val splits empty?")
    return {"objective": value, "val": per_dataset, "val_detail": detail,
            "merge_s": round(merge_s, 3), "trial_s": round(time.perf_counter() - start, 3)}
