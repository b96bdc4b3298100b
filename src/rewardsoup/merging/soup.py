"""merge.py's work: merge the named members into one soup on disk with mergekit.

The merge request comes from `cfg.merge` (method, per-member weights keyed by member NAME, density, global
parameters) and `cfg.members` (name -> folder); `cfg.model.base_dir` is mergekit's `base_model`. Every
pre-flight check runs before mergekit; the soup is written atomically with the exact mergekit YAML
beside it (`mergekit-yaml outputs/soups/NAME/mergekit_config.yml OUT` reproduces it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig

from rewardsoup.models.adapters import member_folders
from rewardsoup.models.cards import write_soup_card
from rewardsoup.core.errors import ConfigError
from rewardsoup.core.plain import plain
from rewardsoup.merging.layers import float_tensor_names, per_tensor_weights
from rewardsoup.merging.methods import method_spec
from rewardsoup.merging.on_disk import mergekit_config, merge_to_disk, preflight
from rewardsoup.core.tracking import start_run


def merge_request(cfg: DictConfig) -> dict[str, Any]:
    """The plain merge request of `cfg`: method, base, members (maybe a subset), weights, density, params."""
    m = plain(cfg.merge)
    members = {str(k): str(v) for k, v in plain(cfg.members).items()}
    use = m.get("use")
    if use:
        unknown = [n for n in use if n not in members]
        if unknown:
            raise ConfigError(f"merge.use names unknown member {unknown[0]!r}; members: {', '.join(members)}")
        members = {n: members[n] for n in use}
    members = member_folders(members, cfg.model.base_dir, cfg.paths.cache)  # LoRA adapter folders applied once
    spec = method_spec(str(m["method"]))
    params = {k: m[k] for k in spec.global_params if k in m and m[k] is not None}
    weights = m.get("weights") or None
    if weights and use:  # a subset merge uses the subset's weights only
        weights = {n: w for n, w in weights.items() if n in members}
    request = {"method": spec.name, "base": str(cfg.model.base_dir), "members": members,
               "weights": weights if "weight" in spec.member_params else None,
               "density": m.get("density") if "density" in spec.member_params else None,
               "params": params, "dtype": str(m.get("dtype", "float32")), "seed": m.get("seed")}
    layers = {n: g for n, g in (m.get("layers") or {}).items() if g and (n in members or not use)}
    if layers:  # merge.layers.<member>.<group>: that member's weight on that layer group (per-tensor weights)
        if "weight" not in spec.member_params:
            raise ConfigError(f"merge.layers: merge.method={spec.name} takes no per-member weights to set by layer")
        request["layer_weights"] = per_tensor_weights(layers, list(members), float_tensor_names(cfg.model.base_dir))
    return request


def checked_config(r: dict[str, Any]) -> dict[str, Any]:
    """Every pre-flight check on request `r`, then its exact mergekit YAML dict."""
    base = r["base"] if method_spec(r["method"]).uses_base else None
    layers = r.get("layer_weights")  # a layer-wise soup (`search.layerwise`): per-tensor weights
    preflight(r["method"], base, r["members"], r["weights"], r["density"], r["params"], layers)
    return request_config(r)


def request_config(r: dict[str, Any]) -> dict[str, Any]:
    """Request `r`'s mergekit YAML dict, unchecked: what `SOUP_CONFIG` holds beside a soup exported from it."""
    base = r["base"] if method_spec(r["method"]).uses_base else None
    return mergekit_config(r["method"], base, r["members"], r["weights"], r["density"], r["params"],
                           r.get("dtype", "float32"), r.get("layer_weights"))


def _card(r: dict[str, Any], out: Path) -> Callable[[Path], Path]:
    """The README.md model card of `out`, written into the soup's temporary folder before its rename: a soup
    folder under its final name always has its card."""
    return lambda tmp: write_soup_card(tmp, r, name=out.name, load_from=str(out))


def export(r: dict[str, Any], out: Path) -> Path:
    """Request `r` merged by mergekit into `out` (atomic, YAML and model card beside it; the pick rewrites the
    card with the test table)."""
    return merge_to_disk(checked_config(r), out, overwrite=True, seed=r.get("seed"), finish=_card(r, out))


def merge_soup(cfg: DictConfig) -> str:
    """Pre-flight, then mergekit into `merge.output_dir` (atomic, YAML beside it); returns the folder."""
    r = merge_request(cfg)
    config = checked_config(r)  # before the W&B run opens: bad input leaves nothing behind
    out = Path(cfg.merge.output_dir)
    with start_run(cfg, job_type="merge", name=out.name) as tracker:
        merge_to_disk(config, out, overwrite=True, seed=r["seed"], finish=_card(r, out))  # card: no test table
        tracker.summary({"soup": str(out), **{f"weight/{k}": v for k, v in (r["weights"] or {}).items()}})
    print(f"[rewardsoup] soup '{out.name}' ({r['method']}, members {', '.join(r['members'])}) -> {out}", flush=True)
    return str(out)
