"""The sweep objective: one number per trial from its per-dataset val scores.

`dataset_score` turns a dataset's metrics into its score (accuracy, or AUC on binary sets with
`sweep.objective.binary_metric=auc`), `objective_value` combines the datasets (mean, weighted mean or worst;
`floors` is the mean, under one constraint per dataset). `floor_constraints` gives those constraints in
Optuna's convention (<= 0 is feasible): a dataset's score may lose at most `sweep.objective.max_loss`
against the best member's score on that dataset. `non_dominated` finds the Pareto front of per-dataset scores.
"""

from __future__ import annotations

from typing import Any, Mapping

from rewardsoup.core.errors import ConfigError

KINDS = ("mean", "weighted", "worst", "floors")  # how the per-dataset scores combine into a trial's objective
BINARY_METRICS = ("accuracy", "auc")  # a binary set's score: accuracy (logit > 0) or AUC (ranking only)


def objective_value(per_dataset: Mapping[str, float], objective: Mapping[str, Any]) -> float:
    """mean (default), weighted mean (sweep.objective.weights per dataset) or worst of the per-dataset scores
    (`dataset_score`: accuracy, or AUC on binary sets with sweep.objective.binary_metric=auc)."""
    kind = str(objective.get("kind", "mean"))
    _binary_metric(objective)
    vals = {k: v for k, v in per_dataset.items()}
    if kind in ("mean", "floors"):
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


def floors_from_members(member_scores: Mapping[str, Mapping[str, float]], max_loss: float) -> dict[str, float]:
    """Per dataset: the best member's score minus `max_loss` (member name -> dataset -> score)."""
    datasets = sorted({d for scores in member_scores.values() for d in scores})
    return {d: max(scores[d] for scores in member_scores.values() if d in scores) - float(max_loss) for d in datasets}


def floor_constraints(per_dataset: Mapping[str, float], floors: Mapping[str, float]) -> dict[str, float]:
    """floor - score per dataset: <= 0 where the floor holds (Optuna's constraint convention)."""
    return {d: float(floors[d]) - float(per_dataset[d]) for d in sorted(floors)}


def violation(constraints: Mapping[str, float]) -> float:
    """How far a trial is from meeting every floor: the sum of the positive constraint values."""
    return float(sum(max(0.0, c) for c in constraints.values()))


def worst_shortfall(constraints: Mapping[str, float]) -> float:
    """The largest amount by which one dataset misses its floor (0 when every floor holds): the infeasible
    fallback's rule, so a trial 1 point short on each of two sets beats one 0.5 short on one and 3 on the other."""
    return float(max([0.0, *constraints.values()]))


def non_dominated(points: list[list[float]]) -> list[bool]:
    """True for each point no other point dominates (>= everywhere, > somewhere), maximising every coordinate."""
    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))

    return [not any(dominates(q, p) for j, q in enumerate(points) if j != i) for i, p in enumerate(points)]
