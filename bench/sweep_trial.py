"""Per-trial cost: our in-memory trial vs the seed's way (mergekit-yaml to disk, reload, evaluate).

Same members (the three demo members under --root, from `make demo`), same val sets, TIES at density 1.0
and 0.5. Ours: merge state dicts held in memory into a resident model (fast exact trimming), score the
cached tokenized val sets. Seed: write the mergekit YAML, run the `mergekit-yaml` CLI, load the soup from
disk, tokenize and score the same val texts. Also: the share of our trial that is not forward passes,
the largest score difference between the two soups, and trimming alone (ours vs mergekit's argsort).

    .venv/bin/python bench/sweep_trial.py [--root outputs] [--repeats 2]

Last line: JSON {"speedup_d1", "speedup_d05", "overhead_d1", "overhead_d05", "max_abs_score_diff",
"trim_speedup_vs_mergekit"}.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from rewardsoup.merging import trim  # noqa: E402
from rewardsoup.scoring.evalsets import build_evalset, load_evalset  # noqa: E402
from rewardsoup.models.loading import load_reward_model  # noqa: E402
from rewardsoup.scoring.metrics import score_evalsets  # noqa: E402
from rewardsoup.merging.on_disk import mergekit_config  # noqa: E402
from rewardsoup.pipeline.run import compose_cfg  # noqa: E402
from rewardsoup.merging.soup import merge_request  # noqa: E402
from rewardsoup.sweep.resident import resident  # noqa: E402


def ours(cfg, request, evalsets):
    prepared, model = resident(request["base"], request["members"])
    start = time.perf_counter()
    prepared.apply(model, request)
    mid = time.perf_counter()
    scores = [s.rewards for s in score_evalsets(model, evalsets, model.config.pad_token_id, 32)]
    end = time.perf_counter()
    return end - start, end - mid, np.concatenate(scores)


def seed(cfg, request, data_cfgs, pipeline_eval: bool):
    """mergekit-yaml CLI -> load from disk -> evaluate; the seed evaluated with `pipeline`, text by text."""
    from transformers import AutoTokenizer, pipeline

    config = mergekit_config(request["method"], request["base"], request["members"], request["weights"],
                             request["density"], request["params"], "float32")
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        (Path(tmp) / "soup.yml").write_text(yaml.safe_dump(config))
        subprocess.run([str(Path(sys.executable).parent / "mergekit-yaml"), f"{tmp}/soup.yml", f"{tmp}/soup"],
                       check=True, capture_output=True)
        model = load_reward_model(Path(tmp) / "soup")
        tok = AutoTokenizer.from_pretrained(f"{tmp}/soup")
        evalsets = [build_evalset(n, d, "val", tok, int(cfg.trial.max_length)) for n, d in data_cfgs.items()]
        if pipeline_eval:
            clf = pipeline("text-classification", model=model, tokenizer=tok, function_to_apply="none")
            scores = [np.array([clf(tok.decode(ids))[0]["score"] for ids in es.ids]) for es in evalsets]
        else:
            scores = [s.rewards for s in score_evalsets(model, evalsets, model.config.pad_token_id, 32)]
        return time.perf_counter() - start, np.concatenate(scores)


def trim_speed(request) -> tuple[float, float, float]:
    """Magnitude trims of every member delta at density 0.5: (mergekit's argsort s, our per-trial s, once s).

    Ours is what trials run: mergekit's order computed once per member and tensor (`once`), then a
    keep-mask `rank < k` per trial. Checked equal to mergekit's trim on every tensor.
    """
    prepared, _ = resident(request["base"], request["members"])
    base_sd, member_sds = prepared.base_sd, prepared.member_sds
    deltas = [member_sds[n][k] - base_sd[k] for n in member_sds for k in base_sd if base_sd[k].ndim == 2]
    start = time.perf_counter()
    refs = [trim.magnitude(d, 0.5, fast=False) for d in deltas]
    mergekit_s = time.perf_counter() - start
    start = time.perf_counter()
    ranks = [trim.magnitude_rank(d) for d in deltas]
    once_s = time.perf_counter() - start
    start = time.perf_counter()
    masks = [r < max(1, int(0.5 * d.numel())) for r, d in zip(ranks, deltas)]
    ours = [d * m.reshape(d.shape) for d, m in zip(deltas, masks)]
    per_trial_s = time.perf_counter() - start
    assert all(torch.equal(a, b) for a, b in zip(ours, refs)), "trim differs from mergekit's"
    return mergekit_s, per_trial_s, once_s


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--root", default=str(ROOT / "outputs"))
    p.add_argument("--repeats", type=int, default=2)
    a = p.parse_args()
    cfg = compose_cfg("merge", [f"paths.root={a.root}", "logger=none"])
    for n, path in cfg.members.items():
        if not (Path(path) / "model.safetensors").exists():
            sys.exit(f"member {n} missing at {path}: run `make demo` first (or pass --root)")
    results, diffs = {}, []
    for density in (1.0, 0.5):
        request = merge_request(compose_cfg("merge", [f"paths.root={a.root}", f"merge.density={density}"]))
        evalsets = [load_evalset(n, d, "val", request["base"], int(cfg.trial.max_length), cfg.paths.cache)
                    for n, d in cfg.datasets.items()]
        first_s = ours(cfg, request, evalsets)[0]  # warm: loads members (d=0.5: trim orders) once, as a sweep does
        runs = [ours(cfg, request, evalsets) for _ in range(a.repeats)]
        trial_s = min(r[0] for r in runs)
        forward_s = min(r[1] for r in runs)
        seed_s, seed_scores = seed(cfg, request, cfg.datasets, pipeline_eval=True)
        disk_s, disk_scores = seed(cfg, request, cfg.datasets, pipeline_eval=False)
        diffs.append(float(np.max(np.abs(runs[0][2] - disk_scores))))
        results[density] = {"first_s": first_s, "ours_s": trial_s, "seed_s": seed_s, "disk_s": disk_s, "speedup": seed_s / trial_s,
                            "speedup_vs_disk": disk_s / trial_s, "overhead": 1 - forward_s / trial_s}
    mk_trim_s, trim_s, order_s = trim_speed(request)
    trim_x = mk_trim_s / trim_s
    print("\nseed = mergekit-yaml + reload + pipeline text by text; disk = mergekit-yaml + reload + our batched scorer")
    print("ours = a trial after the first; first = the process's first trial at that density (loads, orders)")
    print(f"{'density':<9}{'seed s':>8}{'disk s':>8}{'first s':>8}{'ours s':>8}{'vs seed':>9}{'vs disk':>9}"
          f"{'non-forward':>13}")
    for d, r in results.items():
        print(f"{d:<9}{r['seed_s']:>8.2f}{r['disk_s']:>8.2f}{r['first_s']:>8.2f}{r['ours_s']:>8.2f}{r['speedup']:>8.1f}x"
              f"{r['speedup_vs_disk']:>8.1f}x{100 * r['overhead']:>12.1f}%")
    print(f"max |score(in-memory) - score(mergekit on disk)|: {max(diffs):.2e}")
    print(f"magnitude trim of every 2-D member delta at density 0.5: mergekit {mk_trim_s:.2f}s, ours per trial "
          f"{trim_s:.2f}s ({trim_x:.1f}x), plus {order_s:.2f}s once per sweep process for the orders")
    print(json.dumps({"speedup_d1": round(results[1.0]["speedup"], 2), "speedup_d05": round(results[0.5]["speedup"], 2),
                      "overhead_d1": round(results[1.0]["overhead"], 3), "overhead_d05": round(results[0.5]["overhead"], 3),
                      "max_abs_score_diff": max(diffs), "trim_speedup_vs_mergekit": round(trim_x, 2),
                      "trim_order_once_s": round(order_s, 2),
                      "speedup_vs_disk_d1": round(results[1.0]["speedup_vs_disk"], 2),
                      "speedup_vs_disk_d05": round(results[0.5]["speedup_vs_disk"], 2)}))


if __name__ == "__main__":
    main()
