"""evaluate.py's work: score members, soups and baselines on every configured dataset, print the table.

Models come from `evaluate.models` (name -> folder) or, when empty, every member under `paths.members`
and every soup under `paths.soups`. Baselines computed in the same run: the uniform soup (equal-weight
linear merge of the members, in memory) and the logit ensemble (mean of member rewards, no merge).
Reference rows: `base` (the untrained merge-ready base) and `length` (the length heuristic, its direction
chosen on val). The alternatives a user weighs against a soup are rows too: a multi-task member (trained on
a mix of the members' data: kind `multitask`), and for each of `averages` the linear average of several runs
(kind `average`, WARM) beside its runs (kind `run`) and their logit ensemble. Every comparison is paired on
the same rows with an interval (`rewardsoup.evaluation.comparisons`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rewardsoup.data.config import MIX
from rewardsoup.evaluation import tables
from rewardsoup.models.base import MEMBER_META, check_reward_model
from rewardsoup.models.loading import load_reward_model
from rewardsoup.core.errors import ConfigError, ModelError
from rewardsoup.scoring import config as scoring
from rewardsoup.scoring.evalsets import load_evalset
from rewardsoup.evaluation.comparisons import compare, verdicts
from rewardsoup.scoring.metrics import Scored, ensemble, metrics, score_evalsets
from rewardsoup.evaluation.lengths import length_bias, length_reference, plot_length_bias
from rewardsoup.evaluation.best_of_n import dataset_best_of_n
from rewardsoup.core.tracking import start_run
from rewardsoup.merging.in_memory import merge_in_memory
from rewardsoup.merging.on_disk import SOUP_CONFIG
from rewardsoup.merging.state_dicts import apply_state_dict, load_state_dict
from rewardsoup.evaluation.routed import ARROW, OUTPUTS, routed_rows, share_notes
from rewardsoup.routing.folder import SHARED as ROUTED_SHARED, is_routed


def model_kind(path: Path) -> str:
    """member, multitask (a member trained on a mix of sets), soup, routed (a routed soup), or model."""
    if is_routed(path):
        return "routed"
    if (path / MEMBER_META).exists():
        meta = json.loads((path / MEMBER_META).read_text())
        return "multitask" if (meta.get("data") or {}).get("adapter") == MIX else "member"
    return "soup" if (path / SOUP_CONFIG).exists() else "model"


def discover_models(cfg: DictConfig) -> dict[str, tuple[str, Path]]:
    """name -> (kind, folder). Explicit `models` win; otherwise members and soups found under paths."""
    if cfg.get("models"):
        found = {}
        for name, path in cfg.models.items():
            path = Path(str(path))
            try:
                check_reward_model(path / ROUTED_SHARED if is_routed(path) else path)
            except ModelError as exc:
                raise ModelError(f"models.{name}: {exc}") from exc
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


def uniform_soup(base_dir: Path, members: dict[str, Path]):
    """Equal-weight linear merge of the members, in memory, loaded into a resident base model."""

    sds = {name: load_state_dict(path) for name, path in members.items()}
    merged = merge_in_memory("linear", None, sds, weights={n: 1.0 for n in sds}, params={"normalize": True})
    return apply_state_dict(load_reward_model(base_dir), merged)


def _reference_length(cfg: DictConfig, datasets: list[str], scored_sets: list, tokenizer_dir: Path,
                      max_length: int) -> tuple[dict, list[str]]:
    """The length heuristic's Scored per dataset, its direction chosen on each val split."""
    out, notes = {}, []
    for ds, es in zip(datasets, scored_sets):
        val = load_evalset(ds, cfg.datasets[ds], "val", tokenizer_dir, max_length, cfg.paths.cache,
                           scoring.truncation(cfg))
        out[ds], info = length_reference(es, val)
        notes.append(f"length on {ds}: {info['rule']} (chosen on {info['chosen_on']})")
    return out, notes


