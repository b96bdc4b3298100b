"""The sweep's plots (PNG): the objective against each searched number, and the per-dataset trade-off.

`front.png`: for each pair of datasets, every complete trial's val scores (grey), the Pareto front over all
datasets (red, `ledger.mark_front`), each member on its own (labelled squares), the picked soup (star) and,
with `sweep.objective.kind=floors`, each dataset's floor (dashed).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Mapping


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_params(rows: list[dict], best: dict, out_dir: Path) -> list[Path]:
    """`objective_vs_params.png`: the val objective against each numeric searched value."""
    plt = _pyplot()
    numeric = sorted({k for r in rows for k, v in r["params"].items()
                      if isinstance(v, (int, float)) and not isinstance(v, bool)})
    if not numeric:
        return []
    fig, axes = plt.subplots(1, len(numeric), figsize=(4 * len(numeric), 3.4), squeeze=False)
    for ax, key in zip(axes[0], numeric):
        pts = [(r["params"][key], r["objective"], r.get("state", "complete")) for r in rows if key in r["params"]]
        for state, marker in (("complete", "o"), ("pruned", "x")):
            sel = [p for p in pts if p[2] == state]
            if sel:
                ax.scatter([p[0] for p in sel], [p[1] for p in sel], s=18, alpha=0.7, marker=marker, label=state)
        if key in best["params"]:
            ax.scatter([best["params"][key]], [best["objective"]], s=120, marker="*", color="red", label="picked")
        ax.set_xlabel(key)
        ax.set_ylabel("val objective (pruned: partial)")
    axes[0][0].legend(loc="best")
    fig.tight_layout()
    path = out_dir / "objective_vs_params.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def plot_front(rows: list[dict], best: dict, members: Mapping[str, Mapping[str, float]],
               floors: Mapping[str, float] | None, out_dir: Path) -> list[Path]:
    """`front.png`: each pair of datasets, front highlighted, members and the pick marked, floors drawn."""
    plt = _pyplot()
    done = [r for r in rows if r.get("state", "complete") == "complete"]
    datasets = sorted(best["val"])
    pairs = list(itertools.combinations(datasets, 2))
    if not pairs:
        return []
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.6 * len(pairs), 4.2), squeeze=False)
    for ax, (a, b) in zip(axes[0], pairs):
        ax.scatter([r["val"][a] for r in done], [r["val"][b] for r in done], s=16, color="0.65", label="trial")
        front = sorted((r for r in done if r.get("front")), key=lambda r: r["val"][a])
        if front:
            ax.scatter([r["val"][a] for r in front], [r["val"][b] for r in front], s=30, color="tab:red",
                       label="Pareto front (all datasets)")
        for name, scores in members.items():
            ax.scatter([scores[a]], [scores[b]], s=60, marker="s", color="tab:blue")
            ax.annotate(name, (scores[a], scores[b]), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.scatter([best["val"][a]], [best["val"][b]], s=180, marker="*", color="gold", edgecolor="black",
                   label="picked", zorder=5)
        if floors:
            ax.axvline(floors[a], ls="--", color="tab:green", lw=1, label="floor")
            ax.axhline(floors[b], ls="--", color="tab:green", lw=1)
        ax.set_xlabel(f"{a} val score")
        ax.set_ylabel(f"{b} val score")
    axes[0][0].legend(loc="best", fontsize=7)
    fig.suptitle("per-dataset trade-off across trials (members: squares)")
    fig.tight_layout()
    path = out_dir / "front.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]


def plot_sweep(rows: list[dict], best: dict, out_dir: Path, members: Mapping[str, Mapping[str, float]] | None = None,
               floors: Mapping[str, float] | None = None) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    return plot_params(rows, best, out_dir) + plot_front(rows, best, members or {}, floors, out_dir)




COEFFICIENTS_PNG = "layer_coefficients.png"  # beside a layer-wise soup's weights; its model card shows it


def plot_coefficients(path: Path, members: list[str], groups: list[str], coefficients: list[list[float]]) -> Path:
    """A layer-wise soup's coefficients: members (rows) x layer groups (columns), value in each cell."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(1.0 + 0.9 * len(groups), 0.8 + 0.5 * len(members)))
    im = ax.imshow(coefficients, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(groups)), groups, rotation=45, ha="right")
    ax.set_yticks(range(len(members)), members)
    for i, row in enumerate(coefficients):
        for j, v in enumerate(row):
            ax.text(j, i, f"{v:.2f}", ha="center", va="center", color="white", fontsize=8)
    fig.colorbar(im, ax=ax, label="TIES weight")
    ax.set_title("per-layer coefficients")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")  # written aside, then renamed: never a half-written image
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
