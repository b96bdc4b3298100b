"""Merges on disk with mergekit: the exact YAML, every check before it runs, and an atomic `run_merge`.

- `mergekit_config(...)`: the mergekit YAML dict (models sorted by member name, every parameter explicit);
- `preflight(...)`: the request (`methods.resolve`) and the checkpoints on disk (`checks`), before mergekit;
- `merge_to_disk(cfg, out_dir)`: in-process `run_merge` into a temporary sibling, `SOUP_CONFIG` (and the
  model card) written beside the weights, renamed into place.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Callable, Mapping

import torch

from rewardsoup.core.atomic import atomic_dir
from rewardsoup.core.errors import ConfigError, ModelError
from rewardsoup.core.plain import plain
from rewardsoup.merging.checks import check_checkpoints
from rewardsoup.merging.methods import resolve

DTYPES = ("float32", "bfloat16", "float16", "float64")
SOUP_CONFIG = "mergekit_config.yml"  # beside a soup's weights: `mergekit-yaml <soup>/mergekit_config.yml OUT`


def _path(path: Any, who: str) -> str:
    text = os.path.abspath(os.fspath(path))  # absolute: mergekit asks the hub about relative names
    if "@" in text or "+" in text:
        raise ConfigError(f"{who} path {text!r} contains '@' or '+', which mergekit reads as a revision / LoRA")
    return text


def _filtered(per_tensor: Mapping[str, float], default: float) -> list[dict[str, Any]]:
    """A member's per-tensor weights as mergekit conditions: one `filter` per tensor name, longest names first
    (mergekit takes the first filter that is a substring of the tensor's name, and a name can only be a
    substring of a longer one, so each tensor meets its own condition first), then the member's default."""
    names = sorted(per_tensor, key=lambda n: (-len(n), n))
    return [{"filter": n, "value": float(per_tensor[n])} for n in names] + [{"value": float(default)}]


def _models(r: dict, paths: dict[str, str], p: dict[str, Any],
            layer_weights: Mapping[str, Mapping[str, float]] | None = None) -> dict[str, Any]:
    """The `models` (or, for a passthrough cut, `slices`) entry of the YAML; pops what it places."""
    spec, names = r["spec"], r["names"]
    if spec.name == "passthrough" and "layer_range" in p:
        return {"slices": [{"sources": [{"model": paths[names[0]], "layer_range": list(p.pop("layer_range"))}]}]}
    per = {"weight": r["weights"], "density": r["density"]}
    models = []
    for n in names:
        mp = {k: per[k][n] for k in spec.member_params}
        if (layer_weights or {}).get(n):
            mp["weight"] = _filtered(layer_weights[n], mp["weight"])
        models.append({"model": paths[n], "parameters": mp} if mp else {"model": paths[n]})
    return {"models": models}


def mergekit_config(method: str, base: str | None, members: Mapping[str, str], weights=None, density=None,
                    params=None, dtype: str = "float32",
                    layer_weights: Mapping[str, Mapping[str, float]] | None = None) -> dict:
    """The mergekit YAML dict for this request (models sorted by member name, every parameter explicit;
    `layer_weights` {member: {tensor: weight}} become per-tensor filtered weights)."""
    r = resolve(method, members, weights, density, params)
    unknown = sorted(set(layer_weights or {}) - set(r["names"]))
    if unknown or (layer_weights and "weight" not in r["spec"].member_params):
        raise ConfigError(f"layer weights given for unknown member {unknown[0]!r}; members: {', '.join(r['names'])}"
                          if unknown else f"merge method {method!r} takes no per-member weights to vary by layer")
    spec, names, p = r["spec"], r["names"], dict(r["params"])
    if dtype not in DTYPES:
        raise ConfigError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    paths = {n: _path(members[n], f"member {n!r}") for n in names}
    if len(set(paths.values())) < len(paths):
        raise ConfigError(f"two members share one checkpoint path: {paths}")
    cfg: dict[str, Any] = {"merge_method": spec.name}
    if spec.uses_base:
        if not base:
            raise ConfigError(f"merge method {method!r} needs a base checkpoint (base_model)")
        cfg["base_model"] = _path(base, "base")
        if cfg["base_model"] in paths.values():
            raise ConfigError(f"base {cfg['base_model']!r} is also listed as a member")
    if "base_member" in p:  # slerp: t = 0 is this member
        cfg["base_model"] = paths[p.pop("base_member")]
    cfg.update(_models(r, paths, p, layer_weights))
    if p:
        cfg["parameters"] = p
    cfg["dtype"] = dtype
    return cfg


def preflight(method: str, base: str | None, members: Mapping[str, str], weights=None, density=None,
              params=None, layer_weights: Mapping[str, Mapping[str, float]] | None = None) -> dict:
    """Every check before mergekit runs: the request (resolve) and the checkpoints on disk.

    Returns the resolved request plus `config` (the mergekit dict) and `models` (per-checkpoint summary).
    """
    r = resolve(method, members, weights, density, params)
    r["config"] = mergekit_config(method, base, members, weights, density, params,  # base / path checks
                                  layer_weights=layer_weights)
    r["models"] = check_checkpoints(base, {n: members[n] for n in r["names"]})
    return r


def merge_to_disk(config_dict: Mapping[str, Any], out_dir: str | os.PathLike, *, cuda: bool = False,
                  lazy_unpickle: bool = False, copy_tokenizer: bool = True, overwrite: bool = False,
                  seed: int | None = None, finish: Callable[[Path], Any] | None = None) -> Path:
    """Run mergekit in-process into a temporary sibling of `out_dir`, add `SOUP_CONFIG`, `finish(tmp)` (more
    files, e.g. the model card), rename.

    Nothing is left behind on failure. `seed` is mergekit's `random_seed` (DARE's draws).
    """
    import yaml
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    out, config = Path(out_dir), plain(config_dict)
    if out.exists() and not overwrite:
        raise ConfigError(f"output folder {out} already exists; pass overwrite=True to replace it")
    try:
        cfg = MergeConfiguration.model_validate(config)
    except Exception as e:  # pydantic ValidationError or mergekit's RuntimeError
        raise ConfigError(f"invalid mergekit config: {e}") from e
    # write_model_card=False: the card asks the hub about every model path (no network here).
    options = MergeOptions(cuda=cuda, lazy_unpickle=lazy_unpickle, copy_tokenizer=copy_tokenizer,
                           random_seed=seed, quiet=True, write_model_card=False)
    with atomic_dir(out, overwrite=overwrite) as tmp, _kept_rng_state():
        try:  # random_seed makes run_merge reseed python/numpy/torch globally; we restore them after
            run_merge(cfg, str(tmp), options=options)
        except Exception as e:
            raise ModelError(f"mergekit {config.get('merge_method')} merge into {out} failed: {e}") from e
        (tmp / SOUP_CONFIG).write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        if finish is not None:
            finish(tmp)
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
