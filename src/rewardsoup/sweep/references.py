"""Each member on its own, scored on the sweep's val sets: the floors of `sweep.objective.kind=floors` and
the member marks on the sweep's plots.

Scored once per sweep folder, through the same trial path as any soup (a one-member linear merge is the
member itself), and kept in `members.json` beside the ledger; a file lock makes parallel workers score
them once. The file keeps every metric, so a later objective (accuracy or AUC) reads its own number.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from filelock import FileLock
from omegaconf import DictConfig

from rewardsoup.core.atomic import atomic_write_json
from rewardsoup.core.plain import plain
from rewardsoup.merging.soup import merge_request
from rewardsoup.sweep.objective import dataset_score, floors_from_members
from rewardsoup.sweep.trials import score_request

MEMBERS_FILE = "members.json"


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
        out = {}
        for name in sorted(request["members"]):
            result = score_request(cfg, ingredients(request, [name], "linear"))
            out[name] = {ds: _detail(m) for ds, m in result["val_detail"].items()}
            print(f"[rewardsoup] member '{name}' alone on val: "
                  + ", ".join(f"{ds} {m['accuracy']:.3f}" for ds, m in out[name].items()), flush=True)
        atomic_write_json(path, {"members": out})
        return out


def member_scores(cfg: DictConfig, sweep_dir: str | Path) -> dict[str, dict[str, float]]:
    """member -> dataset -> the score the sweep objective reads (accuracy, or AUC on binary sets)."""
    objective = plain(cfg.sweep.objective)
    return {m: {ds: dataset_score(d, objective) for ds, d in per.items()}
            for m, per in member_details(cfg, sweep_dir).items()}


def floors(cfg: DictConfig, sweep_dir: str | Path) -> dict[str, float]:
    """Per dataset: the best member's val score minus `sweep.objective.max_loss`."""
    return floors_from_members(member_scores(cfg, sweep_dir), float(cfg.sweep.objective.max_loss))
