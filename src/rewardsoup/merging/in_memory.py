"""`merge_in_memory`: mergekit's merge of state dicts without touching disk, equal to `run_merge`'s output.

ties / linear / task_arithmetic / dare_ties run `rewardsoup.merging.tensor_math` (mergekit 0.1.5's math,
with a fast exact TIES trim); every other method delegates to mergekit's own in-memory API,
`mergekit.merge_state_dicts`, fed like `run_merge` (tensors in sorted-name order, one tensor per batch,
the torch generator seeded with `seed`), so its random methods (dare_linear, della) draw as `run_merge` does.
"""

from __future__ import annotations

from typing import Mapping

import torch

from rewardsoup.core.errors import ConfigError, ModelError
from rewardsoup.merging.methods import resolve
from rewardsoup.merging.tensor_math import linear as _linear, task_arithmetic as _task_arithmetic

StateDict = Mapping[str, torch.Tensor]


_OWN_MATH = ("ties", "dare_ties", "task_arithmetic", "linear")  # tensor_math; the rest: mergekit in memory
_BASE = "\0base"  # the shared base's id among merge_state_dicts' inputs (no member can be named so)


def _delegated(base_sd: StateDict | None, member_sds: Mapping[str, StateDict], r: dict, seed: int | None) -> dict:
    """Any other method through mergekit's own in-memory API, as `run_merge` executes it: tensors in sorted
    name order, one per batch, the members in sorted name order, torch's generator seeded with `seed` (and
    restored after), so random sparsification draws the same numbers."""
    from mergekit.merge_methods import merge_state_dicts
    from mergekit.merge_methods.base import BatchOptions

    spec, names, p = r["spec"], r["names"], dict(r["params"])
    base_id = p.pop("base_member", None) or (_BASE if spec.uses_base else None)
    keys = sorted(member_sds[names[0]])
    sds = {n: {k: member_sds[n][k] for k in keys} for n in names}
    if spec.uses_base:
        sds = {_BASE: {k: base_sd[k] for k in keys}} | sds
    per = {"weight": r["weights"], "density": r["density"]}
    params = p | {k: per[k] for k in spec.member_params}
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        return merge_state_dicts(sds, spec.name, base=base_id, parameters=params,
                                 batch_options=BatchOptions(max_bytes=1, max_groups=1))


def _check_alike(ref_name: str, ref: StateDict, member_sds: Mapping[str, StateDict], names: list[str]) -> None:
    """Every member has exactly `ref`'s tensors with `ref`'s shapes; the error names member and tensor."""
    for n in names:
        sd = member_sds[n]
        for key in ref:
            if key not in sd:
                raise ModelError(f"member {n!r} lacks tensor {key!r}")
            if sd[key].shape != ref[key].shape:
                raise ModelError(f"member {n!r}: tensor {key!r} has shape {list(sd[key].shape)} "
                                 f"but {ref_name} has {list(ref[key].shape)}")
        extra = [k for k in sd if k not in ref]
        if extra:
            raise ModelError(f"member {n!r} has tensor {extra[0]!r} that {ref_name} lacks")


def layer_weight_errors(layer_weights: Mapping[str, Mapping[str, float]] | None, names: list[str],
                        keys: list[str]) -> str | None:
    """Why per-tensor weights {member: {tensor name: weight}} do not fit these members and tensors (None: fine)."""
    for member, per in (layer_weights or {}).items():
        if member not in names:
            return f"layer weights given for unknown member {member!r}; members: {', '.join(names)}"
        unknown = sorted(set(per) - set(keys))
        if unknown:
            return f"layer weights of member {member!r} name tensor {unknown[0]!r}, which the models lack"
    return None


def merge_in_memory(method: str, base_sd: StateDict | None, member_sds: Mapping[str, StateDict], weights=None,
                    density=None, params=None, seed: int | None = None,
                    fast_trim: bool | str = True, layer_weights: Mapping[str, Mapping[str, float]] | None = None
                    ) -> dict[str, torch.Tensor]:
    """mergekit's merge of state dicts, tensor for tensor what `run_merge` writes (fp32 inputs).

    Tensors are visited in sorted-name order and members in sorted-name order: that is the order
    `run_merge` executes (its scheduler sorts tasks by tensor name), so DARE's Bernoulli draws with
    `seed` (a generator seeded like mergekit's `random_seed`) match. fast_trim: True = exact fast
    trim, "index" = fast trim breaking ties at the cut by lowest index (never sorts), False = mergekit's.
    `layer_weights` {member: {tensor name: weight}}: a member's weight on those tensors (a layer-wise soup;
    mergekit reads them as per-tensor `filter` values, `on_disk.mergekit_config`); own-math methods only.
    """
    r = resolve(method, member_sds, weights, density, params)
    spec, names, p = r["spec"], r["names"], r["params"]
    if not spec.in_memory:
        raise ConfigError(f"merge method {method!r} has no in-memory merge; use merge_to_disk")
    if spec.uses_base and base_sd is None:
        raise ConfigError(f"merge method {method!r} needs the base state dict")
    ref_name, ref = ("base", base_sd) if spec.uses_base else (names[0], member_sds[names[0]])
    _check_alike(ref_name, ref, member_sds, names)
    problem = layer_weight_errors(layer_weights, names, list(ref))
    if problem or (layer_weights and method not in _OWN_MATH):
        raise ConfigError(problem or f"layer weights need one of {', '.join(_OWN_MATH)}, not {method!r}")
    if method not in _OWN_MATH:
        merged = _delegated(base_sd, member_sds, r, seed)
        return {k: merged[k] for k in ref}
    gen = None
    if method == "dare_ties" and seed is not None:
        gen = torch.Generator(device=next(iter(ref.values())).device).manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for key in sorted(ref):
        inputs = [member_sds[n][key] for n in names]
        if not all(t.is_floating_point() for t in inputs + [ref[key]]):
            if any(not torch.equal(t, ref[key]) for t in inputs):
                raise ModelError(f"non-floating tensor {key!r} differs between members")
            out[key] = ref[key].clone()
        else:
            rk = r if not layer_weights else {**r, "weights": {n: (layer_weights.get(n) or {}).get(key, w)
                                                               for n, w in r["weights"].items()}}
            if method == "linear":
                out[key] = _linear(inputs, [rk["weights"][n] for n in names], p["normalize"])
            else:
                out[key] = _task_arithmetic(method, base_sd[key], inputs, names, rk, gen, fast_trim)
    return {k: out[k] for k in ref}
