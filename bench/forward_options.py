"""CPU forward-pass options for scoring, each measured alone against fp32 on the same rows (issue #29 item 2).

One reward model (a member folder), the val splits of a dataset group tokenized as a sweep trial loads them
(`load_evalset`, max_length 256, the model folder's tokenizer), all sets scored together through the one
scoring path (`score_evalsets`), once per variant:
- fp32: the reference (the default thread count);
- bf16_autocast: `precision.autocast("bf16", "cpu")`, bf16 matmuls over the fp32 weights (scoring.dtype=bf16);
- bf16_weights: a deep copy of the model cast to bf16 (weights and activations bf16);
- int8_dynamic: `quantize_dynamic` of a copy's `nn.Linear` layers to qint8 (fp32 elsewhere; GPT-2 blocks use
  transformers' Conv1D, not nn.Linear, so on a GPT-2 model only the head is quantized: see `quantized`);
- fp32_threads1, bf16_autocast_threads1: the same with `torch.set_num_threads(1)` (restored afterwards);
- ipex: `ipex.optimize` (oneDNN fusion) of a copy, or "not installed"; the plain oneDNN flags
  (`torch.backends.mkldnn`) are already on for every variant;
- compile: `torch.compile(model, dynamic=True)`, run last (its compile workers stay behind); its first
  pass (compile included) is `first_s`, its steady state `best_s`; a failure is recorded and skipped;
- fp32_recheck: fp32 again just before compile, so a drifting machine shows in the table.
Each variant: one warm-up pass (`first_s`), then the best of `--repeats` timed passes (`best_s`). Per variant:
texts/s, speed-up over fp32, the largest |reward - fp32 reward|, the share of rows whose credit (`row_credit`)
equals fp32's, and the accuracy difference from fp32 in points per set.

    .venv/bin/python bench/forward_options.py [--model DIR] [--datasets demo|real] [--rows N] [--batch 32]
                                              [--repeats 2] [--root DIR] [--max-length 256] [--skip NAME ...]

Last line: JSON {"variants": {name: {"texts_per_s", "speedup", "max_abs_diff", "row_agreement",
"acc_diff_points": {set: points}, "first_s", "best_s", "threads", ...} or {"error"} or {"skipped"}},
"rows", "texts", "model", ...}.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "src"))

from rewardsoup.core import precision  # noqa: E402
from rewardsoup.models.loading import load_reward_model  # noqa: E402
from rewardsoup.pipeline.recipes import compose_cfg  # noqa: E402
from rewardsoup.scoring import config as scoring  # noqa: E402
from rewardsoup.scoring.evalsets import load_evalset  # noqa: E402
from rewardsoup.scoring.metrics import row_credit, score_evalsets, take_rows  # noqa: E402


def load_sets(group: str, root: Path, model_dir: Path, max_length: int, rows: int) -> list:
    """The val split of every dataset in conf/datasets/<group>, as a sweep trial loads them; first `rows` rows."""
    if group == "real" and not SHARED.exists():
        sys.exit(f"--datasets real needs {SHARED}")
    cfg = compose_cfg("merge", [f"datasets={group}", f"paths.root={root}"])
    out = []
    for name in cfg.datasets:
        es = load_evalset(name, cfg.datasets[name], "val", model_dir, max_length, cfg.paths.cache,
                          scoring.truncation(cfg))
        out.append(take_rows(es, np.arange(min(rows, es.n))) if rows else es)
    return out


def quantized(model) -> str:
    """'k/n Linear, p% of params': how much of the model dynamic int8 actually covers."""
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    total = sum(p.numel() for p in model.parameters())
    covered = sum(m.weight.numel() for m in linears)
    return f"{len(linears)} Linear, {100 * covered / max(1, total):.1f}% of params"


def ipex_model(model):
    """`ipex.optimize` of a copy (oneDNN fusion); ImportError when intel_extension_for_pytorch is absent."""
    import intel_extension_for_pytorch as ipex  # noqa: F401  (probably absent)

    return ipex.optimize(copy.deepcopy(model).eval(), dtype=torch.float32)


def variants(model) -> list[tuple[str, object, object, int | None, str]]:
    """(name, build -> model, context factory, threads or None (default), note), in the order they run."""
    bf16 = lambda: precision.autocast("bf16", "cpu")  # noqa: E731
    plain = contextlib.nullcontext
    same = lambda: model  # noqa: E731
    int8 = lambda: torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear},  # noqa: E731
                                                          dtype=torch.qint8)
    return [("fp32", same, plain, None, "reference"),
            ("bf16_autocast", same, bf16, None, "autocast over fp32 weights"),
            ("bf16_weights", lambda: copy.deepcopy(model).to(torch.bfloat16), plain, None, "bf16 copy"),
            ("int8_dynamic", int8, plain, None, quantized(model)),
            ("fp32_threads1", same, plain, 1, "set_num_threads(1)"),
            ("bf16_autocast_threads1", same, bf16, 1, "set_num_threads(1)"),
            ("ipex", lambda: ipex_model(model), plain, None, "ipex.optimize fp32"),
            ("fp32_recheck", same, plain, None, "fp32 again: how far the reference drifts"),
            ("compile", lambda: torch.compile(model, dynamic=True), plain, None, "first_s includes compiling")]


def timed(model, sets: list, pad_id: int, batch: int, repeats: int, ctx) -> tuple[float, float, list]:
    """(warm-up wall, best of `repeats` walls, the last pass's Scored list)."""
    walls = []
    for _ in range(1 + max(1, repeats)):
        start = time.perf_counter()
        with ctx():
            scored = score_evalsets(model, sets, pad_id, batch)
        walls.append(time.perf_counter() - start)
    return walls[0], min(walls[1:]), scored


def compare(scored: list, ref: list) -> dict:
    """Largest |reward difference|, share of rows with fp32's credit, accuracy difference (points) per set."""
    diff = max((float(np.abs(s.rewards - r.rewards).max()) for s, r in zip(scored, ref) if len(r.rewards)),
               default=0.0)
    credits = [(row_credit(s.evalset, s.rewards), row_credit(r.evalset, r.rewards)) for s, r in zip(scored, ref)]
    rows = sum(len(c) for c, _ in credits)
    agree = sum(int((c == rc).sum()) for c, rc in credits) / max(1, rows)
    acc = {s.evalset.name: round(100 * (float(c.mean()) - float(rc.mean())), 3) if len(c) else 0.0
           for s, (c, rc) in zip(scored, credits)}
    return {"max_abs_diff": diff, "row_agreement": round(agree, 6), "acc_diff_points": acc}


def run_variant(spec, sets: list, pad_id: int, batch: int, repeats: int, ref: dict | None) -> dict:
    """One variant, timed alone; {"error": ...} or {"skipped": ...} instead of numbers when it cannot run."""
    name, build, ctx, threads, note = spec
    default = torch.get_num_threads()
    try:
        model = build()
    except ImportError as exc:
        return {"skipped": f"not installed ({exc})", "note": note}
    except Exception as exc:  # noqa: BLE001  (a bench records what fails and goes on)
        return {"error": f"{type(exc).__name__}: {exc}"[:500], "note": note}
    try:
        torch.set_num_threads(threads or default)
        first, best, scored = timed(model, sets, pad_id, batch, repeats, ctx)
    except Exception as exc:  # noqa: BLE001
        return {"error": f"{type(exc).__name__}: {exc}"[:500], "note": note}
    finally:
        torch.set_num_threads(default)
    texts = sum(len(es.ids) for es in sets)
    out = {"first_s": round(first, 4), "best_s": round(best, 4), "texts_per_s": round(texts / best, 2),
           "threads": threads or default, "note": note, "scored": scored}
    if ref is not None and "scored" in ref:
        out["speedup"] = round(ref["best_s"] / best, 3)
        out.update(compare(scored, ref["scored"]))
    elif name == "fp32":
        out.update({"speedup": 1.0, "max_abs_diff": 0.0, "row_agreement": 1.0,
                    "acc_diff_points": {es.name: 0.0 for es in sets}})
    return out


def table(results: dict) -> None:
    """The markdown table: one row per variant."""
    print("| variant | threads | first s | best s | texts/s | speed-up | max abs diff | rows agree | "
          "acc diff (points) per set | note |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for name, r in results.items():
        if "best_s" not in r:
            print(f"| {name} | | | | | | | | | {r.get('skipped') or 'error: ' + r['error'][:120]} |")
            continue
        acc = ", ".join(f"{k} {v:+.1f}" for k, v in r["acc_diff_points"].items())
        print(f"| {name} | {r['threads']} | {r['first_s']:.2f} | {r['best_s']:.2f} | {r['texts_per_s']:.1f} | "
              f"{r['speedup']:.2f}x | {r['max_abs_diff']:.1e} | {100 * r['row_agreement']:.1f}% | {acc} | "
              f"{r['note']} |")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--root", default=os.environ.get("REWARDSOUP_OUTPUTS", str(ROOT / "outputs")))
    p.add_argument("--model", default=None, help="member folder (default: <root>/members/demo_harmless-pairwise)")
    p.add_argument("--datasets", default="demo", choices=("demo", "real"))
    p.add_argument("--rows", type=int, default=0, help="first N val rows per set (0: all)")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--skip", nargs="*", default=[], help="variant names not to run (e.g. compile: ~1 min to compile)")
    a = p.parse_args()
    root = Path(a.root).resolve()
    path = Path(a.model).resolve() if a.model else root / "members" / "demo_harmless-pairwise"
    model = load_reward_model(path)
    pad_id = model.config.pad_token_id
    sets = load_sets(a.datasets, root, path, a.max_length, a.rows)
    results: dict[str, dict] = {}
    for spec in variants(model):
        if spec[0] in a.skip and spec[0] != "fp32":
            results[spec[0]] = {"skipped": "--skip", "note": spec[4]}
            continue
        results[spec[0]] = run_variant(spec, sets, pad_id, a.batch, a.repeats, results.get("fp32"))
    rows, texts = sum(es.n for es in sets), sum(len(es.ids) for es in sets)
    print(f"\nmodel {path}, datasets={a.datasets} ({', '.join(f'{es.name} {es.n}' for es in sets)}), {rows} rows, "
          f"{texts} texts, batch {a.batch}, max_length {a.max_length}, best of {a.repeats} after one warm-up, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, bf16 native: {precision.cpu_bf16_native()}, "
          f"mkldnn enabled: {torch.backends.mkldnn.enabled}")
    table(results)
    variants_out = {name: {k: v for k, v in r.items() if k != "scored"} for name, r in results.items()}
    print(json.dumps({"variants": variants_out, "rows": rows, "texts": texts, "model": str(path),
                      "datasets": a.datasets, "batch": a.batch, "repeats": a.repeats,
                      "threads": torch.get_num_threads(), "bf16_native": precision.cpu_bf16_native()}))


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()
