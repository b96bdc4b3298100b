"""`make report-real`: a markdown report of the real-data recipe (accuracies, intervals, soup vs
specialists with paired intervals and the 2-point bar, members against the reference rows, the soup against
the alternatives a user would choose instead, wall times), written next to the evaluation table."""

from __future__ import annotations

import json
from pathlib import Path

from rewardsoup.sweep import ledger

from rewardsoup.evaluation import tables
from rewardsoup.core.atomic import atomic_write_text
from rewardsoup.sweep.summary import PICK_FILE
from rewardsoup.training.member import MEMBER_META


def _versus(row: dict, ds: str, ref: str) -> str:
    d, lo, hi = row[f"{ds}_vs_{ref}"], row[f"{ds}_vs_{ref}_lo"], row[f"{ds}_vs_{ref}_hi"]
    verdict = "beats it" if lo > 0 else "loses to it" if hi < 0 else f"cannot tell at n={row[f'{ds}_n']}"
    return f"{ref} {100 * d:+.1f} points [{100 * lo:+.1f}, {100 * hi:+.1f}]: {verdict}"


def evidence(metas: dict, results_json: Path) -> list[str]:
    """What the test rows can and cannot say: each member on its own dataset against the references, with
    paired intervals, and the datasets too small to decide a 2-point difference."""
    rows = {r["model"]: r for r in json.loads(results_json.read_text())["rows"]}
    lines = ["## What the test rows can say", ""]
    for name, meta in metas.items():
        ds, row = meta["data"]["name"], rows.get(name, {})
        if f"{ds}_vs_base" in row:
            refs = "; ".join(_versus(row, ds, ref) for ref in ("base", "length") if f"{ds}_vs_{ref}" in row)
            lines.append(f"- member {name} on its own set {ds} (n={row[f'{ds}_n']}), paired against the references: "
                         f"{refs}.")
    any_row = next(iter(rows.values()), {})
    for ds in sorted({m["data"]["name"] for m in metas.values()}):
        lo, hi = any_row.get(f"{ds}_lo"), any_row.get(f"{ds}_hi")
        if lo is not None and (hi - lo) / 2 > tables.WIDE:
            lines.append(f"- {ds}: n={any_row[f'{ds}_n']} test rows give intervals of about ±{100 * (hi - lo) / 2:.0f} "
                         "points: too wide to decide anything at the recipe's 2-point scale; read its column as a "
                         "smoke test.")
    return lines + [""]


def worth_it(results_json: Path) -> list[str]:
    """Is the soup worth choosing? Each soup against the alternatives, per dataset, from the paired verdicts."""
    data = json.loads(results_json.read_text())
    found, kinds = data.get("verdicts") or [], {r["model"]: r.get("kind") for r in data.get("rows") or []}
    rows = [v for v in found if v["against"] in ("logit_ensemble",) or v["against"].startswith("multitask")
            or kinds.get(v["model"]) == "routed"]  # a routed soup: also against the static soups and its outputs row
    rows = [v for v in rows if not v["model"].startswith(("seed_ties", "uniform"))]
    if not rows:
        return []
    lines = ["## The soup against what a user would choose instead", ""]
    for v in rows:
        lines.append(f"- {v['model']} vs {v['against']} on {v['dataset']} (n={v['n']}): "
                     f"{100 * v['diff']:+.1f} points [{100 * v['lo']:+.1f}, {100 * v['hi']:+.1f}]: {v['verdict']}.")
    return lines + [""]


def write_real_report(run: dict) -> Path:
    root = Path(run["root"])
    trained = {**run["members"], **run.get("alternatives", {})}
    metas = {name: json.loads((Path(path) / MEMBER_META).read_text()) for name, path in trained.items()}
    base = next(iter(metas.values()))["base_meta"]
    start, end = base["layer_range"]
    lines = ["# rewardsoup on real data (../shared/data)", "",
             f"Members fine-tuned from {base['source']} cut to {end - start} layers (1-logit head), then an Optuna",
             "sweep of in-memory TIES merges on the val splits, the best trial exported with mergekit and",
             "tested on test splits no trial saw.", "", "## Members (validation during training)", "",
             "| model | role | data | objective | train n | steps | val n | val accuracy | train wall s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, meta in metas.items():
        role = "member" if name in run["members"] else "alternative"
        lines.append(f"| {name} | {role} | {meta['data']['name']} | {meta['objective']['name']} | "
                     f"{meta['split_sizes']['train']} | {meta['steps']} | {meta['val']['n']} | "
                     f"{meta['val']['accuracy']:.3f} | {meta['train_wall_s']:.0f} |")
    rows = ledger.read(run["sweep"])[1]
    pick = json.loads((Path(run["sweep"]) / PICK_FILE).read_text())  # the trial the pick exported
    best = next(r for r in rows if r["key"] == pick["key"])
    rule = f"Picked by the '{pick['kind']}' rule: val objective {best['objective']:.4f} with `{best['params']}`."
    note = [f"**{pick['note']}**"] if pick.get("note") else []
    lines += ["", f"## Sweep: {len(rows)} trials", "", rule, *note, "", "## Test table", "", Path(run["report"]).read_text(),
              *evidence({n: m for n, m in metas.items() if n in run["members"]},
                        Path(run["report"]).with_name("results.json")),
              *worth_it(Path(run["report"]).with_name("results.json")), "## Wall times", "",
              "| stage | seconds |", "|---|---|"]
    lines += [f"| {stage} | {secs:.0f} |" for stage, secs in run["walls"].items()]
    lines += [f"| all stages | {sum(run['walls'].values()):.0f} |", "",
              "Each stage's time comes from the run that did its work (a rerun skips finished stages); "
              f"this run took {run['total_s']:.0f} s.", ""]
    out = root / "reports" / "real-data-report.md"
    atomic_write_text(out, "\n".join(lines))
    print(f"[rewardsoup] real-data report: {out}")
    return out
