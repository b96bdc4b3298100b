"""The resident model of a sweep: base and members loaded once per process, merges written in place.

Hydra's basic launcher (and our Optuna sweeper) runs multirun jobs one after another in one process, so
the base and members' state dicts and one resident model are kept in `_CACHE`, keyed by path and
modification time. Every trial after the first costs a merge (fast TIES/DARE trimming) and forward passes;
no model is written to disk. Launchers that start fresh processes (joblib, submitit) build one per process.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any, Mapping

from rewardsoup.merging import tensor_math, trim
from rewardsoup.core.errors import ConfigError
from rewardsoup.merging.in_memory import layer_weight_errors, merge_in_memory
from rewardsoup.merging.methods import resolve
from rewardsoup.merging.state_dicts import apply_state_dict, load_state_dict
from rewardsoup.models.loading import load_reward_model

_CACHE: dict[tuple, Any] = {}
SPARSE_BELOW = 0.5  # compress a tensor when fewer than half its entries differ from the base in any member


class Prepared:
    """Base and members of one sweep, prepared once per process for fast TIES / task-arithmetic trials.

    - Fine-tuning leaves most embedding rows untouched (3% of SmolLM2's rows change on the demo sets), and
      where every member equals the base TIES and task arithmetic return the base exactly. So for each
      tensor we keep only the positions where some member differs; a trial merges those and scatters them
      into the base.
    - A member's TIES trim depends on its density, not on the weights: mergekit's magnitude ranking of each
      member delta (`trim.magnitude_rank`, its own argsort) is computed on first use and kept, so a trial
      at any density trims with one comparison per entry.
    Results equal `merging.in_memory.merge_in_memory` bit for bit (tested). Memory: the ranks take 4 bytes per
    changed parameter and member; with `trim_ranks=False` (trial.trim_ranks) none are kept and TIES at
    density < 1 merges full tensors through `merge_in_memory` (fast exact trimming) instead.
    """

    def __init__(self, base_sd, member_sds):
        import torch

        self.base_sd, self.member_sds = base_sd, member_sds
        self.sparse: dict[str, tuple] = {}
        self._ranks: dict[tuple, Any] = {}
        self._clean = lambda: None  # (weak ref to) the model known to hold the base where no member changed
        for key, base in base_sd.items():
            if not base.is_floating_point() or base.numel() < 4096:
                continue
            flat = base.reshape(-1)
            changed = torch.zeros_like(flat, dtype=torch.bool)
            for sd in member_sds.values():
                changed |= sd[key].reshape(-1) != flat
            if changed.float().mean() < SPARSE_BELOW:
                idx = changed.nonzero().reshape(-1)
                self.sparse[key] = (idx, flat[idx].clone(), {n: sd[key].reshape(-1)[idx].clone()
                                                             for n, sd in member_sds.items()})

    def _keep(self, name: str, key: str, dtype, density: float):
        """Member `name`'s TIES keep-mask on `key` at `density` (None: no trim), over the compressed view
        when `key` is compressed; exactly the entries mergekit's argsort keeps on the full tensor."""
        if density >= 1:
            return None
        base = self.base_sd[key]
        if (name, key, dtype) not in self._ranks:
            rank = trim.magnitude_rank(self.member_sds[name][key].to(dtype) - base.to(dtype))
            self._ranks[(name, key, dtype)] = rank[self.sparse[key][0]] if key in self.sparse else rank
        return self._ranks[(name, key, dtype)] < max(1, int(density * base.numel()))

    def _merged(self, request, into: dict | None = None, trim_ranks: bool = True) -> dict | None:
        """{key: full tensor, or (changed positions, their merged values) for a compressed key}; None when
        the request is not a plain TIES / task-arithmetic merge (then `merging.in_memory.merge_in_memory` runs).
        `into`: a resident model's state dict; full tensors are written straight into it."""
        import torch

        method = request["method"]
        if not _plain_merge(request):
            return None
        r = resolve(method, {n: self.member_sds[n] for n in request["members"]}, request["weights"],
                            request["density"], request["params"])
        if method == "ties" and not trim_ranks:
            self._ranks.clear()  # free what an earlier trial kept
            if min(r["density"].values()) < 1:
                return None
        names, out, weights = r["names"], {}, r["weights"]
        layers = request.get("layer_weights") or {}  # per-tensor weights (a layer-wise soup): same masks, same math
        problem = layer_weight_errors(layers, names, list(self.base_sd))
        if problem:
            raise ConfigError(problem)
        for key, base in self.base_sd.items():
            if not base.is_floating_point():
                out[key] = base.clone()
                continue
            if layers:  # this tensor's weights; every other tensor keeps the request's own
                r = {**r, "weights": {n: (layers.get(n) or {}).get(key, w) for n, w in weights.items()}}
            dtype = base.dtype
            for n in names:
                dtype = torch.promote_types(dtype, self.member_sds[n][key].dtype)
            keep = [self._keep(n, key, dtype, r["density"][n]) for n in names] if method == "ties" else None
            if key in self.sparse:
                idx, base_c, members_c = self.sparse[key]
                out[key] = (idx, tensor_math.task_arithmetic(method, base_c, [members_c[n] for n in names], names, r,
                                                            None, True, keep))
            else:
                target = into.get(key) if into is not None else None
                out[key] = tensor_math.task_arithmetic(method, base, [self.member_sds[n][key] for n in names], names,
                                                      r, None, True, keep,
                                                      out=target if target is not None and target.is_contiguous()
                                                      else None)
        return out

    def merge(self, request, trim_ranks: bool = True) -> dict:
        """The merged state dict (equal to `merging.in_memory.merge_in_memory`'s)."""
        return self._state_dict(request, self._merged(request, trim_ranks=trim_ranks))

    def _state_dict(self, request, parts: dict | None) -> dict:
        if parts is None:
            return merge_in_memory(request["method"], self.base_sd,
                                           {n: self.member_sds[n] for n in request["members"]}, request["weights"],
                                           request["density"], request["params"], seed=request["seed"], fast_trim=True,
                                           layer_weights=request.get("layer_weights"))  # e.g. rescaled TIES
        out = {}
        for key, part in parts.items():
            if isinstance(part, tuple):
                flat = self.base_sd[key].reshape(-1).clone()
                flat[part[0]] = part[1]
                part = flat.reshape(self.base_sd[key].shape)
            out[key] = part
        return out

    def apply(self, model, request, trim_ranks: bool = True) -> None:
        """Merge `request` into the resident `model` in place, as `apply_state_dict(model, merge(request))`.

        A compressed tensor only gets its changed positions written: elsewhere the model still holds the
        base, as long as the last merge written into it was a compressed one too (`_clean`), which saves two
        copies of the embedding per trial.
        """
        import torch

        if self._clean() is model:
            own = model.state_dict()
            with torch.no_grad():
                parts = self._merged(request, into=own, trim_ranks=trim_ranks)  # None before writing anything
                for key, part in (parts or {}).items():
                    if isinstance(part, tuple):
                        own[key].view(-1)[part[0]] = part[1].to(own[key].dtype)
                    elif part.data_ptr() != own[key].data_ptr():
                        own[key].copy_(part.to(own[key].dtype))
            if parts is not None:
                return
        parts = self._merged(request, trim_ranks=trim_ranks)
        apply_state_dict(model, self._state_dict(request, parts))
        # a compressed merge leaves the base bits outside the changed positions; merge_in_memory may not
        self._clean = weakref.ref(model) if parts is not None else lambda: None


def _plain_merge(request) -> bool:
    """TIES / task arithmetic without rescaling (per-tensor weights too): what `Prepared` merges compressed."""
    return request["method"] in ("ties", "task_arithmetic") and not (request["params"] or {}).get("rescale")


def _stamp(path: str | Path) -> tuple[str, float]:
    p = Path(path).resolve()
    files = list(p.glob("*.safetensors")) or [p / "config.json"]
    return str(p), max(f.stat().st_mtime for f in files if f.exists()) if any(f.exists() for f in files) else 0.0


def resident(base_dir: str, members: Mapping[str, str]):
    """(Prepared base + members, resident model) for these folders, loaded once per process.

    A request for a subset of an already loaded member set (greedy soup) reuses it.
    """
    base = _stamp(base_dir)
    wanted = {n: _stamp(p) for n, p in members.items()}
    for (kind, cached_base, cached_members), value in _CACHE.items():
        if kind == "models" and cached_base == base and wanted.items() <= dict(cached_members).items():
            return value
    _CACHE.clear()  # a different member set: free the old tensors first
    base_sd = load_state_dict(base_dir)
    member_sds = {n: load_state_dict(p) for n, p in members.items()}
    value = (Prepared(base_sd, member_sds), load_reward_model(Path(base_dir)))
    _CACHE[("models", base, tuple(sorted(wanted.items())))] = value
    return value
