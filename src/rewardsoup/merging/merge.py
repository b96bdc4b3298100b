"""Merge named reward-model members into a soup with mergekit 0.1.5 -- on disk, or in memory with the same math.

Members are keyed by NAME everywhere (weights, densities); mergekit receives them sorted by name, so the
order of a members dict never changes a merge (it fixes the summation order and DARE's draw order).
- `METHODS`: the method registry (mergekit name, base use, per-member / global parameters, member counts).
- `mergekit_config(...)`: the exact mergekit YAML dict; `preflight(...)`: all checks before mergekit runs.
- `merge_to_disk(cfg, out_dir)`: in-process `run_merge` into a temporary sibling, renamed into place.
- `merge_in_memory(...)`: mergekit's ties / linear / task_arithmetic / dare_ties math on state dicts,
  equal to `run_merge`'s output (slerp and model_stock delegate to `mergekit.merge_state_dicts`).
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch

from rewardsoup.merging.tensor_math import linear as _linear, task_arithmetic as _task_arithmetic
from rewardsoup.core.errors import ConfigError, ModelError
from rewardsoup.core.atomic import atomic_dir
from rewardsoup.merging.checks import check_checkpoints
from rewardsoup.merging.checks import weight_files

DEFAULT_METHOD = "ties"
DTYPES = ("float32", "bfloat16", "float16", "float64")
_GTA = {"normalize": bool, "int8_mask": bool, "lambda": float, "rescale": bool}


@dataclass(frozen=True)
class MethodSpec:
    """One merge method as rewardsoup exposes it (parameter defaults are mergekit 0.1.5's)."""

    name: str
    merge_method: str  # mergekit's `merge_method`
    uses_base: bool  # the shared base checkpoint is mergekit's `base_model`
    member_params: tuple[str, ...]  # per-member parameters, e.g. ("weight", "density")
    global_params: Mapping[str, type]  # allowed global parameters and their types
    defaults: Mapping[str, Any]  # written explicitly into the YAML when not given
    required: tuple[str, ...] = ()  # global parameters without a default
    min_members: int = 1
    max_members: int | None = None
    in_memory: bool = True  # merge_in_memory supports it


METHODS: dict[str, MethodSpec] = {
    s.name: s
    for s in (
        MethodSpec("ties", "ties", True, ("weight", "density"), _GTA,
                   {"normalize": True, "int8_mask": False, "lambda": 1.0, "rescale": False}),
        MethodSpec("dare_ties", "dare_ties", True, ("weight", "density"), _GTA,
                   {"normalize": False, "int8_mask": False, "lambda": 1.0, "rescale": True}),
        MethodSpec("task_arithmetic", "task_arithmetic", True, ("weight",), _GTA,
                   {"normalize": False, "int8_mask": False, "lambda": 1.0, "rescale": False}),
        # linear ignores a base: mergekit would add base_model as one more weighted input.
        MethodSpec("linear", "linear", False, ("weight",), {"normalize": bool}, {"normalize": True}),
        # slerp runs between two members: `base_member` (default: first name in sorted order) is t = 0.
        MethodSpec("slerp", "slerp", False, (), {"t": float, "base_member": str}, {}, required=("t",),
                   min_members=2, max_members=2),
        MethodSpec("model_stock", "model_stock", True, (), {"filter_wise": bool}, {"filter_wise": False},
                   min_members=2),
        # passthrough copies one model, optionally cut to `layer_range: [start, end]` (slices syntax).
        MethodSpec("passthrough", "passthrough", False, (), {"layer_range": list}, {}, max_members=1,
                   in_memory=False),
    )
}


def method_spec(method: str) -> MethodSpec:
    if method not in METHODS:
        raise ConfigError(f"unknown merge method {method!r}; expected one of: {', '.join(METHODS)}")
    return METHODS[method]


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{what} is {value!r}; expected a finite number")
    return float(value)


def _per_member(value: Any, names: list[str], what: str, default: float | None) -> dict[str, float]:
    """A scalar or a {member name: value} mapping -> {name: float}, naming unknown / missing members."""
    if value is None:
        if default is None:
            raise ConfigError(f"{what} is required: give one per member ({', '.join(names)})")
        return {n: default for n in names}
    if not isinstance(value, Mapping):
        if isinstance(value, (list, tuple)):
            raise ConfigError(f"{what} must map member names to numbers, not a list ({value!r}); "
                              f"members: {', '.join(names)}")
        return {n: _number(value, what) for n in names}
    for key in value:
        if key not in names:
            raise ConfigError(f"{what} given for unknown member {key!r}; known members: {', '.join(names)}")
    missing = [n for n in names if n not in value]
    if missing:
        raise ConfigError(f"member {missing[0]!r} has no {what}; give one for each of: {', '.join(names)}")
    return {n: _number(value[n], f"{what} for member {n!r}") for n in names}


def resolve(method: str, members: Mapping[str, Any], weights=None, density=None, params=None) -> dict:
    """Validate a merge request (no disk access) -> {spec, names, weights, density, params}."""
    spec = method_spec(method)
    if not isinstance(members, Mapping) or not members:
        raise ConfigError("members must be a non-empty mapping of member name -> checkpoint")
    names = sorted(str(n) for n in members)
    count = len(names)
    if count < spec.min_members or (spec.max_members is not None and count > spec.max_members):
        want = (f"exactly {spec.min_members}" if spec.min_members == spec.max_members
                else f"at least {spec.min_members}" if spec.max_members is None else f"at most {spec.max_members}")
        raise ConfigError(f"merge method {method!r} needs {want} member(s), got {count}: {', '.join(names)}")
    w = d = None
    if "weight" in spec.member_params:
        w = _per_member(weights, names, "weight", 1.0)
        if all(v == 0 for v in w.values()):
            raise ConfigError(f"all member weights are zero ({w}); at least one must be non-zero")
    elif weights is not None:
        raise ConfigError(f"merge method {method!r} takes no per-member weights (got {weights!r})")
    if "density" in spec.member_params:
        d = _per_member(density, names, "density", 1.0)
        for n, v in d.items():
            if not 0 < v <= 1:
                raise ConfigError(f"density for member {n!r} is {v}; expected a number in (0, 1]")
    elif density is not None:
        raise ConfigError(f"merge method {method!r} takes no density (got {density!r})")
    p = dict(spec.defaults)
    for key, value in (params or {}).items():
        if key not in spec.global_params:
            raise ConfigError(f"unknown parameter {key!r} for merge method {method!r}; "
                              f"allowed: {', '.join(spec.global_params) or 'none'}")
        kind = spec.global_params[key]
        if kind is float:
            value = _number(value, f"parameter {key!r}")
        elif kind is list and isinstance(value, Sequence) and not isinstance(value, str):
            value = list(value)  # also OmegaConf ListConfig
        elif not isinstance(value, kind):
            raise ConfigError(f"parameter {key!r} is {value!r}; expected a {kind.__name__}")
        p[key] = value
    for key in spec.required:
        if key not in p:
            raise ConfigError(f"merge method {method!r} requires parameter {key!r}")
    if method == "slerp":
        if not 0 <= p["t"] <= 1:
            raise ConfigError(f"parameter 't' is {p['t']}; expected a number in [0, 1]")
        p.setdefault("base_member", names[0])
        if p["base_member"] not in names:
            raise ConfigError(f"parameter 'base_member' is {p['base_member']!r}; known members: {', '.join(names)}")
    if method == "linear" and p["normalize"] and sum(w.values()) == 0:
        raise ConfigError(f"linear weights sum to zero ({w}) with normalize: true")
    if method == "passthrough" and "layer_range" in p:
        lr = p["layer_range"]
        if len(lr) != 2 or not all(isinstance(x, int) for x in lr) or not 0 <= lr[0] < lr[1]:
            raise ConfigError(f"parameter 'layer_range' is {lr!r}; expected [start, end] with 0 <= start < end")
    return {"spec": spec, "names": names, "weights": w, "density": d, "params": p}


def _path(path: Any, who: str) -> str:
    text = os.path.abspath(os.fspath(path))  # absolute: mergekit asks the hub about relative names
    if "@" in text or "+" in text:
        raise ConfigError(f"{who} path {text!r} contains '@' or '+', which mergekit reads as a revision / LoRA")
    return text


def mergekit_config(method: str, base: str | None, members: Mapping[str, str], weights=None, density=None,
                    params=None, dtype: str = "float32") -> dict:
    """The mergekit YAML dict for this request (models sorted by member name, every parameter explicit)."""
    r = resolve(method, members, weights, density, params)
    spec, names, p = r["spec"], r["names"], dict(r["params"])
    if dtype not in DTYPES:
        raise ConfigError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    paths = {n: _path(members[n], f"member {n!r}") for n in names}
    if len(set(paths.values())) < len(paths):
        raise ConfigError(f"two members share one checkpoint path: {paths}")
    cfg: dict[str, Any] = {"merge_method": spec.merge_method}
    if spec.uses_base:
        if not base:
            raise ConfigError(f"merge method {method!r} needs a base checkpoint (base_model)")
        cfg["base_model"] = _path(base, "base")
        if cfg["base_model"] in paths.values():
            raise ConfigError(f"base {cfg['base_model']!r} is also listed as a member")
    if method == "slerp":
        cfg["base_model"] = paths[p.pop("base_member")]
    if method == "passthrough" and "layer_range" in p:
        cfg["slices"] = [{"sources": [{"model": paths[names[0]], "layer_range": list(p.pop("layer_range"))}]}]
    else:
        per = {"weight": r["weights"], "density": r["density"]}
        cfg["models"] = []
        for n in names:
            mp = {k: per[k][n] for k in spec.member_params}
            cfg["models"].append({"model": paths[n], "parameters": mp} if mp else {"model": paths[n]})
    if p:
        cfg["parameters"] = p
    cfg["dtype"] = dtype
    return cfg


def preflight(method: str, base: str | None, members: Mapping[str, str], weights=None, density=None,
              params=None) -> dict:
    """Every check before mergekit runs: the request (resolve) and the checkpoints on disk.

    Returns the resolved request plus `config` (the mergekit dict) and `models` (per-checkpoint summary).
    """

    r = resolve(method, members, weights, density, params)
    r["config"] = mergekit_config(method, base, members, weights, density, params)  # base / path checks
    r["models"] = check_checkpoints(base, {n: members[n] for n in r["names"]})
    return r


def merge_to_disk(config_dict: Mapping[str, Any], out_dir: str | os.PathLike, *, cuda: bool = False,
                  lazy_unpickle: bool = False, copy_tokenizer: bool = True, overwrite: bool = False,
                  seed: int | None = None) -> Path:
    """Run mergekit in-process into a temporary sibling of `out_dir`, add `mergekit_config.yml`, rename.

    Nothing is left behind on failure. `seed` is mergekit's `random_seed` (DARE's draws).
    """
    import yaml
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    out, plain = Path(out_dir), _plain(config_dict)
    if out.exists() and not overwrite:
        raise ConfigError(f"output folder {out} already exists; pass overwrite=True to replace it")
    try:
        cfg = MergeConfiguration.model_validate(plain)
    except Exception as e:  # pydantic ValidationError or mergekit's RuntimeError
        raise ConfigError(f"invalid mergekit config: {e}") from e
    # write_model_card=False: the card asks the hub about every model path (no network here).
    options = MergeOptions(cuda=cuda, lazy_unpickle=lazy_unpickle, copy_tokenizer=copy_tokenizer,
                           random_seed=seed, quiet=True, write_model_card=False)
    with atomic_dir(out, overwrite=overwrite) as tmp, _kept_rng_state():
        try:  # random_seed makes run_merge reseed python/numpy/torch globally; we restore them after
            run_merge(cfg, str(tmp), options=options)
        except Exception as e:
            raise ModelError(f"mergekit {plain.get('merge_method')} merge into {out} failed: {e}") from e
        (tmp / "mergekit_config.yml").write_text(yaml.safe_dump(plain, sort_keys=False), encoding="utf-8")
    return out


@contextlib.contextmanager
def _kept_rng_state():
    import random

    import numpy as np

    states = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=range(torch.cuda.device_count()) if torch.cuda.is_available() else []):
            yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])


