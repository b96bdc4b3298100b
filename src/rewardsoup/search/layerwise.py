"""Layer-wise soups (`search=layerwise`): a TIES coefficient per (member, layer group), learned on val by
gradient with the members' own losses, then recorded as one ledger row like any trial.

The merged weights are a differentiable function of the coefficients: for each tensor, the members' task
vectors (member - base, TIES-trimmed once at the start's density) are weighted by their group's
coefficient, signs are elected on the weighted sum, agreeing deltas are averaged by the agreeing weights
(`normalize`), exactly mergekit's TIES with per-tensor weights (`merging.tensor_math`); the election is a step
function of the coefficients, so the gradient flows through the weights of the average. The model runs on the
merged tensors through `torch.func.functional_call` (no model copy per step); Bradley-Terry on pairwise rows,
BCE on binary rows, the datasets' losses averaged; Adam, coefficients kept >= 0.

A `holdout` share of every val set is never trained on: its loss, from rewards scored by the one scoring
path, picks the stopping step. The picked coefficients become a request with `layer_weights` (member ->
tensor -> weight), scored on the full val by `record` like every trial, exported by mergekit through
per-tensor `filter` weights (`merging.on_disk.mergekit_config`).

Memory: the members' trimmed task vectors are held once, 4 bytes per changed parameter and member
(tensors where fewer than half the entries change, e.g. the embedding, are held at the changed positions
only), plus one merged copy and autograd's intermediates during a step.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
from omegaconf import DictConfig

from rewardsoup.core.errors import ConfigError
from rewardsoup.core.plain import plain
from rewardsoup.merging import trim
from rewardsoup.merging.layers import layer_groups
from rewardsoup.merging.soup import merge_request
from rewardsoup.merging.state_dicts import apply_state_dict
from rewardsoup.scoring import config as scoring
from rewardsoup.scoring.evalsets import load_evalset
from rewardsoup.scoring.metrics import EvalSet, score_evalsets, take_rows
from rewardsoup.scoring.rewards import pad_batch
from rewardsoup.sweep import ledger, references
from rewardsoup.sweep.resident import SPARSE_BELOW, resident
from rewardsoup.sweep.summary import choose

class LayerwiseTies:
    """TIES over fixed trimmed task vectors with one weight per (member, group): `merged(coeffs)` is
    differentiable in `coeffs` [members x groups] and equals `merge_in_memory("ties", ..., layer_weights=...)`."""

    def __init__(self, base_sd, member_sds, names: list[str], density: float, params: Mapping[str, Any],
                 groups: Mapping[str, str]):
        self.names, self.params = names, dict(params)
        self.group_names = sorted(set(groups.values()), key=lambda g: min(i for i, k in enumerate(groups)
                                                                         if groups[k] == g))
        self.base, self.fixed, self.deltas, self.where, self.column = {}, {}, {}, {}, {}
        for key, base in base_sd.items():
            if not base.is_floating_point():
                self.fixed[key] = base
                continue
            deltas = torch.stack([self._trimmed(member_sds[n][key].float() - base.float(), density) for n in names])
            flat = deltas.reshape(len(names), -1)
            changed = (flat != 0).any(dim=0)
            if base.numel() >= 4096 and changed.float().mean() < SPARSE_BELOW:
                self.where[key] = changed.nonzero().reshape(-1)
                flat = flat[:, self.where[key]]
            self.base[key], self.deltas[key] = base.float(), flat
            self.column[key] = self.group_names.index(groups[key])

    def _trimmed(self, delta: torch.Tensor, density: float) -> torch.Tensor:
        if density >= 1:
            return delta
        kept = trim.magnitude(delta, density, fast=True)
        return trim.rescale_l1(delta, kept) if self.params.get("rescale") else kept

    def _mix(self, deltas: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """mergekit's TIES consensus on [members x n] deltas with weights [members] (tensor_math's order)."""
        w = w.reshape(-1, 1)
        weighted = deltas * w
        with torch.no_grad():
            majority = (weighted.sum(dim=0) >= 0).to(weighted.dtype) * 2 - 1
            mask = (weighted.sign() == majority).to(weighted.dtype)
        mixed = (weighted * mask).sum(dim=0)
        if self.params.get("normalize", True):
            divisor = (w * mask).sum(dim=0)
            mixed = mixed / torch.where(divisor == 0, torch.ones_like(divisor), divisor)
        lam = float(self.params.get("lambda", 1.0))
        return mixed * lam if lam != 1 else mixed

    def merged(self, coeffs: torch.Tensor) -> dict[str, torch.Tensor]:
        out = dict(self.fixed)
        for key, base in self.base.items():
            mixed = self._mix(self.deltas[key], coeffs[:, self.column[key]])
            if key in self.where:
                flat = base.reshape(-1)
                out[key] = flat.index_put((self.where[key],), flat[self.where[key]] + mixed).reshape(base.shape)
            else:
                out[key] = base + mixed.reshape(base.shape)
        return out

    def layer_weights(self, coeffs: torch.Tensor) -> dict[str, dict[str, float]]:
        """{member: {tensor: weight}} for every floating tensor (what mergekit's YAML filters carry)."""
        c = coeffs.detach().double().tolist()
        return {n: {key: float(c[i][self.column[key]]) for key in sorted(self.base)} for i, n in enumerate(self.names)}

    def bytes_held(self) -> int:
        return sum(d.numel() * d.element_size() for d in self.deltas.values())


def _losses(es: EvalSet, rewards: np.ndarray | torch.Tensor, rows) -> Any:
    """The members' own loss on `rows` of `es` from their rewards (chosen then rejected for pairs)."""
    lib = torch if isinstance(rewards, torch.Tensor) else None
    if es.schema == "pairwise":
        k = len(rows)
        margin = rewards[:k] - rewards[k:]
        return -torch.nn.functional.logsigmoid(margin).mean() if lib else float(np.mean(np.logaddexp(0, -margin)))
    labels = es.labels[rows].astype(np.float64)
    if lib:
        return torch.nn.functional.binary_cross_entropy_with_logits(rewards, torch.tensor(labels, dtype=rewards.dtype))
    return float(np.mean(np.logaddexp(0, rewards) - labels * rewards))


def _batch_ids(es: EvalSet, rows: np.ndarray) -> list[list[int]]:
    return [es.ids[i] for i in rows] + ([es.ids[i + es.n] for i in rows] if es.schema == "pairwise" else [])


def sweep_pick(cfg: DictConfig, key: str) -> dict:
    """The request of the sweep's pick (the pick rule over cfg.sweep.dir's ledger); `key` names the setting
    that asked for it in the error when the sweep has no finished trial."""
    rows = ledger.read(cfg.sweep.dir)[1] if (Path(str(cfg.sweep.dir)) / ledger.HEADER).exists() else []
    if not ledger.complete(rows):
        raise ConfigError(f"{key}=best: no finished trial in {cfg.sweep.dir}; run a sweep first or use {key}=equal")
    return choose(rows, plain(cfg.sweep.objective), references.floors(cfg, cfg.sweep.dir)
                  if str(cfg.sweep.objective.kind) == "floors" else None)[0]["request"]


def _start(cfg: DictConfig, request: dict, names: list[str]) -> tuple[dict[str, float], float]:
    lw = cfg.layerwise
    weights, density = dict(request["weights"]), float(request["density"] if request["density"] is not None else 1)
    if str(lw.start) == "best":
        best = sweep_pick(cfg, "layerwise.start")
        if best["method"] != "ties" or set(best["members"]) != set(names):
            raise ConfigError(f"layerwise.start=best: the sweep's pick is {best['method']} over {sorted(best['members'])};"
                              f" layer-wise soups start from a TIES trial over {names}")
        weights, density = dict(best["weights"]), float(best["density"])
    unknown = [n for n in lw.init if n not in names]
    if unknown:
        raise ConfigError(f"layerwise.init names unknown member {unknown[0]!r}; members: {', '.join(names)}")
    return {n: float(lw.init.get(n, weights[n])) for n in names}, density


def _split(evalsets: list[EvalSet], share: float, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    fit, hold = [], []
    for es in evalsets:
        order = rng.permutation(es.n)
        k = max(1, int(round(share * es.n))) if es.n > 1 else 0
        hold.append(np.sort(order[:k]))
        fit.append(np.sort(order[k:]))
    return fit, hold


def _check(cfg: DictConfig, request: dict, evalsets: list[EvalSet]) -> None:
    if request["method"] != "ties":
        raise ConfigError(f"search=layerwise learns TIES coefficients; merge.method={request['method']!r} "
                          "(use merge=ties, or search=optuna for other methods)")
    bad = [es.name for es in evalsets if es.schema not in ("pairwise", "binary") or es.n < 2]
    if bad:
        raise ConfigError(f"search=layerwise trains on pairwise and binary val sets with >= 2 rows; {bad[0]} is not one")


def learn(cfg: DictConfig, request: dict) -> dict[str, Any]:
    """The coefficients, learned on the fit part of val and stopped on the held-out part -> a request with
    `layer_weights` plus what happened (held-out losses per checked step, the step kept, bytes held)."""
    from torch.func import functional_call

    lw, t = cfg.layerwise, cfg.trial
    names = sorted(request["members"])
    evalsets = [load_evalset(n, cfg.datasets[n], "val", request["base"], int(t.max_length), cfg.paths.cache,
                             scoring.truncation(cfg)) for n in cfg.datasets]
    _check(cfg, request, evalsets)
    start_w, density = _start(cfg, request, names)
    prepared, model = resident(request["base"], request["members"])
    groups = layer_groups([k for k, v in prepared.base_sd.items() if v.is_floating_point()],
                          int(lw.blocks_per_group), plain(lw.groups))
    soup = LayerwiseTies(prepared.base_sd, prepared.member_sds, names, density, request["params"], groups)
    coeffs = torch.tensor([[start_w[n]] * len(soup.group_names) for n in names], dtype=torch.float32,
                          requires_grad=True)
    fit, hold = _split(evalsets, float(lw.holdout), int(lw.seed))
    held = [take_rows(es, rows) for es, rows in zip(evalsets, hold)]
    pad, rng, opt = model.config.pad_token_id, np.random.default_rng(int(lw.seed) + 1), torch.optim.Adam([coeffs], lr=float(lw.lr))
    buffers = {k: v for k, v in model.named_buffers()}

    def held_loss() -> float:
        with torch.no_grad():
            apply_state_dict(model, soup.merged(coeffs))
        scored = score_evalsets(model, held, pad, int(t.batch_size), scoring.share_prefix(cfg))
        return float(np.mean([_losses(es, s.rewards, np.arange(es.n)) for es, s in zip(held, scored)]))

    held_texts = sum(len(es.ids) for es in held)
    curve, spent = [(0, held_loss())], held_texts  # texts forwarded; a backward pass counts as two
    best = (curve[0][1], 0, coeffs.detach().clone())
    model.eval()
    for step in range(1, int(lw.steps) + 1):
        opt.zero_grad()
        params = soup.merged(coeffs) | buffers
        losses = []
        for es, rows in zip(evalsets, fit):
            pick = rng.choice(rows, size=min(int(lw.batch_rows), len(rows)), replace=False)
            batch = pad_batch(_batch_ids(es, pick), pad)
            logits = functional_call(model, params, args=(), kwargs=batch).logits[:, 0].float()
            losses.append(_losses(es, logits, pick))
            spent += 3 * len(logits)
        torch.stack(losses).mean().backward()
        opt.step()
        with torch.no_grad():
            coeffs.clamp_(min=0)
        if step % int(lw.eval_every) == 0 or step == int(lw.steps):
            curve.append((step, held_loss()))
            spent += held_texts
            print(f"[rewardsoup] layerwise step {step}/{lw.steps}: held-out loss {curve[-1][1]:.4f} "
                  f"(start {curve[0][1]:.4f})", flush=True)
            if curve[-1][1] < best[0]:
                best = (curve[-1][1], step, coeffs.detach().clone())
    out = dict(request) | {"weights": start_w, "density": density, "layer_weights": soup.layer_weights(best[2])}
    return {"request": out, "groups": soup.group_names, "coefficients": best[2].tolist(), "kept_step": best[1],
            "held_loss": [[s, round(v, 6)] for s, v in curve], "bytes_held": soup.bytes_held(),
            "held_rows": {es.name: int(es.n) for es in held}, "texts_learned": spent}


def run_layerwise(cfg: DictConfig, record: Callable[..., dict]) -> float:
    """search=layerwise: learn the coefficients, record the soup as a ledger row (source `layerwise`)."""
    start = time.perf_counter()
    learned = learn(cfg, merge_request(cfg))
    names = sorted(learned["request"]["members"])
    table = {f"{n}/{g}": round(c, 4) for n, row in zip(names, learned["coefficients"])
             for g, c in zip(learned["groups"], row)}
    print(f"[rewardsoup] layer-wise coefficients (kept step {learned['kept_step']}, held-out loss "
          f"{dict(learned['held_loss'])}): {table}; task vectors held: {learned['bytes_held'] / 2**20:.1f} MiB "
          f"in {time.perf_counter() - start:.1f}s", flush=True)
    extra = {k: learned[k] for k in ("groups", "coefficients", "kept_step", "held_loss", "bytes_held", "held_rows",
                                     "texts_learned")}
    return float(record(cfg, learned["request"], "layerwise", f"layerwise-{int(time.time())}", extra=extra)["objective"])
