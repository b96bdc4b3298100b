"""Paired comparisons on the same held-out rows: soups against the specialists, members against the
reference rows, and the recipe's 2-point bar.

For each dataset:
- a soup or baseline is compared with the BEST member on that dataset (the specialist): the difference of
  accuracies with a paired bootstrap 95% interval (`stats.paired`: the same resampled rows for both), and
  the recipe's bar (lose at most 2 points) read from that interval: holds / fails / cannot tell at n=…;
- a member is compared with the reference rows, `base` (the untrained merge-ready base) and `length`
  (the length heuristic): it has learnt something only where both paired intervals lie above 0.
`verdicts` lists every comparison a user weighs, one row each with its verdict from the paired interval:
members and the multi-task model against the references, each soup against the multi-task model and the
logit ensemble, each routed soup against every static soup, the multi-task model, the logit ensemble and its own
output-mixing and Arrow rows, each average of runs (WARM) against every run and their ensemble. A comparison over two or
more sets adds a `mean` row: the difference of the test means, each set's rows paired and resampled on their
own (`stats.paired_mean`), since a user choosing one model for every set weighs the sets equally.
"""

from __future__ import annotations

from typing import Any, Mapping

from rewardsoup.scoring import stats
from rewardsoup.scoring.metrics import Scored, row_credit

REFERENCES = ("base", "length")  # reference rows every table shows (kind "reference")
MEAN = "mean"  # the `dataset` of a verdict on the mean over sets


def _diff(a: Scored, b: Scored, bootstrap: int, seed: int) -> dict[str, float]:
    return stats.paired(row_credit(a.evalset, a.rewards), row_credit(b.evalset, b.rewards), bootstrap, seed)


def verdict(d: Mapping[str, float]) -> str:
    """'better' / 'worse' when the paired interval excludes 0, else 'cannot tell at n=…'."""
    if stats.excludes_zero(d["lo"], d["hi"]):
        return "better" if d["lo"] > 0 else "worse"
    return f"cannot tell at n={d['n']}"


def _questions(kinds: Mapping[str, str], averages: Mapping[str, list], own: Mapping[str, list],
               datasets: list[str]) -> list[tuple[str, str, list[str]]]:
    """(model, against, datasets) for every comparison a user weighs (see the module docstring)."""
    refs = [r for r in REFERENCES if kinds.get(r) == "reference"]
    out = []
    for m in sorted(m for m, k in kinds.items() if k in ("member", "multitask")):
        out += [(m, ref, own.get(m) or datasets) for ref in refs]
    alternatives = sorted(m for m, k in kinds.items() if k == "multitask") + (
        ["logit_ensemble"] if "logit_ensemble" in kinds else [])
    soups = sorted(m for m, k in kinds.items() if k == "soup")
    for soup in soups:
        out += [(soup, alt, datasets) for alt in alternatives]
    for routed in sorted(m for m, k in kinds.items() if k == "routed"):  # against what a user would pick instead
        outputs = [f"{routed}{ref}" for ref in ("_outputs", "_arrow") if f"{routed}{ref}" in kinds]
        out += [(routed, other, datasets) for other in [*soups, *alternatives, *outputs]]
    for row, runs in averages.items():
        out += [(row, other, datasets) for other in [*runs, f"{row}_ensemble"] if other in kinds]
    return out


def verdicts(scored: Mapping[str, Mapping[str, Scored]], kinds: Mapping[str, str], averages: Mapping[str, list],
             own: Mapping[str, list], bootstrap: int = 1000, seed: int = 0) -> list[dict[str, Any]]:
    """One row per (model, against, dataset): the paired difference in points' units, its interval, n, verdict."""
    datasets = list(next(iter(scored.values())).keys()) if scored else []
    rows = []
    for model, other, dss in _questions(kinds, averages, own, datasets):
        for ds in dss:
            d = _diff(scored[model][ds], scored[other][ds], bootstrap, seed)
            rows.append({"model": model, "against": other, "dataset": ds, "n": d["n"], "diff": d["diff"],
                         "lo": d["lo"], "hi": d["hi"], "verdict": verdict(d)})
        if len(dss) > 1:
            credit = {who: {ds: row_credit(scored[who][ds].evalset, scored[who][ds].rewards) for ds in dss}
                      for who in (model, other)}
            d = stats.paired_mean(credit[model], credit[other], bootstrap, seed)
            rows.append({"model": model, "against": other, "dataset": MEAN, "n": d["n"], "diff": d["diff"],
                         "lo": d["lo"], "hi": d["hi"], "verdict": verdict(d)})
    return rows


def best_member(results: Mapping[str, Mapping[str, Mapping]], kinds: Mapping[str, str], dataset: str) -> str | None:
    """The member with the highest accuracy on `dataset` (the first by name on ties)."""
    members = sorted(m for m in results if kinds[m] == "member" and dataset in results[m])
    return max(members, key=lambda m: results[m][dataset]["accuracy"]) if members else None


def compare(scored: Mapping[str, Mapping[str, Scored]], results: Mapping[str, Mapping[str, Mapping]],
            kinds: Mapping[str, str], bootstrap: int = 1000, seed: int = 0) -> dict[str, dict[str, dict[str, Any]]]:
    """model -> dataset -> the paired fields to add to its row (see the module docstring)."""
    out: dict[str, dict[str, dict[str, Any]]] = {m: {} for m in scored}
    datasets = list(next(iter(scored.values())).keys()) if scored else []
    for ds in datasets:
        best = best_member(results, kinds, ds)
        for model, by_ds in scored.items():
            fields: dict[str, Any] = {}
            if kinds[model] in ("soup", "routed", "baseline", "multitask", "average") and best is not None:
                d = _diff(by_ds[ds], scored[best][ds], bootstrap, seed)
                fields.update({"best_member": best, "vs_best_member": d["diff"], "vs_best_member_lo": d["lo"],
                               "vs_best_member_hi": d["hi"], "bar": stats.bar_verdict(d)})
            elif kinds[model] == "member":
                beats = []
                for ref in REFERENCES:
                    if ref in scored and kinds.get(ref) == "reference":
                        d = _diff(by_ds[ds], scored[ref][ds], bootstrap, seed)
                        fields.update({f"vs_{ref}": d["diff"], f"vs_{ref}_lo": d["lo"], f"vs_{ref}_hi": d["hi"]})
                        beats.append(d["lo"] > 0)
                if beats:
                    fields["beats_references"] = all(beats)
            out[model][ds] = fields
    return out
