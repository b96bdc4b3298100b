"""`make report-real`: a markdown report of the real-data recipe (accuracies, intervals, soup vs
specialists, wall times), written next to the evaluation table."""

from __future__ import annotations

import json
from pathlib import Path

from rewardsoup import ledger
from rewardsoup.atomic import atomic_write_text
from rewardsoup.pick import best_row
from rewardsoup.training import MEMBER_META


def write_real_report(run: dict) -> Path:
    root = Path(run["root"])
    metas = {name: json.loads((Path(path) / MEMBER_META).read_text()) for name, path in run["members"].items()}
    base = next(iter(metas.values()))["base_meta"]
    start, end = base["layer_range"]
    lines = ["# rewardsoup on real data (../shared/data)", "",
             f"Members fine-tuned from {base['source']} cut to {end - start} layers (1-logit head), then an Optuna",
             "sweep of in-memory TIES merges on the val splits, the best trial exported with mergekit and",
             "tested on test splits no trial saw.", "", "## Members (validation during training)", "",
             "| member | data | objective | train n | val n | val accuracy | train wall s |", "|---|---|---|---|---|---|---|"]
    for name, meta in metas.items():
        lines.append(f"| {name} | {meta['data']['name']} | {meta['objective']['name']} | {meta['split_sizes']['train']} "
                     f"| {meta['val']['n']} | {meta['val']['accuracy']:.3f} | {meta['train_wall_s']:.0f} |")
    rows = ledger.read(run["sweep"])[1]
    best = best_row(rows)  # the trial the pick exported
    lines += ["", f"## Sweep: {len(rows)} trials", "", f"Best val objective {best['objective']:.4f} with "
              f"`{best['params']}`.", "", "## Test table", "", Path(run["report"]).read_text(), "## Wall times", "",
              "| stage | seconds |", "|---|---|"]
    lines += [f"| {stage} | {secs:.0f} |" for stage, secs in run["walls"].items()]
    lines += [f"| all stages | {sum(run['walls'].values()):.0f} |", "",
              "Each stage's time comes from the run that did its work (a rerun skips finished stages); "
              f"this run took {run['total_s']:.0f} s.", ""]
    out = root / "reports" / "real-data-report.md"
    atomic_write_text(out, "\n".join(lines))
    print(f"[rewardsoup] real-data report: {out}")
    return out
