"""The merge methods rewardsoup exposes, derived from mergekit's registry, and `resolve` (a request checked).

Every method's parameters, their types and defaults, and its member counts come from
`mergekit.merge_methods.get(name).spec` (mergekit 0.1.5): shared parameters are the global ones,
per-input ones the per-member ones, the input contract gives the member counts (a separate base checkpoint
counts as one of mergekit's inputs). rewardsoup adds only its own choices, here and nowhere else:
- `SUPPORTED`: the methods it wires: every mergekit method that applies to members of one base (in-memory
  math in `tensor_math` for ties / dare_ties / task_arithmetic / linear / dare_linear, the others delegated
  to `mergekit.merge_state_dicts`, passthrough on disk only);
- per-member parameters are `weight` (default 1.0 where mergekit has none) and `density`, the latter only
  for methods that sparsify (task arithmetic takes a density and ignores it, so it is refused here); the
  other per-member parameters of sparsifying methods (della's `epsilon`, breadcrumbs' `gamma`) are exposed
  as one value for every member (mergekit reads a global parameter as each model's default); passthrough's
  `scale` is not exposed;
- the base of slerp, nearswap and arcee_fusion is one of the two members (`base_member`, default: the first
  name in sorted order); nuslerp and multislerp, whose base is optional in mergekit, get the shared base
  (they interpolate task vectors); passthrough may cut the model to `layer_range: [start, end]`.
Members are keyed by NAME everywhere and sorted by name, so the order of a members dict never changes a merge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from mergekit.merge_methods import get as mergekit_method
from mergekit.merge_methods.base import BasePolicy, ParameterScope

from rewardsoup.core.errors import ConfigError

DEFAULT_METHOD = "ties"
SUPPORTED = ("ties", "dare_ties", "task_arithmetic", "linear", "slerp", "model_stock", "passthrough",
             "dare_linear", "della", "della_linear", "breadcrumbs", "breadcrumbs_ties", "sce", "karcher", "nuslerp",
             "multislerp", "nearswap", "arcee_fusion", "ram", "ramplus_tl")
_DISK_ONLY = ("passthrough",)
_MEMBER_DEFAULTS = {"weight": 1.0}  # rewardsoup's defaults where mergekit requires a value
_BASE_MEMBER = ("slerp", "nearswap", "arcee_fusion")  # mergekit's base_model is one of the two members
_OPTIONAL_BASE = ("nuslerp", "multislerp")  # mergekit's base is optional: members of one base use it
_EXTRA_PARAMS: dict[str, dict[str, type]] = {n: {"base_member": str} for n in _BASE_MEMBER} | {
    "passthrough": {"layer_range": list}}


@dataclass(frozen=True)
class MethodSpec:
    """One merge method as rewardsoup exposes it (see the module docstring for what is derived how)."""

    name: str  # mergekit's `merge_method`
    uses_base: bool  # the shared base checkpoint is mergekit's `base_model`
    member_params: tuple[str, ...]  # per-member parameters, e.g. ("weight", "density")
    member_defaults: Mapping[str, float]  # their defaults
    global_params: Mapping[str, Any]  # allowed global parameters and their types
    defaults: Mapping[str, Any]  # written explicitly into the YAML when not given
    required: tuple[str, ...] = ()  # global parameters without a default
    min_members: int = 1
    max_members: int | None = None
    in_memory: bool = True  # merge_in_memory supports it


def _derive(name: str) -> MethodSpec:
    """rewardsoup's view of mergekit's registered method `name`."""
    method = mergekit_method(name)
    spec, contract = method.spec, method.spec.contract
    sparsifies = getattr(method, "sparsification_method", None) is not None
    per_member = {p.name: p for p in spec.parameters if p.scope != ParameterScope.SHARED
                  and (p.name == "weight" or (p.name == "density" and sparsifies))}
    # della's epsilon, breadcrumbs' gamma: one value for every member (a global parameter in the YAML)
    shared = [p for p in spec.parameters if p.scope == ParameterScope.SHARED
              or (sparsifies and p.name not in per_member and p.name not in ("weight", "density"))]
    wants_base = contract.base == BasePolicy.REQUIRED or name in _OPTIONAL_BASE
    uses_base = wants_base and name not in _BASE_MEMBER
    counted = int(uses_base)  # mergekit counts the shared base among its inputs
    low = max(contract.min_inputs - counted, contract.min_non_base or 0, 1)
    high = None if contract.max_inputs is None else contract.max_inputs - counted
    if contract.max_non_base is not None:
        high = contract.max_non_base if high is None else min(high, contract.max_non_base)
    return MethodSpec(
        name=name, uses_base=uses_base, member_params=tuple(per_member),
        member_defaults={n: _MEMBER_DEFAULTS.get(n, p.default) for n, p in per_member.items()},
        global_params={p.name: p.value_type for p in shared} | _EXTRA_PARAMS.get(name, {}),
        defaults={p.name: p.default for p in shared if not p.required},
        required=tuple(p.name for p in shared if p.required), min_members=low, max_members=high,
        in_memory=name not in _DISK_ONLY)


METHODS: dict[str, MethodSpec] = {name: _derive(name) for name in SUPPORTED}


def method_spec(method: str) -> MethodSpec:
    if method in METHODS:
        return METHODS[method]
    try:
        mergekit_method(method)
    except RuntimeError:
        raise ConfigError(f"unknown merge method {method!r}; expected one of: {', '.join(METHODS)}") from None
    raise ConfigError(f"merge method {method!r} is in mergekit's registry but not wired into rewardsoup; "
                      f"expected one of: {', '.join(METHODS)}")


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


def _count(spec: MethodSpec, names: list[str]) -> None:
    count, low, high = len(names), spec.min_members, spec.max_members
    if count < low or (high is not None and count > high):
        want = (f"exactly {low}" if low == high else f"at least {low}" if high is None else f"at most {high}")
        raise ConfigError(f"merge method {spec.name!r} needs {want} member(s), got {count}: {', '.join(names)}")


def _member_values(spec: MethodSpec, names: list[str], weights, density) -> tuple[dict | None, dict | None]:
    w = d = None
    if "weight" in spec.member_params:
        w = _per_member(weights, names, "weight", spec.member_defaults["weight"])
        if all(v == 0 for v in w.values()):
            raise ConfigError(f"all member weights are zero ({w}); at least one must be non-zero")
    elif weights is not None:
        raise ConfigError(f"merge method {spec.name!r} takes no per-member weights (got {weights!r})")
    if "density" in spec.member_params:
        d = _per_member(density, names, "density", spec.member_defaults["density"])
        for n, v in d.items():
            if not 0 < v <= 1:
                raise ConfigError(f"density for member {n!r} is {v}; expected a number in (0, 1]")
    elif density is not None:
        raise ConfigError(f"merge method {spec.name!r} takes no density (got {density!r})")
    return w, d


def _param(key: str, value: Any, kind: Any) -> Any:
    if kind is float:
        return _number(value, f"parameter {key!r}")
    if kind is list and isinstance(value, Sequence) and not isinstance(value, str):
        return list(value)  # also OmegaConf ListConfig
    if isinstance(kind, type) and not isinstance(value, kind):
        raise ConfigError(f"parameter {key!r} is {value!r}; expected a {kind.__name__}")
    return value  # a typing construct: mergekit validates it


def _global_values(spec: MethodSpec, params: Mapping[str, Any] | None) -> dict[str, Any]:
    p = dict(spec.defaults)
    for key, value in (params or {}).items():
        if key not in spec.global_params:
            raise ConfigError(f"unknown parameter {key!r} for merge method {spec.name!r}; "
                              f"allowed: {', '.join(spec.global_params) or 'none'}")
        p[key] = _param(key, value, spec.global_params[key])
    for key in spec.required:
        if key not in p:
            raise ConfigError(f"merge method {spec.name!r} requires parameter {key!r}")
    return p


def _method_checks(method: str, p: dict[str, Any], names: list[str], w: dict | None) -> None:
    """rewardsoup's own checks on top of mergekit's types (slerp's t, base members, linear, layer_range)."""
    if method == "slerp" and not 0 <= p["t"] <= 1:
        raise ConfigError(f"parameter 't' is {p['t']}; expected a number in [0, 1]")
    if method in _BASE_MEMBER:
        p.setdefault("base_member", names[0])
        if p["base_member"] not in names:
            raise ConfigError(f"parameter 'base_member' is {p['base_member']!r}; known members: {', '.join(names)}")
    if method == "linear" and p["normalize"] and sum(w.values()) == 0:
        raise ConfigError(f"linear weights sum to zero ({w}) with normalize: true")
    if method == "passthrough" and "layer_range" in p:
        lr = p["layer_range"]
        if len(lr) != 2 or not all(isinstance(x, int) for x in lr) or not 0 <= lr[0] < lr[1]:
            raise ConfigError(f"parameter 'layer_range' is {lr!r}; expected [start, end] with 0 <= start < end")


def resolve(method: str, members: Mapping[str, Any], weights=None, density=None, params=None) -> dict:
    """Validate a merge request (no disk access) -> {spec, names, weights, density, params}."""
    spec = method_spec(method)
    if not isinstance(members, Mapping) or not members:
        raise ConfigError("members must be a non-empty mapping of member name -> checkpoint")
    names = sorted(str(n) for n in members)
    _count(spec, names)
    w, d = _member_values(spec, names, weights, density)
    p = _global_values(spec, params)
    _method_checks(method, p, names, w)
    return {"spec": spec, "names": names, "weights": w, "density": d, "params": p}
