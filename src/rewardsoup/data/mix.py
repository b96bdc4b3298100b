"""A multi-task set (adapter=mix): the union of several sets' TRAINING rows, each part split its own way.

Each part is loaded and split exactly as when a member trains on it alone (`load_splits`), so the mix's
training rows are the members' training rows and no part's val or test row ever trains the multi-task model.
Binary parts stay binary and pairwise parts pairwise (a binary part with `pairs` set is pairwise, as for
its member): the `multitask` objective trains each row with its own loss. Validation and test stay per part.
"""

from __future__ import annotations

from typing import Any

from datasets import Dataset

from rewardsoup.core.errors import ConfigError, DataError
from rewardsoup.data.config import MIX
from rewardsoup.data.loading import Splits, as_dict, check_trainable, load_splits
from rewardsoup.data.schema import BINARY, PAIRWISE

MIXED = "mixed"  # the schema of a mix's training rows: binary and pairwise rows side by side
# one row of the mix: `pair` says which loss it gets; binary rows keep their text in `chosen`, label in `target`
MIX_COLUMNS = ("part", "pair", "prompt", "chosen", "rejected", "target")


def is_mix(data_cfg: Any) -> bool:
    return str(as_dict(data_cfg).get("adapter")) == MIX


def _rows(part: Splits) -> list[dict[str, Any]]:
    if part.schema == PAIRWISE:
        return [{"part": part.name, "pair": True, "prompt": r["prompt"], "chosen": r["chosen"],
                 "rejected": r["rejected"], "target": float(r["margin"] or 0.0)} for r in part.train]
    if part.schema == BINARY:
        return [{"part": part.name, "pair": False, "prompt": "", "chosen": r["text"], "rejected": "",
                 "target": float(r["label"])} for r in part.train]
    raise ConfigError(f"data.parts.{part.name}: {part.schema} rows cannot mix into a training set")


def load_mix(data_cfg: Any, tokenizer: Any = None) -> Splits:
    """The mix's Splits: `train` holds every part's training rows (MIX_COLUMNS), `report['parts']` each
    part's report, and `parts` (in the report's order) each part's own Splits for per-part validation."""
    cfg = as_dict(data_cfg)
    parts_cfg = cfg.get("parts") or {}
    if not parts_cfg:
        raise ConfigError(f"data.parts: the mix '{cfg.get('name')}' names no sets")
    parts = []
    for name, part_cfg in parts_cfg.items():
        try:
            part = load_splits(part_cfg, tokenizer)
            check_trainable(part)
        except DataError as err:
            raise DataError(f"data.parts.{name}: {err}") from err
        parts.append(part)
    rows = [row for part in parts for row in _rows(part)]
    if not rows:
        raise DataError(f"mix '{cfg.get('name')}': its parts have no training rows "
                        f"({ {p.name: p.report.get('sizes') for p in parts} })")
    train = Dataset.from_list(rows)
    report = {"name": cfg.get("name"), "adapter": MIX, "schema": MIXED,
              "parts": {p.name: p.report for p in parts},
              "sizes": {s: sum(len(getattr(p, s)) for p in parts) for s in ("train", "val", "test")}}
    empty = train.select([])
    return Splits(str(cfg.get("name")), MIXED, train, empty, empty, report, parts)
