"""LoRA members merged in adapter space (peft) against full space (mergekit), on the same members (issue #32 item 3).

The reference is a soup of LoRA members exported by the pipeline (`--soup`, e.g. `--recipe demo_lora`'s pick
`outputs/soups/best-optuna-ties-lora`): its mergekit YAML names the members, their weights and density. Each
row merges those members with those settings:
- `mergekit` (the reference): the members' full weights (each adapter already applied) merged by mergekit's
  `run_merge`, re-run here from the soup's YAML into a temporary folder so its time and memory are measured
  like the others' (the bytes it writes are the soup's own: the table checks that the scores agree);
- `peft_<combination>` for each `--combinations` (peft's `add_weighted_adapter`: ties, dare_linear, svd, cat,
  linear), the score heads merged by the matching full-space method (merging/adapter_space.py).
Each row is scored on the test split of every dataset of `--datasets` through the one scoring path
(`load_evalset` + `score_evalsets`, fp32), accuracy with its interval and the paired difference from
`mergekit` on the same rows (`rewardsoup.scoring.stats.paired`), plus the merge's wall time and peak resident
memory the merge added (VmHWM, reset just before it, minus the resident memory then). Run alone: timings on 2 cores are a measure of the load otherwise.

    .venv/bin/python bench/lora_merge.py --soup outputs/soups/best-optuna-ties-lora [--datasets demo]
        [--combinations ties,dare_linear,svd,cat] [--root outputs]

Last line: JSON {"rows": {name: {"acc": {set: a}, "vs_mergekit": {set: {diff, lo, hi, verdict}}, "merge_s",
"peak_extra_mb"}}, "members", "weights", "density", "n": {set: rows}}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rewardsoup.evaluation.comparisons import verdict  # noqa: E402
from rewardsoup.merging.adapter_space import COMBINATIONS, merge_adapters  # noqa: E402
from rewardsoup.models.loading import load_reward_model  # noqa: E402
from rewardsoup.pipeline.recipes import compose_cfg  # noqa: E402
from rewardsoup.scoring import config as scoring  # noqa: E402
from rewardsoup.scoring import stats  # noqa: E402
from rewardsoup.scoring.evalsets import load_evalset  # noqa: E402
from rewardsoup.scoring.metrics import row_credit, score_evalsets  # noqa: E402


def _status_mb(key: str) -> float | None:
    try:
        line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(key + ":"))
    except (OSError, StopIteration):
        return None
    return int(line.split()[1]) / 1024


def _timed(build):
    """(model, wall s, the memory the merge added at its peak in MB: VmHWM, reset just before, minus the RSS then;
    the process keeps what earlier rows allocated, so a plain peak would grow row by row)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux: restart the peak resident memory (VmHWM)
    except OSError:
        pass
    before = _status_mb("VmRSS")
    start = time.perf_counter()
    model = build()
    wall, peak = time.perf_counter() - start, _status_mb("VmHWM")
    return model, wall, None if peak is None or before is None else peak - before


def _mergekit(soup_yaml: dict):
    """mergekit's run_merge of the soup's own YAML into a temporary folder, loaded back."""
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    with tempfile.TemporaryDirectory() as tmp:
        run_merge(MergeConfiguration.model_validate(soup_yaml), tmp,
                  options=MergeOptions(copy_tokenizer=False, write_model_card=False, quiet=True, random_seed=0))
        return load_reward_model(tmp)


def _sets(group: str, root: Path, tokenizer_dir: Path) -> list:
    cfg = compose_cfg("merge", [f"datasets={group}", f"paths.root={root}"])
    return [load_evalset(name, cfg.datasets[name], "test", tokenizer_dir, int(cfg.trial.max_length), cfg.paths.cache,
                         scoring.truncation(cfg)) for name in cfg.datasets]


def _vs(credit, reference) -> dict:
    d = stats.paired(credit, reference)
    return {**{k: round(v, 4) for k, v in d.items()}, "verdict": verdict(d)}


