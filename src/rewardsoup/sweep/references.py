"""Each member on its own, scored on the sweep's val sets: the floors of `sweep.objective.kind=floors` and
the member marks on the sweep's plots.

Scored once per sweep folder, through the same trial path as any soup (a one-member linear merge is the
member itself), and kept in `members.json` beside the ledger; a file lock makes parallel workers score
them once. The file keeps every metric, so a later objective (accuracy or AUC) reads its own number; the
per-text rewards go beside it (`members-val-rewards.npz`), for the routed soup's output-mixing fit.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from filelock import FileLock
from omegaconf import DictConfig

from rewardsoup.core import precision
from rewardsoup.core.atomic import atomic_write_bytes, atomic_write_json
from rewardsoup.core.plain import plain
from rewardsoup.merging.soup import merge_request
from rewardsoup.scoring import config as scoring
from rewardsoup.sweep.ledger import request_key
from rewardsoup.sweep.objective import dataset_score, floors_from_members
from rewardsoup.sweep.trials import score_request

MEMBERS_FILE = "members.json"
REWARDS_FILE = "members-val-rewards.npz"  # each member's per-text val rewards, "member/dataset" -> array
TRIAL_REWARDS = "trial-val-rewards"  # a folder: each complete trial's per-text val rewards, <request hash>.npz
STAMP = "__scoring__"  # the npz entry holding the scoring stamp the rewards were taken with


def ingredients(request: Mapping[str, Any], members: list[str], method: str) -> dict[str, Any]:
    """`request` restricted to `members` with equal weights (the model-soups ingredients; one member: itself),
    with no per-layer weights."""
    r = {k: v for k, v in request.items() if k != "layer_weights"}
    r["members"] = {n: request["members"][n] for n in members}
    r["method"] = method
    r["weights"] = {n: 1.0 for n in members}
    r["density"] = None if method == "linear" else (request.get("density") if request.get("density") else 1.0)
    r["params"] = {"normalize": True} if method == "linear" else dict(request.get("params") or {})
    return r


def _detail(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if k in ("n", "accuracy", "auc")}


def member_details(cfg: DictConfig, sweep_dir: str | Path) -> dict[str, dict[str, dict[str, float]]]:
    """member -> dataset -> {n, accuracy[, auc]} on val, scored once per sweep folder."""
    path = Path(sweep_dir) / MEMBERS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{path}.lock"):
        if path.exists():
            return json.loads(path.read_text())["members"]
        request = merge_request(cfg)
        out, rewards = {}, {}
        for name in sorted(request["members"]):
            result = score_request(cfg, ingredients(request, [name], "linear"))
            out[name] = {ds: _detail(m) for ds, m in result["val_detail"].items()}
            rewards.update({f"{name}/{ds}": r for ds, r in result["rewards"].items()})
            print(f"[rewardsoup] member '{name}' alone on val: "
                  + ", ".join(f"{ds} {m['accuracy']:.3f}" for ds, m in out[name].items()), flush=True)
        atomic_write_bytes(Path(sweep_dir) / REWARDS_FILE, _npz(rewards))
        atomic_write_json(path, {"members": out, "rewards": {"file": REWARDS_FILE, **scoring_stamp(cfg)}})
        return out


def scoring_stamp(cfg: DictConfig) -> dict[str, Any]:
    """What the per-text val rewards depend on beyond the member: a reader with another stamp scores again."""
    return {"max_length": int(cfg.trial.max_length), "dtype": str(precision.resolve(scoring.dtype(cfg))),
            "truncation": str(scoring.truncation(cfg))}


def member_rewards(cfg: DictConfig, sweep_dir: str | Path) -> dict[str, np.ndarray]:
    """"member/dataset" -> each val text's reward as the sweep scored that member alone (the routed soup's
    output-mixing fit reads them instead of scoring the members again); {} when not kept or scored otherwise."""
    path = Path(sweep_dir) / MEMBERS_FILE
    if not path.exists():
        return {}
    kept = json.loads(path.read_text()).get("rewards") or {}
    if {k: v for k, v in kept.items() if k != "file"} != scoring_stamp(cfg) or not (Path(sweep_dir) / REWARDS_FILE).exists():
        return {}
    with np.load(Path(sweep_dir) / REWARDS_FILE) as z:
        return {k: z[k] for k in z.files}


def keep_trial_rewards(cfg: DictConfig, sweep_dir: str | Path, request: Mapping[str, Any],
                       rewards: Mapping[str, np.ndarray]) -> None:
    """A complete trial's per-text val rewards ({dataset: array}) beside the ledger, stamped with the scoring
    settings: the routed stage's output-mixing fit reads its shared model's (the pick's) instead of scoring it."""
    stamp = np.array(json.dumps(scoring_stamp(cfg), sort_keys=True))
    atomic_write_bytes(_trial_path(sweep_dir, request), _npz({**rewards, STAMP: stamp}))


def trial_rewards(cfg: DictConfig, sweep_dir: str | Path, request: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """{dataset: per-text val rewards} of the trial that scored `request`, when kept at these scoring settings;
    {} otherwise."""
    path = _trial_path(sweep_dir, request)
    if not path.exists():
        return {}
    with np.load(path) as z:
        if STAMP not in z.files or str(z[STAMP]) != json.dumps(scoring_stamp(cfg), sort_keys=True):
            return {}
        return {k: z[k] for k in z.files if k != STAMP}


def _trial_path(sweep_dir: str | Path, request: Mapping[str, Any]) -> Path:
    key = hashlib.sha256(request_key(request).encode()).hexdigest()[:24]
    return Path(sweep_dir) / TRIAL_REWARDS / f"{key}.npz"


def _npz(arrays: Mapping[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def member_scores(cfg: DictConfig, sweep_dir: str | Path) -> dict[str, dict[str, float]]:
    """member -> dataset -> the score the sweep objective reads (accuracy, or AUC on binary sets)."""
    objective = plain(cfg.sweep.objective)
    return {m: {ds: dataset_score(d, objective) for ds, d in per.items()}
            for m, per in member_details(cfg, sweep_dir).items()}


def floors(cfg: DictConfig, sweep_dir: str | Path) -> dict[str, float]:
    """Per dataset: the best member's val score minus `sweep.objective.max_loss`."""
    return floors_from_members(member_scores(cfg, sweep_dir), float(cfg.sweep.objective.max_loss))
