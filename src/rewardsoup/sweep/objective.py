"""The sweep objective: one number per trial from its per-dataset val scores.

`dataset_score` turns a dataset's metrics into its score (accuracy, or AUC on binary sets with
`sweep.objective.binary_metric=auc`), `objective_value` combines the datasets (mean, weighted mean or worst).
"""

from __future__ import annotations

from typing import Any, Mapping

from rewardsoup.core.errors import ConfigError

KINDS = ("mean", "weighted", "worst")  # how the per-dataset scores combine into a trial's objective
BINARY_METRICS = ("accuracy", "auc")  # a binary set's score: accuracy (logit > 0) or AUC (ranking only)


def objective_value(per_dataset: Mapping[str, float], objective: Mapping[str, Any]) -> float:
    """mean (default), weighted mean (sweep.objective.weights per dataset) or worst of the per-dataset scores
    (`dataset_score`: accuracy, or AUC on binary sets with sweep.objective.binary_metric=auc)."""
    kind = str(objective.get("kind", "mean"))
    _binary_metric(objective)
    vals = {k: v for k, v in per_dataset.items()}
    if kind == "mean":
        return sum(vals.values()) / len(vals)
    if kind == "worst":
        return min(vals.values())
    if kind == "weighted":
        w = dict(objective.get("weights") or {})
        unknown = [k for k in w if k not in vals]
        if unknown or not w:
            raise ConfigError(f"sweep.objective.weights must name datasets among {sorted(vals)}; got {sorted(w)}")
        total = sum(float(x) for x in w.values())
        if total <= 0:
            raise ConfigError(f"sweep.objective.weights sum to {total}; expected a positive sum")
        return sum(float(w.get(k, 0.0)) * v for k, v in vals.items()) / total
    raise ConfigError(f"sweep.objective.kind='{kind}' is not one of {', '.join(KINDS)}")


def dataset_score(detail: Mapping[str, Any], objective: Mapping[str, Any]) -> float:
    """The number a dataset feeds the objective: accuracy, or AUC on binary sets when
    `sweep.objective.binary_metric=auc` (a Bradley-Terry reward has no calibrated zero for `logit > 0`)."""
    metric = _binary_metric(objective)
    return float(detail["auc"]) if metric == "auc" and "auc" in detail else float(detail["accuracy"])


def _binary_metric(objective: Mapping[str, Any]) -> str:
    metric = str(objective.get("binary_metric", "accuracy"))
    if metric not in BINARY_METRICS:
        raise ConfigError(f"sweep.objective.binary_metric='{metric}' is not one of {', '.join(BINARY_METRICS)}")
    return metric
