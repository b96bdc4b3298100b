"""A sweep's outcome: the pick rule, the Pareto front marked in the ledger, the plots, and one W&B summary run.

`choose` is the one pick rule (used by the pick, the summary and the reports):
- complete trials only (a pruned trial's scores cover part of the val rows);
- `mean` / `weighted`: the highest objective; `worst`: the highest worst dataset, ties broken by the mean,
  so the pick is on the Pareto front; earliest trial on ties;
- `floors`: the highest mean among the trials whose every dataset is within `max_loss` of its best member
  (`references.floors`); when no trial is, the one whose WORST dataset falls least below its floor (ties:
  the smaller total shortfall, then the higher mean), with a note that says so.
`summarize` runs at the end of every `merge.py -m` sweep (the Hydra callback `SweepSummary`, on_multirun_end)
and in the pick: it marks the front (`ledger.mark_front`), draws the plots, writes `pick.json` and logs one
W&B run (job_type `sweep-summary`, the sweep's group) holding the ledger as a table, the plots and the
picked trial's name.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from rewardsoup.core.atomic import atomic_write_json
from rewardsoup.core.errors import ConfigError
from rewardsoup.core.plain import plain
from rewardsoup.core.tracking import start_run
from rewardsoup.sweep import ledger, references
from rewardsoup.sweep.objective import floor_constraints, floors_from_members, violation, worst_shortfall
from rewardsoup.sweep.plots import plot_sweep

log = logging.getLogger("rewardsoup.sweep.summary")
PICK_FILE = "pick.json"


def _mean(row: Mapping[str, Any]) -> float:
    return sum(row["val"].values()) / len(row["val"])


def choose(rows: list[dict], objective: Mapping[str, Any] | None = None,
           floors: Mapping[str, float] | None = None) -> tuple[dict, str | None]:
    """(the picked row, a note when no trial meets the floors)."""
    done = list(enumerate(ledger.complete(rows)))
    if not done:
        raise ConfigError("the sweep has no finished (unpruned) trials in its ledger yet")
    kind = str((objective or {}).get("kind", "mean"))
    rank = (lambda ir: (ir[1]["objective"], _mean(ir[1]), -ir[0])) if kind == "worst" else \
        (lambda ir: (ir[1]["objective"], -ir[0]))
    if kind != "floors" or floors is None:
        return max(done, key=rank)[1], None
    cons = {i: floor_constraints(r["val"], floors) for i, r in done}
    feasible = [(i, r) for i, r in done if violation(cons[i]) == 0.0]
    if feasible:
        return max(feasible, key=rank)[1], None
    i, best = min(done, key=lambda ir: (worst_shortfall(cons[ir[0]]), violation(cons[ir[0]]),
                                        -ir[1]["objective"], ir[0]))
    short = ", ".join(f"{d} {best['val'][d]:.3f} < floor {f:.3f}" for d, f in floors.items() if best["val"][d] < f)
    return best, (f"NO TRIAL MEETS THE FLOORS (each dataset within {objective.get('max_loss')} of its best member "
                  f"on val) among {len(done)} complete trials: picked trial {best['trial']}, whose worst dataset "
                  f"falls least below its floor ({100 * worst_shortfall(cons[i]):.1f} points: {short})")


def _table(rows: list[dict]) -> tuple[list[str], list[list[Any]]]:
    datasets = sorted({d for r in rows for d in r["val"]})
    params = sorted({k for r in rows for k in r["params"]})
    columns = ["trial", "source", "state", "objective", "feasible", "front", "texts", "trial_s",
               *[f"val/{d}" for d in datasets], *params]
    data = [[str(r["trial"]), r["source"], r.get("state", "complete"), r["objective"], r.get("feasible"),
             r.get("front"), r.get("texts"), r.get("trial_s"), *[r["val"].get(d) for d in datasets],
             *[r["params"].get(k) for k in params]] for r in rows]
    return columns, data


def log_summary(cfg: DictConfig, rows: list[dict], best: dict, plots: list[Path], note: str | None) -> None:
    """One W&B run in the sweep's group: the ledger as a wandb.Table, the plots, the picked trial."""
    name = str(cfg.sweep.name)
    with start_run(cfg, job_type="sweep-summary", name=f"summary-{name}", group=name,
                   config={"sweep": name, "objective": plain(cfg.sweep.objective)}) as tracker:
        tracker.table("ledger", *_table(rows))
        for p in plots:
            tracker.image(f"sweep/{p.stem}", str(p))
        tracker.summary({"picked_trial": f"{name}-{best['source']}-{best['trial']}", "picked_objective": best["objective"],
                         "n_trials": len(rows), "n_pruned": sum(r.get("state") == "pruned" for r in rows),
                         "n_feasible": sum(bool(r.get("feasible")) for r in rows), "note": note or "",
                         **{f"picked/val/{d}": v for d, v in best["val"].items()}})


def summarize(cfg: DictConfig, log_to_wandb: bool = True) -> dict[str, Any]:
    """Mark the front, pick by the rule, draw the plots, write pick.json, log the summary run."""
    sweep_dir = Path(cfg.sweep.dir)
    objective = plain(cfg.sweep.objective)
    rows = ledger.mark_front(sweep_dir)
    members = references.member_scores(cfg, sweep_dir)
    floors = floors_from_members(members, float(objective["max_loss"])) if objective["kind"] == "floors" else None
    best, note = choose(rows, objective, floors)
    if note:
        log.warning(note)
        print(f"[rewardsoup] WARNING: {note}", flush=True)
    plots = plot_sweep(rows, best, sweep_dir / "plots", members, floors)
    pick = {"trial": best["trial"], "source": best["source"], "key": best["key"], "objective": best["objective"],
            "val": best["val"], "kind": objective["kind"], "floors": floors, "members": members, "note": note,
            "front": [r["trial"] for r in rows if r.get("front")], "n_trials": len(rows),
            "plots": [str(p) for p in plots]}
    atomic_write_json(sweep_dir / PICK_FILE, pick)
    if log_to_wandb:
        log_summary(cfg, rows, best, plots, note)
    return {"best": best, "note": note, "plots": plots, "rows": rows, "floors": floors, "members": members}


class SweepSummary(Callback):
    """Hydra callback (conf/hydra/merge.yaml): `summarize` after every merge.py multirun that left a ledger."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if str(config.get("mode", "auto")) not in ("auto", "trial") or not ledger.complete(
                ledger.read(config.sweep.dir)[1] if (Path(config.sweep.dir) / ledger.HEADER).exists() else []):
            return
        summarize(config)
