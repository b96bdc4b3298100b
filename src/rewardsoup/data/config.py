"""Schema of the `data` group (conf/data/*.yaml) and of every entry of `datasets` (conf/datasets/*.yaml).

Registered as `data/schema`. The defaults below are the settings most sources share, so a preset states only
what differs: its name, adapter and source, and whatever else it changes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from omegaconf import MISSING

from rewardsoup.core.config import at_least_one, checked, not_negative, one_of, store
from rewardsoup.data.render import STYLES


@dataclass
class SplitConfig:
    """Hash split (data/split.py): each row lands in val, test or train by a hash of its content and `salt`."""

    val: float = checked(0.05, check=not_negative)  # 5% of a hub-size set is thousands of rows
    test: float = checked(0.05, check=not_negative)  # as val: held out for the final word
    salt: str = "rewardsoup"  # change it to draw another split of the same rows

    @staticmethod
    def rules(node) -> list[tuple[str, str]]:
        if node.val + node.test >= 1:
            return [("test", f"val={node.val} + test={node.test} must be < 1 (train gets the rest)")]
        return []


@dataclass
class PairsConfig:
    """Binary rows paired into liked-vs-disliked pairs within each split (data/pairs.py)."""

    group_key: Optional[str] = "group"  # pair only rows of the same group (e.g. the same bot); null = any rows
    seed: int = 0  # which positive meets which negative


@dataclass
class DataConfig:
    name: str = MISSING  # name in tables, cache keys and W&B
    adapter: str = MISSING  # a built-in adapter (data/adapters.py) or your own `module:function`
    source: str = MISSING  # a local file or folder, a hub dataset name, or which demo set
    data_dir: Optional[str] = None  # hub subset folder (e.g. harmless-base); most sources have none
    hub_split: str = "train"  # the hub split read; we split by content hash ourselves
    columns: Dict[str, str] = field(default_factory=dict)  # canonical field -> your column; {} = same names
    limit: Optional[int] = checked(None, check=at_least_one)  # keep the first N source rows; null = all
    render_style: str = checked("plain", check=one_of(*STYLES))  # plain: texts are already rendered
    pairs: Optional[PairsConfig] = None  # binary sources only: pair rows (null = keep binary)
    split: Optional[SplitConfig] = field(default_factory=SplitConfig)  # null: evaluation-only, all rows in test
    parts: Dict[str, Any] = field(default_factory=dict)  # adapter=mix: part name -> that set's data config

    @staticmethod
    def rules(node) -> list[tuple[str, str]]:
        """A mix (adapter=mix) names trainable sets, each split its own way; nothing else has parts."""
        if node.adapter != MIX:
            return [("parts", f"only adapter={MIX} reads parts (this is adapter={node.adapter})")] if node.parts else []
        if not node.parts:
            return [("parts", "a mix needs at least one part: add `- /data@parts.<name>: <set>` to its defaults")]
        for name, part in node.parts.items():
            adapter = part.get("adapter") if hasattr(part, "get") else None
            if not adapter or adapter == MIX:
                return [(f"parts.{name}", f"not a data set (adapter={adapter!r}); name a conf/data set")]
            if adapter in EVAL_ONLY or part.get("split") is None:
                return [(f"parts.{name}", f"adapter={adapter} is evaluation-only (no training rows): it cannot "
                                          "mix into a training set")]
        return []


MIX = "mix"  # the adapter name of a multi-task set: the union of its parts' training rows (data/mix.py)
EVAL_ONLY = ("reward_bench",)  # adapters whose rows (one chosen vs several rejected) no objective trains on


store(DataConfig, "schema", group="data")