def _plain(obj: Any) -> Any:  # plain dict / list / scalars (also from OmegaConf containers)
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    return [_plain(v) for v in obj] if isinstance(obj, (list, tuple)) else obj


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint folder (or one .safetensors file), floating ones as float32."""
    from safetensors.torch import load_file

    sd: dict[str, torch.Tensor] = {}
    for f in weight_files(path, who=str(path)):
        sd.update(load_file(str(f)))
    return {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}


def apply_state_dict(model: torch.nn.Module, sd: Mapping[str, torch.Tensor]) -> torch.nn.Module:
    """Copy `sd` into a resident model in place (cast to each parameter's dtype/device); no disk."""
    own = model.state_dict()
    for k, v in sd.items():  # check everything before touching the model
        if k not in own:
            raise ModelError(f"merged tensor {k!r} does not exist in {type(model).__name__}")
        if tuple(v.shape) != tuple(own[k].shape):
            raise ModelError(f"tensor {k!r}: merged shape {list(v.shape)} != model shape {list(own[k].shape)}")
    present = {own[k].data_ptr() for k in sd}
    missing = [k for k in own if k not in sd and own[k].data_ptr() not in present]  # tied copies are fine
    if missing:
        raise ModelError(f"merged state dict lacks tensor {missing[0]!r} of {type(model).__name__}")
    with torch.no_grad():
        for k, v in sd.items():
            own[k].copy_(v.to(dtype=own[k].dtype, device=own[k].device))
    return model


def merge_in_memory(method: str, base_sd: Mapping[str, torch.Tensor] | None,
                    member_sds: Mapping[str, Mapping[str, torch.Tensor]], weights=None, density=None,
                    params=None, seed: int | None = None, fast_trim: bool | str = True) -> dict[str, torch.Tensor]:
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
        from mergekit.merge_methods import merge_state_dicts

        sds = {n: member_sds[n] for n in names} | ({"\0base": base_sd} if method == "model_stock" else {})
        base_id = p["base_member"] if method == "slerp" else "\0base"
        return merge_state_dicts(sds, method, base=base_id, parameters={k: v for k, v in p.items() if k != "base_member"})
    ref_name, ref = ("base", base_sd) if spec.uses_base else (names[0], member_sds[names[0]])
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
    gen = None
    if method == "dare_ties" and seed is not None:
        dev = next(iter(ref.values())).device
        gen = torch.Generator(device=dev).manual_seed(seed)
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
