"""Proxy screening (`search=proxy`): rank thousands of merge weight vectors without merging, merge only the best.

Every member's rewards on every val set are computed once (the project's loader and `scoring.metrics.score_evalsets`
on the same tokenized val sets, truncation and batch size as a sweep trial) and cached under
`<sweep.dir>/proxy/rewards-<key>.json` (the key hashes the members' files and the val sets' cache keys, so a rerun
or a resumed sweep scores nothing). A weight vector is then scored as its logit ensemble: the weighted mean of the
member rewards, credited per row by `scoring.metrics`' own credit rules and combined into the sweep objective by
`sweep.objective` (the same objective a real trial reports). Density does not enter the proxy.

`run_proxy(cfg, record)`:
1. draws `proxy.candidates` weight vectors from Dirichlet(1) on the simplex (seeded; rounded to 4 decimals, and the
   proxy scores the rounded vector that is merged), ranks them by proxy objective;
2. merges and scores the best `proxy.top_k` for real through `record` (`sweep.record.record`, passed in because
   search.py dispatches here), one ledger row each with source `proxy`. Methods with a density merge each of them at
   every density of `proxy.densities` (top_k x len(densities) real trials; the proxy cannot rank densities, so they
   are a small fixed grid), or at `merge.density` when the list is empty;
3. checks the proxy's ranking on those real trials (Spearman, `scoring.stats.spearman`). When it is below
   `proxy.min_spearman`, cannot be measured (fewer than 3 trials, or constant values), or the method scales its
   weights (`normalize: false`, e.g. task_arithmetic: the proxy sees only their ratios), it says so in one loud line
   and runs `proxy.fallback_trials` random real trials (source `proxy-fallback`), so the pick (`mode=pick`) is not
   decided by the proxy alone.
Requests already in the ledger are reused by `record`, so a rerun recomputes nothing.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rewardsoup.core import precision
from rewardsoup.core.atomic import atomic_write_json
from rewardsoup.core.config import problems
from rewardsoup.core.errors import ConfigError
from rewardsoup.core.plain import plain
from rewardsoup.merging.methods import method_spec
from rewardsoup.merging.soup import merge_request
from rewardsoup.models.loading import load_reward_model
from rewardsoup.scoring import stats
from rewardsoup.scoring import config as scoring
from rewardsoup.scoring.evalsets import cache_key, load_evalset
from rewardsoup.scoring.metrics import EvalSet, binary_credit, pair_credit, row_credit, score_evalsets
from rewardsoup.sweep.objective import dataset_score, objective_value
from rewardsoup.search.config import ProxyConfig

Record = Callable[..., Mapping[str, Any]]  # sweep.record.record(cfg, request, source=..., trial=...) -> ledger row
DECIMALS = 4  # weights in ledger rows: readable keys; the proxy scores the rounded vector that is merged


def settings(cfg: DictConfig) -> DictConfig:
    """`cfg.proxy` checked against `ProxyConfig` (types and value rules); a ConfigError names the key."""
    if cfg.get("proxy") is None:
        raise ConfigError("proxy: no settings in the config; run with search=proxy (conf/search/proxy.yaml)")
    try:
        node = OmegaConf.merge(OmegaConf.structured(ProxyConfig), cfg.proxy)
    except OmegaConfBaseException as exc:
        raise ConfigError(f"proxy.{getattr(exc, 'full_key', '') or ''}: {str(exc.msg).splitlines()[0]}") from None
    found = problems(node, "proxy.")
    if found:
        raise ConfigError(found[0])
    return node


def val_evalsets(cfg: DictConfig, base: str) -> dict[str, EvalSet]:
    """The tokenized val sets a sweep trial scores (`sweep.trials.score_request`): same split, truncation, cache."""
    t = cfg.trial
    out = {name: load_evalset(name, cfg.datasets[name], "val", base, int(t.max_length), cfg.paths.cache,
                              scoring.truncation(cfg)) for name in cfg.datasets}
    empty = [name for name, es in out.items() if es.n == 0]
    if empty:
        raise ConfigError(f"datasets.{empty[0]}: its val split is empty; the proxy (like a trial) needs val rows")
    return out


def _stamp(folder: str) -> list:
    files = sorted(p for p in Path(folder).iterdir() if p.is_file())
    return [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]


def rewards_path(cfg: DictConfig, request: Mapping[str, Any]) -> Path:
    """The member-rewards cache file: keyed by the members' files and the val sets' evalset cache keys."""
    blob = {"members": {n: [str(Path(p).resolve()), _stamp(p)] for n, p in sorted(request["members"].items())},
            "evalsets": {n: cache_key(request["base"], cfg.datasets[n], "val", int(cfg.trial.max_length),
                                      scoring.truncation(cfg)) for n in cfg.datasets}}
    if precision.resolve(scoring.dtype(cfg)) != "fp32":  # fp32 caches keep their earlier keys
        blob["dtype"] = precision.resolve(scoring.dtype(cfg))
    key = hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(cfg.sweep.dir) / "proxy" / f"rewards-{key}.json"


def member_rewards(cfg: DictConfig, request: Mapping[str, Any], evalsets: Mapping[str, EvalSet]) -> dict:
    """{dataset: (members sorted by name) x (texts) rewards}, scored once and cached (atomic JSON, exact floats)."""
    names = sorted(request["members"])
    path = rewards_path(cfg, request)
    if path.exists():
        raw = json.loads(path.read_text())
        if raw.get("members") == names and sorted(raw.get("rewards", {})) == sorted(evalsets):
            print(f"[rewardsoup] proxy: member rewards from {path}", flush=True)
            return {ds: np.asarray(raw["rewards"][ds], dtype=np.float64).reshape(len(names), -1) for ds in evalsets}
    start, sets, per_member = time.perf_counter(), list(evalsets.values()), []
    for name in names:
        model = load_reward_model(request["members"][name])
        with scoring.autocast(cfg):
            scored = score_evalsets(model, sets, model.config.pad_token_id, int(cfg.trial.batch_size),
                                    scoring.share_prefix(cfg))
        per_member.append([s.rewards for s in scored])
        del model
    out = {ds: np.stack([m[i] for m in per_member]) for i, ds in enumerate(evalsets)}
    atomic_write_json(path, {"members": names, "rewards": {ds: r.tolist() for ds, r in out.items()}})
    print(f"[rewardsoup] proxy: {len(names)} members scored on {len(sets)} val sets in "
          f"{time.perf_counter() - start:.1f}s -> {path}", flush=True)
    return out


def row_credits(es: EvalSet, ensembles: np.ndarray) -> np.ndarray:
    """Per-row credit (candidates x rows) of every candidate's rewards, by `scoring.metrics`' credit rules
    (vectorised over candidates for pairwise and binary sets; multi sets go row_credit by row_credit)."""
    if es.schema == "pairwise":
        return pair_credit(ensembles[:, : es.n], ensembles[:, es.n:])
    if es.schema == "binary":
        return binary_credit(ensembles, es.labels)
    return np.stack([row_credit(es, e) for e in ensembles])


@dataclass
class Proxy:
    """The logit-ensemble proxy of one sweep: member rewards on the val sets, and the sweep objective."""

    members: list[str]  # sorted by name: the columns of a weights matrix
    evalsets: dict[str, EvalSet]
    rewards: dict[str, np.ndarray]  # dataset -> (members, texts)
    objective: dict[str, Any]  # plain sweep.objective

    def details(self, weights: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        """Per dataset, `metrics`' accuracy (and AUC on binary sets) of every candidate's weighted mean reward."""
        w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
        if w.shape[1] != len(self.members) or not np.all(np.isfinite(w)) or np.any(w.sum(axis=1) <= 0):
            raise ValueError(f"weights must be finite rows of {len(self.members)} ({', '.join(self.members)}) "
                             f"with a positive sum; got shape {w.shape}")
        w = w / w.sum(axis=1, keepdims=True)
        out = {}
        for ds, es in self.evalsets.items():
            ensembles = w @ self.rewards[ds]
            out[ds] = {"accuracy": row_credits(es, ensembles).mean(axis=1)}
            if es.schema == "binary":
                out[ds]["auc"] = stats._auc_axis(ensembles, es.labels)  # stats.auc's own math, all rows at once
        return out

    def scores(self, weights: np.ndarray) -> dict[str, Any]:
        """{"objective": (candidates,), "val": {dataset: (candidates,)}}: the sweep objective of each row of
        `weights` (candidates x members, any positive scale), through `dataset_score` and `objective_value`."""
        details = self.details(weights)
        n = len(next(iter(details.values()))["accuracy"])
        per = {ds: np.array([dataset_score({k: v[c] for k, v in d.items()}, self.objective) for c in range(n)])
               for ds, d in details.items()}
        value = np.array([objective_value({ds: float(per[ds][c]) for ds in per}, self.objective) for c in range(n)])
        return {"objective": value, "val": per}


def build_proxy(cfg: DictConfig, request: Mapping[str, Any] | None = None) -> Proxy:
    """The proxy of `cfg`'s sweep (members of `merge_request(cfg)`, or of `request`)."""
    request = request or merge_request(cfg)
    evalsets = val_evalsets(cfg, request["base"])
    return Proxy(sorted(request["members"]), evalsets, member_rewards(cfg, request, evalsets),
                 plain(cfg.sweep.objective))


