"""evaluate.py's work: score members, soups and baselines on every configured dataset, print the table.

Models come from `evaluate.models` (name -> folder) or, when empty, every member under `paths.members`
and every soup under `paths.soups`. Baselines computed in the same run: the uniform soup (equal-weight
linear merge of the members, in memory) and the logit ensemble (mean of member rewards, no merge).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rewardsoup import tables
from rewardsoup.base import check_reward_model
from rewardsoup.errors import ConfigError
from rewardsoup.evalsets import load_evalset
from rewardsoup.evaluation import Scored, ensemble, metrics, score_evalsets
from rewardsoup.sampling import dataset_best_of_n
from rewardsoup.tracking import start_run

MEMBER_FILE, SOUP_FILE = "rewardsoup_member.json", "mergekit_config.yml"


def model_kind(path: Path) -> str:
    if (path / MEMBER_FILE).exists():
        return "member"
    return "soup" if (path / SOUP_FILE).exists() else "model"


def discover_models(cfg: DictConfig) -> dict[str, tuple[str, Path]]:
    """name -> (kind, folder). Explicit `models` win; otherwise members and soups found under paths."""
    if cfg.get("models"):
        found = {}
        for name, path in cfg.models.items():
            path = Path(str(path))
            check_reward_model(path)
            found[str(name)] = (model_kind(path), path)
        return found
    found = {}
    for root in (Path(cfg.paths.members), Path(cfg.paths.soups)):
        for path in sorted(root.glob("*")) if root.exists() else []:
            if path.is_dir() and not path.name.startswith(".") and model_kind(path) != "model":
                found[path.name] = (model_kind(path), path)
    if not found:
        raise ConfigError(f"no models to evaluate: none given in `models` and none found under "
                          f"{cfg.paths.members} or {cfg.paths.soups} (train members first)")
    return found


def load_reward_model(path: Path):
    import torch
    from transformers import AutoModelForSequenceClassification

    check_reward_model(path)
    return AutoModelForSequenceClassification.from_pretrained(str(path), dtype=torch.float32).eval()


def uniform_soup(base_dir: Path, members: dict[str, Path]):
    """Equal-weight linear merge of the members, in memory, loaded into a resident base model."""
    from rewardsoup.merging import apply_state_dict, load_state_dict, merge_in_memory

    sds = {name: load_state_dict(path) for name, path in members.items()}
    merged = merge_in_memory("linear", None, sds, weights={n: 1.0 for n in sds}, params={"normalize": True})
    return apply_state_dict(load_reward_model(base_dir), merged)


def evaluate_models(cfg: DictConfig) -> dict[str, Any]:
    models = discover_models(cfg)
    split, max_length, bs = str(cfg.split), int(cfg.max_length), int(cfg.batch_size)
    boot = int(cfg.bootstrap)
    datasets = list(cfg.datasets.keys())
    results: dict[str, dict[str, dict]] = {}
    kinds = {name: kind for name, (kind, _) in models.items()}
    member_scores: dict[str, list[Scored]] = {ds: [] for ds in datasets}
    tokenizer_dir = next(iter(models.values()))[1]
    bon = cfg.get("best_of_n") or {}

    def run(name: str, model) -> None:
        results[name] = {}
        evalsets = [load_evalset(ds, cfg.datasets[ds], split, tokenizer_dir, max_length, cfg.paths.cache)
                    for ds in datasets]
        for ds, es, scored in zip(datasets, evalsets, score_evalsets(model, evalsets, model.config.pad_token_id, bs)):
            results[name][ds] = metrics(scored, boot)
            if bon.get("enabled", False) and es.schema == "pairwise":  # best-of-n accuracy (sampling.py)
                results[name][ds].update(dataset_best_of_n(model, tokenizer_dir, cfg.datasets[ds], split, max_length,
                                                           bs, int(bon.get("min_candidates", 2)), boot))
            if kinds[name] == "member":
                member_scores[ds].append(scored)
        print(f"[rewardsoup] scored {name} ({kinds[name]})", flush=True)

    for name, (kind, path) in models.items():
        run(name, load_reward_model(path))
    members = {n: p for n, (k, p) in models.items() if k == "member"}
    if len(members) >= 2 and cfg.get("baselines", {}).get("ensemble", True):
        results["logit_ensemble"] = {ds: metrics(ensemble(member_scores[ds]), boot) for ds in datasets}
        kinds["logit_ensemble"] = "baseline"
    base_dir = Path(cfg.model.base_dir)
    if len(members) >= 2 and cfg.get("baselines", {}).get("uniform_soup", True) and base_dir.exists():
        kinds["uniform_soup"] = "baseline"
        run("uniform_soup", uniform_soup(base_dir, members))

    table_rows = tables.rows(results, kinds)
    for row in table_rows:  # best-of-n columns, where computed: <dataset>_bon, _bon_lo, _bon_hi, _bon_chance
        for ds in datasets:
            for key in ("bon", "bon_lo", "bon_hi", "bon_chance"):
                if key in results[row["model"]][ds]:
                    row[f"{ds}_{key}"] = results[row["model"]][ds][key]
    title = f"Held-out accuracy on the {split} splits"
    out_dir = Path(cfg.paths.reports) / f"evaluate-{split}"
    md = tables.write_report(out_dir, table_rows, datasets, title,
                             {"split": split, "models": {n: str(p) for n, (_, p) in models.items()}})
    print("\n" + md, flush=True)
    print(f"[rewardsoup] report: {out_dir}/table.md (+ results.csv, results.json)", flush=True)
    with start_run(cfg, job_type="evaluate", name=f"evaluate-{split}") as tracker:
        cols = list(table_rows[0].keys()) if table_rows else []
        tracker.table(f"eval/{split}", cols, [[r.get(c) for c in cols] for r in table_rows])
        tracker.summary({f"{r['model']}/mean": r["mean"] for r in table_rows})
    return {"rows": table_rows, "report": str(out_dir)}
