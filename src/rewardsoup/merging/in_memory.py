"""`merge_in_memory`: mergekit's merge of state dicts without touching disk, equal to `run_merge`'s output.

ties / linear / task_arithmetic / dare_ties run `rewardsoup.merging.tensor_math` (mergekit 0.1.5's math,
with a fast exact TIES trim); slerp and model_stock delegate to `mergekit.merge_state_dicts`.
"""

from __future__ import annotations

from typing import Mapping

import torch

from rewardsoup.core.errors import ConfigError, ModelError
from rewardsoup.merging.methods import resolve
from rewardsoup.merging.tensor_math import linear as _linear, task_arithmetic as _task_arithmetic

StateDict = Mapping[str, torch.Tensor]


def _delegated(method: str, base_sd: StateDict | None, member_sds: Mapping[str, StateDict], r: dict) -> dict:
    """slerp / model_stock through mergekit's own in-memory API."""
    from mergekit.merge_methods import merge_state_dicts

    names, p = r["names"], r["params"]
    sds = {n: member_sds[n] for n in names} | ({"\0base": base_sd} if method == "model_stock" else {})
    base_id = p["base_member"] if method == "slerp" else "\0base"
    return merge_state_dicts(sds, method, base=base_id, parameters={k: v for k, v in p.items() if k != "base_member"})


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


def merge_in_memory(method: str, base_sd: StateDict | None, member_sds: Mapping[str, StateDict], weights=None,
                    density=None, params=None, seed: int | None = None,
                    fast_trim: bool | str = True) -> dict[str, torch.Tensor]:
    """mergekit's merge of state dicts, tensor for tensor what `run_merge` writes (fp32 inputs).

    Tensors are visited in sorted-name order and members in sorted-name order: that is the order
    `run_merge` executes (its scheduler sorts tasks by tensor name), so DARE's Bernoulli draws with
    `seed` (a generator seeded like mergekit's `random_seed`) match. fast_trim: True = exact fast
    trim, "index" = fast trim breaking ties at the cut by lowest index (never sorts), False = mergekit's.
    """
    r = resolve(method, member_sds, weights, density, params)
    spec, names, p = r["spec"], r["names"], r["params"]
    if not spec.in_memory:
        raise ConfigError(f"merge method {method!r} has no in-memory merge; use merge_to_disk")
    if spec.uses_base and base_sd is None:
        raise ConfigError(f"merge method {method!r} needs the base state dict")
    if method in ("slerp", "model_stock"):
        return _delegated(method, base_sd, member_sds, r)
    ref_name, ref = ("base", base_sd) if spec.uses_base else (names[0], member_sds[names[0]])
    _check_alike(ref_name, ref, member_sds, names)
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
        elif method == "linear":
            out[key] = _linear(inputs, [r["weights"][n] for n in names], p["normalize"])
        else:
            out[key] = _task_arithmetic(method, base_sd[key], inputs, names, r, gen, fast_trim)
    return {k: out[k] for k in ref}