def _routed(cfg: DictConfig, models: dict, evalsets: list, scored: dict, kinds: dict,
            notes: list[str]) -> dict[str, dict]:
    """Each routed soup's row and its output-mixing row into `scored` / `kinds` (a line for `notes` when the
    shared model's rewards are a soup row's); returns {name: {set: {who: mean gate}}}, the router's split of
    each set."""
    shares, soups = {}, {name: path for name, (kind, path) in models.items() if kind == "soup"}
    arrow = bool((cfg.get("references") or {}).get("arrow", True))
    for name, (kind, path) in models.items():
        if kind == "routed":
            rows = routed_rows(cfg, name, path, evalsets, scored, soups, arrow)
            scored[name], scored[name + OUTPUTS], shares[name] = rows.own, rows.mixed, rows.shares
            kinds[name + OUTPUTS] = "baseline"
            if rows.arrow is not None:
                scored[name + ARROW], kinds[name + ARROW] = rows.arrow, "baseline"
            if rows.shared_row:
                notes.append(f"{name + OUTPUTS}: the shared model's rewards are {rows.shared_row}'s (the same merge)")
            print(f"[rewardsoup] scored {name} (routed), {name + OUTPUTS} (its router on the members' outputs)"
                  + (f" and {name + ARROW} (peft's Arrow over its differences)" if rows.arrow is not None else ""),
                  flush=True)
    return shares


def evaluate_models(cfg: DictConfig) -> dict[str, Any]:
    """Score every model, the baselines and the reference rows on `cfg.split`; write and print the table."""
    models = discover_models(cfg)
    split, max_length, bs = str(cfg.split), int(cfg.max_length), int(cfg.batch_size)
    boot, share, cut = int(cfg.bootstrap), scoring.share_prefix(cfg), scoring.truncation(cfg)
    datasets = list(cfg.datasets.keys())
    kinds = {name: kind for name, (kind, _) in models.items()}
    first = next(iter(models.values()))[1]
    tokenizer_dir = first / ROUTED_SHARED if is_routed(first) else first
    evalsets = [load_evalset(ds, cfg.datasets[ds], split, tokenizer_dir, max_length, cfg.paths.cache, cut)
                for ds in datasets]
    scored: dict[str, dict[str, Scored]] = {}
    bon = cfg.get("best_of_n") or {}
    bon_results: dict[str, dict[str, dict]] = {}

    def run(name: str, model) -> None:
        with scoring.autocast(cfg):  # scoring.dtype (the pick's test table: pick.dtype)
            scored[name] = dict(zip(datasets, score_evalsets(model, evalsets, model.config.pad_token_id, bs, share)))
        if bon.get("enabled", False):  # best-of-n accuracy on pairwise sets (sampling.py)
            bon_results[name] = {ds: dataset_best_of_n(model, tokenizer_dir, cfg.datasets[ds], split, max_length, bs,
                                                       int(bon.get("min_candidates", 2)), boot, share, cut)
                                 for ds, es in zip(datasets, evalsets) if es.schema == "pairwise"}
        print(f"[rewardsoup] scored {name} ({kinds[name]})", flush=True)

    for name in cfg.get("runs") or []:
        if name not in kinds:
            raise ConfigError(f"runs: '{name}' is not among the models {sorted(kinds)}")
        kinds[name] = "run"  # a run outside the soup: not a specialist, not in the ensemble or uniform soup
    for name, (kind, path) in models.items():
        if kind != "routed":
            run(name, load_reward_model(path))
    reused: list[str] = []
    shares = _routed(cfg, models, evalsets, scored, kinds, reused)  # after the members: their rewards are reused
    notes = [line for name, by_set in shares.items() for line in share_notes(name, by_set)] + reused
    members = {n: p for n, (k, p) in models.items() if kinds[n] == "member"}
    base_dir = Path(cfg.model.base_dir)
    averages = {str(k): [str(x) for x in v] for k, v in (cfg.get("averages") or {}).items()}
    for row, names in averages.items():  # WARM: runs averaged linearly, and their logit ensemble
        unknown = [n for n in names if n not in models]
        if unknown:
            raise ConfigError(f"averages.{row}: {unknown} not among the models {sorted(models)}")
        kinds[row], kinds[f"{row}_ensemble"] = "average", "baseline"
        run(row, uniform_soup(base_dir, {n: models[n][1] for n in names}))
        scored[f"{row}_ensemble"] = {ds: ensemble([scored[n][ds] for n in names]) for ds in datasets}
    baselines, references = cfg.get("baselines") or {}, cfg.get("references") or {}
    if len(members) >= 2 and baselines.get("ensemble", True):
        kinds["logit_ensemble"] = "baseline"
        scored["logit_ensemble"] = {ds: ensemble([scored[m][ds] for m in members]) for ds in datasets}
    if len(members) >= 2 and baselines.get("uniform_soup", True) and base_dir.exists():
        kinds["uniform_soup"] = "baseline"
        run("uniform_soup", uniform_soup(base_dir, members))
    if references.get("base", True) and base_dir.exists() and "base" not in kinds:
        kinds["base"] = "reference"
        run("base", load_reward_model(base_dir))
    if references.get("length", True) and "length" not in kinds:
        kinds["length"] = "reference"
        scored["length"], length_notes = _reference_length(cfg, datasets, evalsets, tokenizer_dir, max_length)
        notes = length_notes + notes
    return {**_report(cfg, split, datasets, models, scored, kinds, bon_results, notes, averages, shares),
            "routed_shares": shares}