def proxy_scores(proxy: Proxy, weights: np.ndarray) -> np.ndarray:
    """The proxy objective of every row of `weights` (candidates x members)."""
    return proxy.scores(weights)["objective"]


def sample_weights(n: int, members: int, rng: np.random.Generator) -> np.ndarray:
    """`n` weight vectors from Dirichlet(1) (uniform on the simplex), rounded as they are merged."""
    w = np.round(rng.dirichlet(np.ones(members), size=n), DECIMALS)
    zero = w.sum(axis=1) <= 0  # cannot happen after rounding (the largest of a row is >= 1/members)
    w[zero] = 1.0 / members
    return w


def with_weights(request: Mapping[str, Any], members: list[str], w: np.ndarray, density: float | None) -> dict:
    """`request` with these weights (member name -> float) and, for a method with a density, this density."""
    r = dict(request)
    r["weights"] = {n: float(x) for n, x in zip(members, w)}
    r["density"] = density if "density" in method_spec(request["method"]).member_params else None
    return r


def _densities(request: Mapping[str, Any], node: DictConfig) -> list[float | None]:
    if "density" not in method_spec(request["method"]).member_params:
        return [None]
    chosen = [float(d) for d in node.densities] or [request.get("density")]
    return list(dict.fromkeys(chosen))


