"""Pick the best trial of a finished sweep, export it with mergekit, test it, and plot the sweep.

1. best row of the ledger by val objective (earliest on ties);
2. that request merged to disk by mergekit (atomic, mergekit YAML beside) under paths.soups/<pick.name>;
3. the seed's `seed_ties` soup written too when missing (its weights from conf/merge/seed_ties.yaml);
4. evaluate.py's table on the TEST splits, which no trial saw: members, the picked soup, seed_ties, the
   uniform soup, the logit ensemble and the reference rows (untrained base, length heuristic), with
   bootstrap intervals, paired differences against the specialists and the recipe's 2-point bar;
5. plots (PNG, also logged to W&B): objective against each weight and density; per-dataset val
   accuracy trade-off across trials with the chosen point marked.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from rewardsoup.sweep import ledger
from rewardsoup.core.errors import ConfigError
from rewardsoup.core.plain import plain
from rewardsoup.merging.on_disk import SOUP_CONFIG
from rewardsoup.merging.soup import export
from rewardsoup.core.tracking import start_run
from rewardsoup.evaluation.job import evaluate_models


def best_row(rows: list[dict]) -> dict:
    if not rows:
        raise ConfigError("the sweep has no finished trials in its ledger yet")
    return max(enumerate(rows), key=lambda ir: (ir[1]["objective"], -ir[0]))[1]


def plot_sweep(rows: list[dict], best: dict, out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    numeric = sorted({k for r in rows for k, v in r["params"].items()
                      if isinstance(v, (int, float)) and not isinstance(v, bool)})
    if numeric:
        fig, axes = plt.subplots(1, len(numeric), figsize=(4 * len(numeric), 3.4), squeeze=False)
        for ax, key in zip(axes[0], numeric):
            pts = [(r["params"][key], r["objective"]) for r in rows if key in r["params"]]
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=18, alpha=0.7)
            if key in best["params"]:
                ax.scatter([best["params"][key]], [best["objective"]], s=120, marker="*", color="red", label="picked")
            ax.set_xlabel(key)
            ax.set_ylabel("val objective")
        axes[0][0].legend(loc="best")
        fig.tight_layout()
        paths.append(out_dir / "objective_vs_params.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    datasets = sorted(best["val"])
    pairs = list(itertools.combinations(datasets, 2))
    if pairs:
        fig, axes = plt.subplots(1, len(pairs), figsize=(4 * len(pairs), 3.6), squeeze=False)
        for ax, (a, b) in zip(axes[0], pairs):
            ax.scatter([r["val"][a] for r in rows], [r["val"][b] for r in rows], c=[r["objective"] for r in rows],
                       cmap="viridis", s=20)
            ax.scatter([best["val"][a]], [best["val"][b]], s=140, marker="*", color="red", label="picked")
            ax.set_xlabel(f"{a} val acc")
            ax.set_ylabel(f"{b} val acc")
        axes[0][0].legend(loc="best")
        fig.suptitle("per-dataset trade-off across trials")
        fig.tight_layout()
        paths.append(out_dir / "tradeoff.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


def _seed_ties_request(cfg: DictConfig, members: dict) -> dict:
    """The seed's soup (conf/merge/seed_ties.yaml, composed at pick.seed_ties) over this sweep's members;
    empty when its weights do not name exactly these members."""
    seed = cfg.pick.seed_ties
    weights = {n: float(seed.weights[n]) for n in members if n in seed.weights}
    if set(weights) != set(members):
        return {}
    return {"method": "ties", "base": cfg.model.base_dir, "members": members, "weights": weights,
            "density": float(seed.density), "params": {"normalize": bool(seed.normalize)},
            "dtype": str(seed.dtype), "seed": None}


def pick_best(cfg: DictConfig) -> dict[str, Any]:

    sweep_dir = Path(cfg.sweep.dir)
    header, rows = ledger.read(sweep_dir)
    best = best_row(rows)
    request = best["request"]
    print(f"[rewardsoup] {len(rows)} trials in {sweep_dir}; best: trial {best['trial']} ({best['source']}) "
          f"val objective {best['objective']:.4f} {best['params']}", flush=True)
    soups = Path(cfg.paths.soups)
    picked = export(request, soups / str(cfg.pick.name))
    models = {n: p for n, p in header["members"].items()}
    models[str(cfg.pick.name)] = str(picked)
    seed_req = _seed_ties_request(cfg, header["members"])
    if seed_req:
        seed_dir = soups / f"seed_ties-{cfg.sweep.name}"
        if not (seed_dir / SOUP_CONFIG).exists():
            export(seed_req, seed_dir)
        models["seed_ties"] = str(seed_dir)
    plots = plot_sweep(rows, best, sweep_dir / "plots")
    eval_cfg = OmegaConf.create(plain(cfg))
    with open_dict(eval_cfg):
        eval_cfg.models, eval_cfg.split = models, "test"
        eval_cfg.max_length, eval_cfg.batch_size = cfg.trial.max_length, cfg.trial.batch_size
        eval_cfg.bootstrap = cfg.pick.bootstrap
        eval_cfg.baselines = {"uniform_soup": True, "ensemble": True}
        eval_cfg.references = {"base": True, "length": True}
    result = evaluate_models(eval_cfg)
    with start_run(cfg, job_type="pick", name=f"pick-{cfg.sweep.name}", group=str(cfg.sweep.name)) as tracker:
        for p in plots:
            tracker.image(f"sweep/{p.stem}", str(p))
        tracker.summary({"best_objective": best["objective"], **{f"best/{k}": v for k, v in best["params"].items()}})
    print(f"[rewardsoup] picked soup: {picked}\n[rewardsoup] plots: {', '.join(str(p) for p in plots)}", flush=True)
    return {"best": best, "soup": str(picked), "plots": [str(p) for p in plots], **result}