def _args():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--soup", required=True, help="a picked soup of LoRA members (its mergekit_config.yml)")
    p.add_argument("--datasets", default="demo", choices=("demo", "real"))
    p.add_argument("--combinations", default="ties,dare_linear,svd,cat", help=f"comma list of {list(COMBINATIONS)}")
    p.add_argument("--root", default=str(ROOT / "outputs"), help="paths.root (its cache holds the tokenized sets)")
    a = p.parse_args()
    a.combinations = [c.strip() for c in a.combinations.split(",") if c.strip()]
    bad = [c for c in a.combinations if c not in COMBINATIONS]
    if bad:
        sys.exit(f"error: --combinations: unknown {bad}; expected some of {list(COMBINATIONS)}")
    return a


def main() -> None:
    a = _args()
    soup = Path(a.soup).resolve()
    if not (soup / "mergekit_config.yml").is_file():
        sys.exit(f"error: --soup {soup}: no mergekit_config.yml there (a soup exported by merge.py or the pick)")
    spec = yaml.safe_load((soup / "mergekit_config.yml").read_text())
    base = Path(spec["base_model"])
    members = {Path(m["model"]).name: m["model"] for m in spec["models"]}
    weights = {Path(m["model"]).name: float(m["parameters"]["weight"]) for m in spec["models"]}
    density = next((float(m["parameters"]["density"]) for m in spec["models"] if "density" in m["parameters"]), None)
    sets = _sets(a.datasets, Path(a.root).resolve(), soup)
    builds = {"mergekit": lambda: _mergekit(spec)}
    for c in a.combinations:
        builds[f"peft_{c}"] = lambda c=c: merge_adapters(base, members, weights, c, density)
    rows, credits = {}, {}
    for name, build in builds.items():
        model, wall, peak = _timed(build)
        scored = score_evalsets(model, sets, model.config.pad_token_id, 32)
        credits[name] = {s.evalset.name: row_credit(s.evalset, s.rewards) for s in scored}
        rows[name] = {"acc": {k: round(float(v.mean()), 4) for k, v in credits[name].items()},
                      "merge_s": round(wall, 2), "peak_extra_mb": None if peak is None else round(peak)}
        print(f"[bench] {name}: merged in {wall:.1f}s, peak +{peak or 0:.0f} MB; "
              + ", ".join(f"{k} {v:.3f}" for k, v in rows[name]["acc"].items()), flush=True)
        del model
    for name, r in rows.items():
        r["vs_mergekit"] = None if name == "mergekit" else {k: _vs(credits[name][k], credits["mergekit"][k])
                                                             for k in credits[name]}
    names = list(credits["mergekit"])
    print(f"\nLoRA members {', '.join(members)} (weights {', '.join(f'{w:.3f}' for w in weights.values())}, density "
          f"{density}); test rows: " + ", ".join(f"{k} n={len(v)}" for k, v in credits["mergekit"].items()))
    print("| merge | " + " | ".join(names) + " | merge s | peak extra MB |")
    print("|---|" + "---|" * (len(names) + 2))
    for name, r in rows.items():
        cells = [f"{r['acc'][k]:.3f}" + ("" if r["vs_mergekit"] is None else
                 f" ({100 * r['vs_mergekit'][k]['diff']:+.1f} [{100 * r['vs_mergekit'][k]['lo']:+.1f}, "
                 f"{100 * r['vs_mergekit'][k]['hi']:+.1f}] {r['vs_mergekit'][k]['verdict']})") for k in names]
        print(f"| {name} | " + " | ".join(cells) + f" | {r['merge_s']:.1f} | {r['peak_extra_mb']} |")
    print("(+x.x [lo, hi]) = points against mergekit's merge of the same members, paired on the same rows.")
    print(json.dumps({"rows": rows, "members": members, "weights": weights, "density": density,
                      "n": {k: len(v) for k, v in credits["mergekit"].items()}}))


if __name__ == "__main__":
    main()
