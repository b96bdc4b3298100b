"""Result tables: rows are models, columns are datasets and their mean.

Each cell is accuracy with its bootstrap 95% interval (binary sets add ROC AUC); each soup or baseline
cell also shows its difference from the BEST member on that dataset with a paired 95% interval (`*` when
it excludes 0). Below the table: members against the reference rows, the recipe's 2-point bar per soup,
length bias, and per-subset best-of-N for RewardBench-style sets. Written as markdown (printed too), CSV
and JSON, and logged as a W&B table.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Callable, Mapping

from rewardsoup.scoring import stats
from rewardsoup.core.atomic import atomic_dir

KIND_ORDER = {"member": 0, "soup": 1, "routed": 2, "multitask": 3, "baseline": 4, "average": 5, "run": 6, "reference": 7,
              "model": 8}
_OWN = {"accuracy": "", "accuracy_lo": "_lo", "accuracy_hi": "_hi"}  # accuracy is the dataset's own column
WIDE = 0.05  # a 95% half-width above 5 points cannot resolve the recipe's 2-point differences


def _mean(values) -> float:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(vals) / len(vals) if vals else float("nan")


def rows(results: Mapping[str, Mapping[str, dict]], kinds: Mapping[str, str]) -> list[dict[str, Any]]:
    """Flat rows (one per model): `<dataset>` = accuracy, `<dataset>_<field>` every other field."""
    datasets = list(next(iter(results.values())).keys()) if results else []
    out = []
    for model in sorted(results, key=lambda m: (KIND_ORDER.get(kinds[m], 9), m)):
        row: dict[str, Any] = {"model": model, "kind": kinds[model]}
        for ds in datasets:
            for key, value in results[model][ds].items():
                if key == "subsets":
                    row.update({f"{ds}_subset_{s}": v["accuracy"] for s, v in value.items()})
                    row.update({f"{ds}_subset_{s}_n": v["n"] for s, v in value.items()})
                else:
                    row[f"{ds}{_OWN[key]}" if key in _OWN else f"{ds}_{key}"] = value
        row["mean"] = _mean(row.get(ds) for ds in datasets)
        out.append(row)
    return out


def _pts(x: float) -> str:
    return f"{100 * x:+.1f}"


def _diff(r: Mapping, key: str) -> str:
    lo, hi = r[f"{key}_lo"], r[f"{key}_hi"]
    mark = "*" if stats.excludes_zero(lo, hi) else ""
    return f"{_pts(r[key])} [{_pts(lo)}, {_pts(hi)}]{mark}"


def _cell(r: Mapping, ds: str) -> str:
    if r.get(ds) is None or math.isnan(r[ds]):
        return "–"
    cell = f"{r[ds]:.3f} [{r[f'{ds}_lo']:.2f}, {r[f'{ds}_hi']:.2f}]"
    if f"{ds}_auc" in r and not math.isnan(r[f"{ds}_auc"]):
        cell += f" AUC {r[f'{ds}_auc']:.3f}"
    if f"{ds}_vs_best_member" in r:
        cell += f" ({_diff(r, f'{ds}_vs_best_member')})"
    return cell


def _table(head: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(b) + " |" for b in body]


def _references(table_rows: list[dict], datasets: list[str]) -> list[str]:
    members = [r for r in table_rows if r["kind"] == "member" and any(f"{ds}_vs_base" in r or f"{ds}_vs_length" in r
                                                                     for ds in datasets)]
    if not members:
        return []
    body = []
    for r in members:
        cells = [r["model"]]
        for ds in datasets:
            parts = [f"{ref} {_diff(r, f'{ds}_vs_{ref}')}" for ref in ("base", "length") if f"{ds}_vs_{ref}" in r]
            verdict = "**beats both**" if r.get(f"{ds}_beats_references") else "not shown to beat both"
            cells.append(", ".join(parts) + f": {verdict}")
        body.append(cells)
    return ["", "#### Members against the reference rows (points, paired 95% interval on the same rows)", "",
            *_table(["member"] + datasets, body)]


def _bar(table_rows: list[dict], datasets: list[str]) -> list[str]:
    soups = [r for r in table_rows if any(f"{ds}_bar" in r for ds in datasets)]
    if not soups:
        return []
    body = [[r["model"]] + [f"{r[f'{ds}_bar']} ({_diff(r, f'{ds}_vs_best_member')} vs {r[f'{ds}_best_member']})"
                            if f"{ds}_bar" in r else "–" for ds in datasets] for r in soups]
    return ["", f"#### The recipe's bar: at most {100 * stats.BAR:.0f} points below each specialist "
                "(holds / fails / cannot tell, from the paired interval)", "", *_table(["model"] + datasets, body)]


def _verdicts(found: list[dict] | None) -> list[str]:
    if not found:
        return []
    body = [[v["model"], v["against"], v["dataset"], f"{_pts(v['diff'])} [{_pts(v['lo'])}, {_pts(v['hi'])}]",
             f"**{v['verdict']}**" if not v["verdict"].startswith("cannot") else v["verdict"]] for v in found]
    return ["", "#### Every comparison, paired on the same rows (points, 95% interval; better = the first is "
                "better, cannot tell = the interval spans 0)", "",
            *_table(["model", "against", "dataset", "difference", "verdict"], body)]


def _length_bias(table_rows: list[dict], datasets: list[str]) -> list[str]:
    if not any(f"{ds}_len_spearman" in r for r in table_rows for ds in datasets):
        return []
    body = []
    for r in table_rows:
        cells = [r["model"]]
        for ds in datasets:
            rho = r.get(f"{ds}_len_spearman", float("nan"))
            cell = "–" if math.isnan(rho) else f"ρ {rho:+.2f}"
            if f"{ds}_acc_len_matched" in r:
                cell += f", matched {r[f'{ds}_acc_len_matched']:.3f}"
            cells.append(cell)
        body.append(cells)
    return ["", "#### Length bias: Spearman ρ(reward, tokens); accuracy on the length-matched half of the pairs", "",
            *_table(["model"] + datasets, body)]


def _subsets(table_rows: list[dict], datasets: list[str]) -> list[str]:
    cols = [k for k in (table_rows[0] if table_rows else {}) if "_subset_" in k and not k.endswith("_n")]
    if not cols:
        return []
    body = [[r["model"]] + [f"{r[c]:.3f}" if c in r else "–" for c in cols] for r in table_rows]
    head = [c.replace("_subset_", " / ") + f" (n={table_rows[0].get(c + '_n')})" for c in cols]
    return ["", "#### Best-of-N accuracy per subset (chosen above every rejected reply)", "",
            *_table(["model"] + head, body)]


def _footer(table_rows: list[dict], datasets: list[str], notes: list[str]) -> list[str]:
    lines = ["", "Accuracy [bootstrap 95% interval], ties earning half credit; binary sets add ROC AUC. "
                 "(±x.x [lo, hi]) = points against the best member on that dataset, a paired interval on the "
                 "same rows; * = the interval excludes 0."]
    for ds in datasets:
        first = next((r for r in table_rows if r.get(f"{ds}_n")), None)
        if first is None:
            continue
        spans = [(r[f"{ds}_hi"] - r[f"{ds}_lo"]) / 2 for r in table_rows
                 if r.get(f"{ds}_hi") is not None and not math.isnan(r[f"{ds}_hi"])]
        line = f"- {ds}: n={first[f'{ds}_n']}"
        if not spans:  # bootstrap=0: no intervals were computed
            line += ", no intervals (bootstrap=0)"
        else:
            line += f", a model's interval spans about ±{100 * max(spans):.1f} points"
            if max(spans) > WIDE:
                line += ": too few rows to decide a 2-point difference on their own"
        lines.append(line)
    return lines + [f"- {n}" for n in notes]


def markdown(table_rows: list[dict[str, Any]], datasets: list[str], title: str, notes: list[str] | None = None,
             found: list[dict] | None = None) -> str:
    body = [[r["model"], r["kind"]] + [_cell(r, ds) for ds in datasets] + [f"{r['mean']:.3f}"] for r in table_rows]
    lines = [f"### {title}", "", *_table(["model", "kind"] + datasets + ["mean"], body)]
    lines += _footer(table_rows, datasets, notes or [])
    lines += _references(table_rows, datasets) + _bar(table_rows, datasets) + _verdicts(found)
    lines += _length_bias(table_rows, datasets) + _subsets(table_rows, datasets)
    return "\n".join(lines) + "\n"


def to_csv(table_rows: list[dict[str, Any]]) -> str:
    keys: list[str] = []
    for r in table_rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(table_rows)
    return buf.getvalue()


def write_report(out_dir: str | Path, table_rows: list[dict[str, Any]], datasets: list[str], title: str,
                 extra: Mapping[str, Any] | None = None, notes: list[str] | None = None,
                 figures: Mapping[str, Callable[[Path], Any]] | None = None, found: list[dict] | None = None) -> str:
    """Write table.md, results.csv, results.json and `figures` (file name -> writer) into `out_dir`
    atomically; returns the markdown."""
    md = markdown(table_rows, datasets, title, notes, found)
    with atomic_dir(out_dir, overwrite=True) as tmp:
        (tmp / "table.md").write_text(md)
        (tmp / "results.csv").write_text(to_csv(table_rows))
        (tmp / "results.json").write_text(json.dumps({"rows": table_rows, **(extra or {})}, indent=2,
                                                     default=str) + "\n")
        for name, write in (figures or {}).items():
            write(tmp / name)
    return md
