"""Length as a reference model, and how much each model's reward simply follows length.

- `length_reference`: the "prefer the longer / shorter reply" heuristic, its direction chosen on the VAL
  split and then applied to the scored split (for binary sets: the sign of the Spearman correlation
  between length and label on val, rewards centred on the val median length so `reward > 0` means "longer
  than usual" or "shorter than usual"). It is a row in every evaluation table: a reward model that cannot
  beat it has learnt length, not preference.
- `length_bias`: Spearman correlation between a model's rewards and the token lengths of the texts, and
  its accuracy on the length-matched half of the pairs (the half whose two sides differ least in length),
  where length cannot carry the decision.
Lengths are token counts after left truncation: what the model saw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from rewardsoup.scoring import stats
from rewardsoup.scoring.metrics import EvalSet, Scored, row_credit


def length_reference(scored_on: EvalSet, val: EvalSet | None) -> tuple[Scored, dict[str, Any]]:
    """The length heuristic's rewards on `scored_on`, its direction chosen on `val` (on `scored_on` itself,
    and said so, when there is no val split, e.g. evaluation-only sets)."""
    chooser = val if val is not None and val.n > 0 else scored_on
    chosen_on = "val" if chooser is val else "the scored split (no val rows)"
    if scored_on.schema == "binary":
        rho = stats.spearman(chooser.lengths, chooser.labels)
        sign = -1.0 if rho < 0 else 1.0
        centre = float(np.median(chooser.lengths))
        rule = f"{'longer' if sign > 0 else 'shorter'} than {centre:.0f} tokens = liked"
        return Scored(scored_on, sign * (scored_on.lengths - centre)), {"rule": rule, "chosen_on": chosen_on}
    longer = row_credit(chooser, chooser.lengths).mean()
    shorter = row_credit(chooser, -chooser.lengths).mean()
    sign = 1.0 if longer > shorter else -1.0
    rule = f"prefer {'longer' if sign > 0 else 'shorter'}"
    return Scored(scored_on, sign * scored_on.lengths), {"rule": rule, "chosen_on": chosen_on}


def length_bias(scored: Scored) -> dict[str, float]:
    """len_spearman (reward vs token length, every text); for pairwise sets acc_len_matched on the half of
    the pairs whose sides differ least in length (len_matched_n rows, sides at most len_matched_gap apart)."""
    es = scored.evalset
    out = {"len_spearman": stats.spearman(scored.rewards, es.lengths)}
    if es.schema == "pairwise" and es.n >= 2:
        gap = np.abs(es.lengths[: es.n] - es.lengths[es.n:])
        half = np.argsort(gap, kind="stable")[: es.n // 2]
        out["acc_len_matched"] = float(row_credit(es, scored.rewards)[half].mean())
        out["len_matched_n"] = int(len(half))
        out["len_matched_gap"] = float(gap[half].max())
    return out


def plot_length_bias(results: Mapping[str, Mapping[str, Mapping]], datasets: list[str], path: Path) -> Path:
    """Per dataset: each model's Spearman(reward, length) (top) and, for pairwise sets, its accuracy on all
    pairs against the length-matched half (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(results)
    fig, axes = plt.subplots(2, len(datasets), figsize=(max(4.5, 0.45 * len(models) + 2) * len(datasets), 6.5),
                             squeeze=False)
    x = np.arange(len(models))
    for col, ds in enumerate(datasets):
        rho = [results[m][ds].get("len_spearman", np.nan) for m in models]
        top, bottom = axes[0][col], axes[1][col]
        top.bar(x, rho, color="tab:purple")
        top.axhline(0, color="black", lw=0.6)
        top.set_ylim(-1, 1)
        top.set_title(f"{ds}: Spearman(reward, tokens)")
        full = [results[m][ds].get("accuracy", np.nan) for m in models]
        matched = [results[m][ds].get("acc_len_matched", np.nan) for m in models]
        bottom.bar(x - 0.2, full, 0.4, label="all rows")
        bottom.bar(x + 0.2, matched, 0.4, label="length-matched half")
        bottom.axhline(0.5, color="grey", lw=0.6, ls="--")
        bottom.set_ylim(0, 1)
        bottom.set_title(f"{ds}: accuracy")
        for ax in (top, bottom):
            ax.set_xticks(x, models, rotation=45, ha="right", fontsize=8)
        if col == 0:
            bottom.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