def distrust(request: Mapping[str, Any]) -> str | None:
    """Why the proxy is known to rank this method badly, or None. The proxy sees only the weights' ratios."""
    spec = method_spec(request["method"])
    if "weight" not in spec.member_params:
        raise ConfigError(f"merge.method={spec.name}: takes no per-member weights, so search=proxy has nothing "
                          f"to screen; use search=optuna")
    normalize = (request.get("params") or {}).get("normalize", spec.defaults.get("normalize", True))
    if not normalize:
        return f"{spec.name} with normalize: false adds weighted deltas, so the weights' scale matters"
    return None


def _real(cfg, record: Record, request, source: str, trial: str) -> float:
    return float(record(cfg, request, source=source, trial=trial)["objective"])


def screen(proxy: Proxy, node: DictConfig) -> tuple[np.ndarray, np.ndarray, float]:
    """(candidates best first, their proxy objectives, ms per candidate)."""
    w = sample_weights(int(node.candidates), len(proxy.members), np.random.default_rng(int(node.seed)))
    start = time.perf_counter()
    value = proxy_scores(proxy, w)
    ms = 1000 * (time.perf_counter() - start) / len(w)
    order = np.argsort(-value, kind="stable")
    return w[order], value[order], ms


def rank_check(proxy_values: list[float], real_values: list[float], node: DictConfig, why_not: str | None,
               request: Mapping[str, Any]) -> bool:
    """Print the Spearman of proxy vs real over the real trials; True when the proxy is distrusted."""
    rho = stats.spearman(np.array(proxy_values), np.array(real_values))
    print(f"[rewardsoup] proxy: Spearman(proxy, real) over {len(real_values)} real trials = {rho:.3f} "
          f"(proxy.min_spearman={float(node.min_spearman)})", flush=True)
    if why_not is None and len(real_values) < 3:
        why_not = f"its ranking cannot be checked on {len(real_values)} real trials (fewer than 3)"
    elif why_not is None and not np.isfinite(rho):
        why_not = "its ranking cannot be checked (constant proxy or real values)"
    elif why_not is None and rho < float(node.min_spearman):
        why_not = f"Spearman {rho:.3f} < proxy.min_spearman={float(node.min_spearman)}"
    if why_not is not None:
        print(f"[rewardsoup] !!! PROXY RANKS BADLY for merge.method={request['method']} with members "
              f"{', '.join(sorted(request['members']))} ({why_not}): adding "
              f"{int(node.fallback_trials)} random real trials (proxy.fallback_trials) !!!", flush=True)
    return why_not is not None


def run_proxy(cfg: DictConfig, record: Record) -> float:
    """Screen `proxy.candidates` weight vectors by proxy, merge the top `proxy.top_k` for real (ledger rows with
    source `proxy`), check the ranking, add fallback trials when it is bad; returns the best real objective."""
    node = settings(cfg)
    request = merge_request(cfg)
    why_not = distrust(request)
    proxy = build_proxy(cfg, request)
    ranked, values, ms = screen(proxy, node)
    print(f"[rewardsoup] proxy: {len(ranked)} candidates screened at {ms:.3f} ms each; best proxy objective "
          f"{values[0]:.4f}", flush=True)
    proxy_values, real_values = [], []
    for i, w in enumerate(ranked[: int(node.top_k)]):
        for density in _densities(request, node):
            trial = f"proxy-{i}" + ("" if density is None else f"-d{density:g}")
            real_values.append(_real(cfg, record, with_weights(request, proxy.members, w, density), "proxy", trial))
            proxy_values.append(float(values[i]))
    if rank_check(proxy_values, real_values, node, why_not, request):
        rng = np.random.default_rng([int(node.seed), 1])  # its own stream: the same fallback trials on a rerun
        grid = _densities(request, node)
        for j, w in enumerate(sample_weights(int(node.fallback_trials), len(proxy.members), rng)):
            density = grid[int(rng.integers(len(grid)))]
            real_values.append(_real(cfg, record, with_weights(request, proxy.members, w, density),
                                     "proxy-fallback", f"fallback-{j}"))
    best = max(real_values)
    print(f"[rewardsoup] proxy search: {len(real_values)} real trials, best val objective {best:.4f}; "
          f"`mode=pick` chooses among the ledger rows", flush=True)
    return best
