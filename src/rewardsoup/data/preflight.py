"""Read and check a data config before any model exists, so bad data stops a job before the base is built.

`load_data` loads what a member trains on: one set (`load_splits`) or a mix (`load_mix`), every source read, its
rows adapted and checked, split and paired. It needs no tokenizer: without one, a ``chat_template`` render_style is
read as ``plain`` (what rendering falls back to for a tokenizer without a chat template, minus its warning), which
checks the same rows, fields and messages; only the rendered texts differ, so a job loads such a set again once the
base's tokenizer exists (`needs_tokenizer`). Errors are the loaders' own: one DataError or ConfigError naming the
file and, where known, the row or byte.
"""

from __future__ import annotations

from typing import Any

from rewardsoup.data.loading import Splits, as_dict, load_splits
from rewardsoup.data.mix import is_mix, load_mix

TEMPLATE = "chat_template"  # the render_style that needs the base's tokenizer (data/render.py)


def _configs(cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """The config and, for a mix, each part's config."""
    return [cfg] + [as_dict(part) for part in (cfg.get("parts") or {}).values()]


def needs_tokenizer(data_cfg: Any) -> bool:
    """True when the set (or a part of a mix) renders its conversations with the tokenizer's chat template."""
    return any(c.get("render_style") == TEMPLATE for c in _configs(as_dict(data_cfg)))


def _plain(cfg: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``cfg`` (and of each part of a mix) that renders plain instead of through a chat template."""
    out = dict(cfg, render_style="plain") if cfg.get("render_style") == TEMPLATE else dict(cfg)
    if out.get("parts"):
        out["parts"] = {name: _plain(as_dict(part)) for name, part in out["parts"].items()}
    return out


def load_data(data_cfg: Any, tokenizer: Any = None) -> Splits:
    """The splits of a data config, a mix's too; without ``tokenizer`` a chat template renders plain (see above)."""
    cfg = as_dict(data_cfg)
    if tokenizer is None:
        cfg = _plain(cfg)
    return load_mix(cfg, tokenizer) if is_mix(cfg) else load_splits(cfg, tokenizer)
