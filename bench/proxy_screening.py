"""Proxy screening (search=proxy): does the members' logit ensemble rank merge weights like real merged soups?

On the demo members (`make demo`'s outputs under --root; tiny members trained on the fly when absent) and the val
splits, for each method: --points random weight vectors (Dirichlet(1); TIES also a density uniform in [0.3, 1])
scored by the proxy (`rewardsoup.search.proxy`) and for real (`rewardsoup.sweep.trials.score_request`, an in-memory
merge). Reports Spearman rho (95% Fisher interval, se = sqrt(1.06 / (n - 3)) for a Spearman rho), rho within the
proxy's top 6 of those points (what run_proxy's rank check sees), the gap between the real objective of the
proxy's best point and the real best, and ms per proxy evaluation vs s per real trial.

--time-to-pick ties[,linear]: `run_proxy` end to end from a cold sweep folder (member scoring, screening, its real trials) vs
the same number of real trials at random points (Optuna's TPE starts with 10 random trials, so this is a full
Optuna sweep of that budget, minus its sampler), and whether the two picks agree: every dataset's paired 95%
interval (`scoring.stats.paired`, same val rows) of pick A - pick B contains 0.

    .venv/bin/python bench/proxy_screening.py [--root outputs] [--points 30] [--time-to-pick ties]

Evalset cache and sweep folders go to --work (a temp folder by default), never under --root.
Last line: JSON {"bench": "proxy_screening", "members", "n", "spearman", "spearman_ci", "spearman_top6",
"gap_points", "proxy_ms", "proxy_batch_ms", "real_s", "time_to_pick"}.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from omegaconf import open_dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import rewardsoup.schemas  # noqa: E402,F401  (registers the config schemas)
from rewardsoup.merging.soup import merge_request  # noqa: E402
from rewardsoup.pipeline.recipes import compose_cfg  # noqa: E402
from rewardsoup.scoring import stats  # noqa: E402
from rewardsoup.scoring.metrics import row_credit, score_evalsets  # noqa: E402
from rewardsoup.sweep import proxy  # noqa: E402
from rewardsoup.sweep.resident import resident  # noqa: E402
from rewardsoup.sweep.trials import score_request  # noqa: E402

DEMO = {"thumbs": "demo_thumbs-binary", "pairs": "demo_pairs-pairwise", "harmless": "demo_harmless-pairwise"}


def tiny_members(work: Path) -> list[str]:
    """Overrides for three tiny members trained a few steps (as tests/conftest.py's `tiny_members`)."""
    from rewardsoup.models.base import build_base
    from rewardsoup.training.member import train_member

    base = build_base({"source": "tiny:gpt2", "layers": 2, "dtype": "float32", "base_dir": str(work / "tiny-base"),
                       "tiny": {"n_layer": 2, "n_embd": 32, "n_head": 2, "n_positions": 512}})
    out = ["model=tiny_gpt2", f"model.base_dir={base}", "trial.max_length=64"]
    for name, data, objective in (("thumbs", "demo_thumbs", "binary"), ("pairs", "demo_pairs", "pairwise"),
                                  ("harmless", "demo_harmless", "pairwise")):
        cfg = compose_cfg("train", ["experiment=smoke", f"model.base_dir={base}", f"paths.root={work}/tiny",
                                    f"data={data}", f"objective={objective}", "train.max_steps=6", "train.lr=1e-3",
                                    "train.save_steps=100"])
        train_member(cfg)
        out.append(f"members.{name}={cfg.train.output_dir}")
    return out


def member_overrides(root: Path, work: Path) -> tuple[str, list[str]]:
    if all((root / "members" / folder / "model.safetensors").exists() for folder in DEMO.values()):
        return "demo", [f"paths.root={root}"]
    print(f"demo members not found under {root}/members (run `make demo` or pass --root): using tiny members "
          f"trained now", flush=True)
    return "tiny", tiny_members(work)


def method_cfg(base: list[str], work: Path, method: str, tag: str):
    cfg = compose_cfg("merge", base + ["logger=none", f"merge={method}", f"paths.cache={work}/cache",
                                       f"sweep.dir={work}/sweeps/{tag}" + ("" if tag == "rank" else f"-{method}")])
    with open_dict(cfg):
        cfg.proxy = {"candidates": 2000, "top_k": 6, "seed": 0, "min_spearman": 0.3, "fallback_trials": 6,
                     "densities": [0.5, 1.0]}  # conf/search/proxy.yaml's values
    return cfg


def fisher(rho: float, n: int) -> tuple[float, float]:
    if n <= 3 or not np.isfinite(rho):
        return float("nan"), float("nan")
    z, se = np.arctanh(np.clip(rho, -0.999999, 0.999999)), np.sqrt(1.06 / (n - 3))
    return float(np.tanh(z - 1.96 * se)), float(np.tanh(z + 1.96 * se))


def points(cfg, p: proxy.Proxy, n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    w = proxy.sample_weights(n, len(p.members), rng)
    request = merge_request(cfg)
    dens = np.round(rng.uniform(0.3, 1.0, n), 2)
    return [proxy.with_weights(request, p.members, w[i], float(dens[i])) for i in range(n)]


def rank_method(cfg, n: int) -> dict:
    """Proxy vs real on `n` random points of cfg's method."""
    start = time.perf_counter()
    p = proxy.build_proxy(cfg)
    build_s = time.perf_counter() - start
    reqs = points(cfg, p, n, seed=1)
    w = np.array([[r["weights"][m] for m in p.members] for r in reqs])
    single = []
    for row in w:
        t0 = time.perf_counter()
        proxy.proxy_scores(p, row[None, :])
        single.append(time.perf_counter() - t0)
    batch = proxy.sample_weights(2000, len(p.members), np.random.default_rng(0))
    t0 = time.perf_counter()
    proxy.proxy_scores(p, batch)
    batch_ms = 1000 * (time.perf_counter() - t0) / len(batch)
    prox = proxy.proxy_scores(p, w)
    real, real_s = [], []
    for i, r in enumerate(reqs):
        out = score_request(cfg, r)
        real.append(out["objective"])
        real_s.append(out["trial_s"])
        print(f"  {cfg.merge.method} point {i + 1}/{n}: proxy {prox[i]:.4f} real {out['objective']:.4f} "
              f"({out['trial_s']:.1f}s)", flush=True)
    real = np.array(real)
    rho = stats.spearman(prox, real)
    top = np.argsort(-prox, kind="stable")[:6]
    return {"n": n, "rho": rho, "ci": fisher(rho, n), "rho_top6": stats.spearman(prox[top], real[top]),
            "gap": 100 * (real.max() - real[int(np.argmax(prox))]), "proxy_ms": 1000 * float(np.median(single)),
            "batch_ms": batch_ms, "real_s": float(np.median(real_s[1:] or real_s)), "build_s": build_s}


def credits(cfg, request) -> dict[str, np.ndarray]:
    """Per-row val credit of a merged request (the trial's own merge and scorer)."""
    prepared, model = resident(request["base"], request["members"])
    prepared.apply(model, request, trim_ranks=bool(cfg.trial.trim_ranks))
    evalsets = proxy.val_evalsets(cfg, request["base"])
    scored = score_evalsets(model, list(evalsets.values()), model.config.pad_token_id, int(cfg.trial.batch_size))
    return {ds: row_credit(s.evalset, s.rewards) for ds, s in zip(evalsets, scored)}


def time_to_pick(cfg) -> dict:
    """search=proxy end to end (cold member cache) vs as many real trials at random points."""
    done: list[tuple[float, dict]] = []

    def record(c, request, source, trial):
        done.append((score_request(c, request)["objective"], request))
        return {"objective": done[-1][0]}

    start = time.perf_counter()
    proxy.run_proxy(cfg, record)
    proxy_s = time.perf_counter() - start
    p = proxy.build_proxy(cfg)  # cached now
    start = time.perf_counter()
    rand = [(score_request(cfg, r)["objective"], r) for r in points(cfg, p, len(done), seed=2)]
    random_s = time.perf_counter() - start
    a, b = max(done, key=lambda x: x[0]), max(rand, key=lambda x: x[0])
    ca, cb = credits(cfg, a[1]), credits(cfg, b[1])
    diffs = {ds: stats.paired(ca[ds], cb[ds], samples=1000) for ds in ca}
    agree = all(d["lo"] <= 0 <= d["hi"] for d in diffs.values())
    return {"real_trials": len(done), "proxy_s": proxy_s, "random_s": random_s, "proxy_best": a[0],
            "random_best": b[0], "agree": agree,
            "diff": {ds: [round(d["diff"], 4), round(d["lo"], 4), round(d["hi"], 4)] for ds, d in diffs.items()}}


def table(results: dict, picks: dict) -> None:
    print(f"\n{'method':<8}{'n':>4}{'rho':>7}{'95% CI':>16}{'rho top6':>10}{'gap pts':>9}{'proxy ms':>10}"
          f"{'batch ms':>10}{'real s':>8}{'x faster':>10}")
    for m, r in results.items():
        ci = f"[{r['ci'][0]:.2f}, {r['ci'][1]:.2f}]"
        print(f"{m:<8}{r['n']:>4}{r['rho']:>7.2f}{ci:>16}{r['rho_top6']:>10.2f}{r['gap']:>9.2f}{r['proxy_ms']:>10.3f}"
              f"{r['batch_ms']:>10.3f}{r['real_s']:>8.2f}{r['real_s'] * 1000 / r['proxy_ms']:>9.0f}x")
    print("rho: Spearman(proxy, real val objective); gap: real best - real objective of the proxy's best point; "
          "proxy ms: one candidate alone, batch ms: per candidate in a batch of 2000")
    for m, t in picks.items():
        print(f"time to pick, {m}: search=proxy {t['proxy_s']:.0f}s ({t['real_trials']} real trials, best "
              f"{t['proxy_best']:.4f}) vs {t['real_trials']} random real trials {t['random_s']:.0f}s (best "
              f"{t['random_best']:.4f}); picks agree within the paired val intervals: {t['agree']} {t['diff']}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", default=str(ROOT / "outputs"))
    ap.add_argument("--work", default=None, help="evalset cache and sweep folders (default: a temp folder)")
    ap.add_argument("--points", type=int, default=30)
    ap.add_argument("--methods", default="ties,linear")
    ap.add_argument("--time-to-pick", default="", help="methods to time search=proxy for, e.g. ties (costs "
                    "2 x its real trials)")
    a = ap.parse_args()
    work = Path(a.work or tempfile.mkdtemp(prefix="proxy-bench-"))
    kind, base = member_overrides(Path(a.root).resolve(), work)
    results, picks = {}, {}
    for m in a.methods.split(","):
        results[m] = rank_method(method_cfg(base, work, m, "rank"), a.points)
        print(f"{m}: {json.dumps(results[m])}", flush=True)  # partial results survive an interrupted run
    for m in filter(None, a.time_to_pick.split(",")):
        picks[m] = time_to_pick(method_cfg(base, work, m, "pick"))
        print(f"{m} time to pick: {json.dumps(picks[m])}", flush=True)
    table(results, picks)
    r3 = lambda x: round(float(x), 3)  # noqa: E731
    print(json.dumps({"bench": "proxy_screening", "members": kind, "n": a.points,
                      "spearman": {m: r3(r["rho"]) for m, r in results.items()},
                      "spearman_ci": {m: [r3(x) for x in r["ci"]] for m, r in results.items()},
                      "spearman_top6": {m: r3(r["rho_top6"]) for m, r in results.items()},
                      "gap_points": {m: r3(r["gap"]) for m, r in results.items()},
                      "proxy_ms": {m: round(r["proxy_ms"], 4) for m, r in results.items()},
                      "proxy_batch_ms": {m: round(r["batch_ms"], 4) for m, r in results.items()},
                      "real_s": {m: r3(r["real_s"]) for m, r in results.items()},
                      "member_scoring_s": {m: r3(r["build_s"]) for m, r in results.items()},
                      "time_to_pick": {m: {k: (r3(v) if isinstance(v, float) else v) for k, v in t.items()}
                                       for m, t in picks.items()}}))


if __name__ == "__main__":
    main()
