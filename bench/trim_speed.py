"""Time mergekit's TIES magnitude trim against rewardsoup.merging.trim on a ~42M-parameter random tensor set.

The set has the shapes of SmolLM2 cut to 4 layers (a 49152x576 embedding plus 4 Llama blocks). Two kinds
of deltas: "gaussian" (fp32 N(0,1) values: ties are rare) and "finetune" (fp32 (base + step) - base, with
base on the bf16 grid: deltas are quantised, so equal magnitudes straddling the cut are common).
Modes: mergekit = `mergekit.sparsify.magnitude` (full argsort); exact = `trim.magnitude(fast=True)`
(bit-identical, sorts only on an ambiguous tie at the cut); index = `fast="index"` (never sorts; ties
at the cut by lowest index); sweep = what sweep trials run: mergekit's own order computed once per tensor
(`trim.magnitude_rank`, timed apart as "order once"), then the keep-mask `rank < k` per trial
(bit-identical). Usage: python bench/trim_speed.py [--quick] [--threads N (default 1)]
Each tensor is timed best-of-3 (best-of-2 above 5M entries) and the bests are summed, so
other load on a shared machine inflates the figures less. The LAST line printed is one JSON object (headline: gaussian
deltas, density 0.5, exact mode).
"""

from __future__ import annotations

import json
import sys
import time

import torch
from mergekit.sparsify import magnitude as mk_magnitude

from rewardsoup.merging import trim

HIDDEN, INTER, KV, VOCAB, LAYERS = 576, 1536, 192, 49152, 4
REPEATS = 3


def shapes() -> list[tuple[int, ...]]:
    out = [(VOCAB, HIDDEN)]
    for _ in range(LAYERS):
        out += [(HIDDEN, HIDDEN), (KV, HIDDEN), (KV, HIDDEN), (HIDDEN, HIDDEN),
                (INTER, HIDDEN), (INTER, HIDDEN), (HIDDEN, INTER), (HIDDEN,), (HIDDEN,)]
    return out + [(HIDDEN,), (1, HIDDEN)]


def tensor_set(kind: str, seed: int = 0, scale: float = 1.0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for s in shapes():
        if kind == "gaussian":
            out.append(torch.randn(s, generator=g))
        else:
            base = (0.02 * torch.randn(s, generator=g)).to(torch.bfloat16).float()
            out.append((base + 1e-4 * scale * torch.randn(s, generator=g)) - base)
    return out


def run(fn, tensors, density) -> tuple[float, list[torch.Tensor], int]:
    """Sum over tensors of the best of REPEATS timings each (robust to other load on a shared box).

    Also returns how many tensors needed an argsort (rewardsoup modes; counted on the first repeat).
    """
    total, res, sorted_count = 0.0, [], 0
    for t in tensors:
        best = float("inf")
        for rep in range(REPEATS if t.numel() < 5_000_000 else max(1, REPEATS - 1)):
            before = trim.STATS["argsort"]
            t0 = time.perf_counter()
            out = fn(t, density)
            best = min(best, time.perf_counter() - t0)
            sorted_count += (trim.STATS["argsort"] - before) if rep == 0 else 0
        total += best
        res.append(out)
    return total, res, sorted_count


def main() -> None:
    quick = "--quick" in sys.argv
    # One thread by default: mergekit's argsort is single-threaded anyway, and on a shared 2-core box
    # other load stalls multi-threaded (OpenMP) elementwise ops far more than the sort (see --threads 2).
    torch.set_num_threads(int(sys.argv[sys.argv.index("--threads") + 1]) if "--threads" in sys.argv else 1)
    modes = {
        "mergekit": lambda t, d: mk_magnitude(t, density=d),
        "exact": lambda t, d: trim.magnitude(t, d, fast=True),
        "index": lambda t, d: trim.magnitude(t, d, fast="index"),
    }
    rows, results = [], {}
    for kind in ("gaussian",) if quick else ("gaussian", "finetune"):
        tensors = tensor_set(kind)
        n = sum(t.numel() for t in tensors)
        t0 = time.perf_counter()
        orders = {id(t): trim.magnitude_rank(t) for t in tensors}
        order_s = time.perf_counter() - t0
        modes["sweep"] = lambda t, d: t * (orders[id(t)] < max(1, int(d * t.numel()))).reshape(t.shape)
        for density in (0.5, 0.9):
            times, outs, sorts = {}, {}, {}
            for mode, fn in modes.items():
                times[mode], outs[mode], sorts[mode] = run(fn, tensors, density)
            exact_ok = all(torch.equal(a, b) for a, b in zip(outs["exact"], outs["mergekit"]))
            idx_diff = sum(int((a != b).sum()) for a, b in zip(outs["index"], outs["mergekit"]))
            sweep_ok = all(torch.equal(a, b) for a, b in zip(outs["sweep"], outs["mergekit"]))
            results[(kind, density)] = {**times, "order_once": order_s}
            rows.append((kind, n, density, times["mergekit"], times["exact"], sorts["exact"],
                         times["index"], exact_ok and sweep_ok, idx_diff, len(tensors), times["sweep"], order_s))
            del outs
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"CPU capability {torch.backends.cpu.get_cpu_capability()}")
    head = (f"{'deltas':9s} {'params':>7s} {'dens':>4s} {'mergekit s':>10s} {'exact s':>8s} {'x':>5s} "
            f"{'sorted':>7s} {'index s':>8s} {'x':>5s} {'sweep s':>8s} {'x':>6s} {'order once s':>12s} "
            f"{'==mk':>5s} {'index!=mk':>9s}")
    print(head)
    print("-" * len(head))
    for kind, n, d, mk, ex, srt, ix, ok, idiff, nt, sw, once in rows:
        print(f"{kind:9s} {n / 1e6:6.1f}M {d:4.1f} {mk:10.2f} {ex:8.2f} {mk / ex:5.1f} {f'{srt}/{nt}':>7s} "
              f"{ix:8.2f} {mk / ix:5.1f} {sw:8.2f} {mk / sw:6.1f} {once:12.2f} {str(ok):>5s} {idiff:9d}")
    print("sorted = tensors where the exact mode had to run mergekit's argsort (ambiguous tie at the cut);")
    print("==mk: exact and sweep modes equal mergekit's output on every tensor;")
    print("index!=mk = entries where the never-sorting mode keeps a different one of equal-magnitude ties.")
    t = results[("gaussian", 0.5)]
    summary = {"trim_speedup_vs_mergekit": round(t["mergekit"] / t["exact"], 2),
               "mergekit_s": round(t["mergekit"], 3), "ours_s": round(t["exact"], 3),
               "density": 0.5, "params": rows[0][1], "exact_equal": rows[0][7],
               "index_mode_s": round(t["index"], 3),
               "sweep_per_trial_speedup": round(t["mergekit"] / t["sweep"], 2), "sweep_order_once_s": round(t["order_once"], 3),
               "speedup_at_0.9": round(results[("gaussian", 0.9)]["mergekit"] / results[("gaussian", 0.9)]["exact"], 2)}
    if ("finetune", 0.5) in results:
        f = results[("finetune", 0.5)]
        summary["finetune_deltas_speedup_exact"] = round(f["mergekit"] / f["exact"], 2)
        summary["finetune_deltas_speedup_index"] = round(f["mergekit"] / f["index"], 2)
        summary["finetune_deltas_speedup_sweep"] = round(f["mergekit"] / f["sweep"], 2)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
