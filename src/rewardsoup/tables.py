"""Result tables: rows are models, columns are datasets and their mean.

Each cell is accuracy with its bootstrap 95% interval; each soup row also shows, per dataset, its
difference from the BEST member on that dataset (the seed's check: a good soup loses only a couple of
points to each specialist). Written as markdown (printed too), CSV and JSON, and logged as a W&B table.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Mapping

from rewardsoup.atomic import atomic_dir

KIND_ORDER = {"member": 0, "soup": 1, "baseline": 2, "model": 3}


def _mean(values) -> float:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    return sum(vals) / len(vals) if vals else float("nan")


def best_member(results: Mapping[str, Mapping], kinds: Mapping[str, str], dataset: str) -> float | None:
    accs = [results[m][dataset]["accuracy"] for m in results if kinds[m] == "member" and dataset in results[m]]
    return max(accs) if accs else None


def rows(results: Mapping[str, Mapping[str, dict]], kinds: Mapping[str, str]) -> list[dict[str, Any]]:
    """Flat rows (one per model) with accuracy, interval and soup-vs-best-member difference per dataset."""
    datasets = list(next(iter(results.values())).keys()) if results else []
    out = []
    for model in sorted(results, key=lambda m: (KIND_ORDER.get(kinds[m], 9), m)):
        row: dict[str, Any] = {"model": model, "kind": kinds[model]}
        for ds in datasets:
            m = results[model][ds]
            row[ds] = m["accuracy"]
            row[f"{ds}_lo"], row[f"{ds}_hi"] = m.get("accuracy_lo"), m.get("accuracy_hi")
            row[f"{ds}_n"] = m["n"]
            for extra in ("tie_rate", "auc"):
                if extra in m:
                    row[f"{ds}_{extra}"] = m[extra]
            best = best_member(results, kinds, ds)
            if kinds[model] != "member" and best is not None:
                row[f"{ds}_vs_best_member"] = m["accuracy"] - best
        row["mean"] = _mean(row[ds] for ds in datasets)
        out.append(row)
    return out


def markdown(table_rows: list[dict[str, Any]], datasets: list[str], title: str) -> str:
    head = ["model", "kind"] + datasets + ["mean"]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in table_rows:
        cells = [r["model"], r["kind"]]
        for ds in datasets:
            cell = f"{r[ds]:.3f} [{r[f'{ds}_lo']:.2f}, {r[f'{ds}_hi']:.2f}]"
            if f"{ds}_vs_best_member" in r:
                cell += f" ({100 * r[f'{ds}_vs_best_member']:+.1f})"
            cells.append(cell)
        cells.append(f"{r['mean']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    n = ", ".join(f"{ds} n={table_rows[0][f'{ds}_n']}" for ds in datasets) if table_rows else ""
    lines += ["", f"Accuracy [bootstrap 95% interval]; (±x.x) = points vs the best member on that dataset. {n}."]
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
                 extra: Mapping[str, Any] | None = None) -> str:
    """Write table.md, results.csv and results.json into `out_dir` atomically; returns the markdown."""
    md = markdown(table_rows, datasets, title)
    with atomic_dir(out_dir, overwrite=True) as tmp:
        (tmp / "table.md").write_text(md)
        (tmp / "results.csv").write_text(to_csv(table_rows))
        (tmp / "results.json").write_text(json.dumps({"rows": table_rows, **(extra or {})}, indent=2,
                                                     default=str) + "\n")
    return md
