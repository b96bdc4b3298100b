"""Entry points of the data layer: read a source, adapt it, split it, and pair it when asked.

`load_canonical` gives the whole source in a canonical schema; `load_splits` hash-splits it first (so
identical texts never straddle splits) and then, for binary sources with ``pairs`` set, builds pairs inside
each split. Both return a ``report`` dict of counts for logs and tables. An empty split is not an error
here (training raises it); the report shows every size.

A multi-schema set (RewardBench style) is evaluation-only: `load_splits` puts every row in ``test``
(``report["eval_only"] = True``) and `check_trainable` refuses to train on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from datasets import Dataset

from rewardsoup.data.adapters import ADAPTERS, BUILDS_OWN_ROWS
from rewardsoup.data.pairs import build_pairs
from rewardsoup.data.schema import BINARY, MULTI, PAIRWISE
from rewardsoup.data.sources import read_source
from rewardsoup.data.split import SPLITS, split_dataset, split_fractions
from rewardsoup.core.registry import lookup
from rewardsoup.core.errors import ConfigError, DataError
from rewardsoup.core.plain import plain


@dataclass
class Canonical:
    """A whole source in one canonical schema ("pairwise", "binary" or "multi")."""

    schema: str
    dataset: Dataset
    report: dict[str, Any] = field(default_factory=dict)


@dataclass
class Splits:
    """Train/val/test of one data config, all in ``schema`` (pairwise once pairs were built)."""

    name: str
    schema: str
    train: Dataset
    val: Dataset
    test: Dataset
    report: dict[str, Any] = field(default_factory=dict)
    parts: list["Splits"] = field(default_factory=list)  # a mix (data/mix.py): each part's own splits


def as_dict(data_cfg: Any) -> dict[str, Any]:
    """A plain dict copy of a data config (an OmegaConf `DictConfig` is resolved; `core.plain`)."""
    cfg = plain(data_cfg)
    if not isinstance(cfg, dict):
        raise ConfigError(f"data config {data_cfg!r:.80}: expected a mapping with adapter, source, ...")
    return cfg


def _limit(cfg: dict[str, Any]) -> int | None:
    limit = cfg.get("limit")
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ConfigError(f"data.limit={limit!r}: expected a positive integer or null")
    return limit


def _head(ds: Dataset, limit: int | None) -> Dataset:
    return ds if limit is None or limit >= len(ds) else ds.select(range(limit))


def load_canonical(data_cfg: Any, tokenizer: Any = None) -> Canonical:
    """Read ``data_cfg.source`` with adapter ``data_cfg.adapter`` into a canonical Dataset.

    ``limit`` keeps the first N source rows. Report: name, adapter, source, schema, rows_read, rows, plus
    whatever the adapter counts (``reward_bench``: ``chosen_expansion``, the rows its k-chosen rows added).
    """
    cfg = as_dict(data_cfg)
    adapter_name = str(cfg.get("adapter"))
    adapter = lookup(ADAPTERS, adapter_name, "data.adapter")  # a built-in, or `module:function` of your own
    limit = _limit(cfg)
    raw = None
    if adapter_name not in BUILDS_OWN_ROWS:
        raw = read_source(str(cfg.get("source")), data_dir=cfg.get("data_dir"), split=cfg.get("hub_split") or "train")
        raw = _head(raw, limit)
    schema, dataset, *extra = adapter(raw, cfg, tokenizer)
    if raw is None:
        dataset = _head(dataset, limit)  # demo builds its own rows (others were cut at the source rows)
    report = {
        "name": cfg.get("name") or adapter_name,
        "adapter": adapter_name,
        "source": cfg.get("source"),
        "schema": schema,
        "rows_read": len(raw) if raw is not None else len(dataset),
        "rows": len(dataset),
        **(extra[0] if extra else {}),
    }
    return Canonical(schema=schema, dataset=dataset, report=report)


def load_splits(data_cfg: Any, tokenizer: Any = None) -> Splits:
    """Load, hash-split (``split`` config), then build pairs per split when ``pairs`` is set.

    Report: everything from `load_canonical`, ``split`` (val, test, salt), ``sizes`` per split (in the
    final schema), and ``pairs`` (the `build_pairs` report per split) when pairs were built.

    A multi (evaluation-only) set is not split: every row goes to ``test``, train and val are empty,
    ``report["eval_only"]`` is True and ``report["split"]`` says so (the config's fractions are ignored).
    """
    cfg = as_dict(data_cfg)
    val, test, salt = split_fractions(cfg.get("split"))
    canonical = load_canonical(cfg, tokenizer)
    schema = canonical.schema
    if schema == MULTI:
        return _eval_only_splits(cfg, canonical)
    parts = split_dataset(canonical.dataset, schema, val=val, test=test, salt=salt)
    report = dict(canonical.report, split={"val": val, "test": test, "salt": salt})
    pairs_cfg = cfg.get("pairs")
    if pairs_cfg:
        if schema != BINARY:
            raise ConfigError(
                f"data.pairs is set but adapter {cfg.get('adapter')!r} gives {schema} rows; "
                f"pairs only applies to binary sources (set data.pairs=null)"
            )
        if not isinstance(pairs_cfg, dict):
            raise ConfigError(f"data.pairs={pairs_cfg!r}: expected a mapping like {{group_key: group, seed: 0}}")
        group_key = None if "group_key" in pairs_cfg and pairs_cfg["group_key"] is None else "group"
        seed = pairs_cfg.get("seed", 0)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"data.pairs.seed={seed!r}: expected an integer")
        report["pairs"] = {}
        for name in SPLITS:
            parts[name], report["pairs"][name] = build_pairs(parts[name], group_key=group_key, seed=seed)
        schema = PAIRWISE
    report["schema"] = schema
    report["sizes"] = {name: len(parts[name]) for name in SPLITS}
    return Splits(
        name=report["name"], schema=schema, train=parts["train"], val=parts["val"], test=parts["test"], report=report
    )


def _eval_only_splits(cfg: dict[str, Any], canonical: Canonical) -> Splits:
    if cfg.get("pairs"):
        raise ConfigError(
            f"data.pairs is set but adapter {cfg.get('adapter')!r} gives {MULTI} rows; "
            f"pairs only applies to binary sources (set data.pairs=null)"
        )
    ds = canonical.dataset
    empty = ds.select([])
    report = dict(canonical.report, eval_only=True, split={"val": 0.0, "test": 1.0, "salt": None,
                                                            "note": "evaluation-only: every row in test"})
    report["sizes"] = {"train": 0, "val": 0, "test": len(ds)}
    return Splits(name=report["name"], schema=MULTI, train=empty, val=ds.select([]), test=ds, report=report)


def check_trainable(splits: Splits) -> None:
    """DataError when ``splits`` is an evaluation-only (multi schema) set: nothing may train on it."""
    if splits.schema == MULTI or splits.report.get("eval_only"):
        raise DataError(
            f"dataset '{splits.name}' is evaluation-only ({MULTI} schema: one chosen vs several rejected "
            f"replies per prompt, every row in test); it cannot be trained on: pick a pairwise or binary "
            f"data= for training and score this set with `python evaluate.py`"
        )