def _own_datasets(models: dict, datasets: list[str]) -> dict[str, list[str]]:
    """member -> the eval sets it was trained on (its data's name), when they are among `datasets`."""
    own = {}
    for name, (kind, path) in models.items():
        meta_file = Path(path) / MEMBER_META
        if kind == "member" and meta_file.exists():
            data = json.loads(meta_file.read_text()).get("data") or {}
            own[name] = [ds for ds in datasets if ds == data.get("name")]
    return own


def _report(cfg: DictConfig, split: str, datasets: list[str], models: dict, scored: dict, kinds: dict,
            bon_results: dict, notes: list[str], averages: dict, shares: dict) -> dict[str, Any]:
    """Metrics, paired comparisons and length bias of every scored model -> table, files, W&B."""
    boot = int(cfg.bootstrap)
    results = {name: {ds: {**metrics(s, boot), **length_bias(s), **bon_results.get(name, {}).get(ds, {})}
                      for ds, s in by_ds.items()} for name, by_ds in scored.items()}
    for name, by_ds in compare(scored, results, kinds, boot).items():
        for ds, fields in by_ds.items():
            results[name][ds].update(fields)
    table_rows = tables.rows(results, kinds)
    found = verdicts(scored, kinds, averages, _own_datasets(models, datasets), boot)
    title = f"Held-out accuracy on the {split} splits"
    out_dir = Path(cfg.paths.reports) / f"evaluate-{split}"
    md = tables.write_report(out_dir, table_rows, datasets, title,
                             {"split": split, "models": {n: str(p) for n, (_, p) in models.items()}, "notes": notes,
                              "verdicts": found, "averages": averages, "routed_shares": shares},
                             notes, {"length_bias.png": lambda p: plot_length_bias(results, datasets, p)}, found)
    print("\n" + md, flush=True)
    print(f"[rewardsoup] report: {out_dir}/table.md (+ results.csv, results.json, length_bias.png)", flush=True)
    with start_run(cfg, job_type="evaluate", name=f"evaluate-{split}") as tracker:
        cols = list(dict.fromkeys(k for r in table_rows for k in r))
        tracker.table(f"eval/{split}", cols, [[r.get(c) for c in cols] for r in table_rows])
        if found:  # every paired comparison with its verdict: soup vs multi-task / ensemble, averages vs runs
            keys = list(found[0])
            tracker.table(f"eval/{split}/verdicts", keys, [[v[k] for k in keys] for v in found])
        tracker.image(f"eval/{split}/length_bias", str(out_dir / "length_bias.png"))
        tracker.summary({f"{r['model']}/mean": r["mean"] for r in table_rows})
    return {"rows": table_rows, "report": str(out_dir), "verdicts": found}
