"""Canonical row schemas shared by every stage, and the checks that keep rows in them.

Three schemas exist (see docs/CONTRACTS.md):

- pairwise: ``prompt`` ("" when none), ``chosen``, ``rejected``, ``margin`` (float or None),
  ``group`` (str or None). The text scored for a side is ``prompt + chosen`` / ``prompt + rejected``, so the
  reply sits at the END of the text and left truncation keeps it.
- binary: ``text``, ``label`` (0/1), ``group`` (str or None).
- multi (evaluation only, RewardBench style): ``prompt`` ("" when none), ``chosen`` (one reply),
  ``rejected`` (a non-empty list of replies), ``subset`` (str or None: the per-subset score key) and
  ``group`` (str or None: the source row's id, shared by the rows one k-chosen source row expands into).
  The scored texts are ``[prompt + chosen, prompt + rejected_1, ...]``, chosen FIRST (`multi_texts`).

Validators return a clean row or raise `DataError` naming the source, the row (a 0-based index into the
source rows), the field and what was expected.
"""

from __future__ import annotations

from typing import Any

from datasets import Dataset, Features, List, Value

from rewardsoup.core.errors import DataError

PAIRWISE = "pairwise"
BINARY = "binary"
MULTI = "multi"  # evaluation-only: never trained on (load_splits puts every row in test)

PAIRWISE_FEATURES = Features(
    {
        "prompt": Value("string"),
        "chosen": Value("string"),
        "rejected": Value("string"),
        "margin": Value("float64"),
        "group": Value("string"),
    }
)
BINARY_FEATURES = Features({"text": Value("string"), "label": Value("int64"), "group": Value("string")})
MULTI_FEATURES = Features(
    {
        "prompt": Value("string"),
        "chosen": Value("string"),
        "rejected": List(Value("string")),
        "subset": Value("string"),
        "group": Value("string"),
    }
)
FEATURES = {PAIRWISE: PAIRWISE_FEATURES, BINARY: BINARY_FEATURES, MULTI: MULTI_FEATURES}



def rows_dataset(rows: list[dict[str, Any]], features: Features) -> Dataset:
    """``Dataset.from_list(rows, features=features)``, also for no rows (datasets 5 then fails: "Keys mismatch")."""
    if not rows:
        return Dataset.from_dict({name: [] for name in features}, features=features)
    return Dataset.from_list(rows, features=features)


_TRUE = {"1", "true"}
_FALSE = {"0", "false"}


def _where(source: str, index: int, field: str) -> str:
    return f"{source}, row {index} (0-based), field '{field}'"


def coerce_label(value: Any, source: str, index: int, field: str = "label") -> int:
    """Turn 0/1, True/False or "0"/"1"/"true"/"false" (any case) into 0 or 1; anything else is a DataError."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)) and value in (0, 1):
        return int(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return 1 if value.strip().lower() in _TRUE else 0
    raise DataError(
        f"{_where(source, index, field)}: bad label {value!r}; expected 0/1, true/false or "
        f'"0"/"1"/"true"/"false"'
    )


def _text(value: Any, source: str, index: int, field: str, allow_empty: bool = False) -> str:
    if value is None and allow_empty:
        return ""
    if not isinstance(value, str):
        raise DataError(f"{_where(source, index, field)}: expected a string, got {type(value).__name__} {value!r:.80}")
    if not value and not allow_empty:
        raise DataError(f"{_where(source, index, field)}: empty text; expected a non-empty string")
    return value


def _group(value: Any) -> str | None:
    return None if value is None else str(value)


def _margin(value: Any, source: str, index: int) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise DataError(f"{_where(source, index, 'margin')}: bad margin {value!r}; expected a number or null") from None


def validate_pairwise(row: dict[str, Any], source: str, index: int) -> dict[str, Any]:
    """Check one pairwise row and return it with exactly the canonical fields.

    ``chosen`` and ``rejected`` must be non-empty strings (a reply of only spaces is allowed: hh-rlhf
    prefers an empty-looking reply in some rows), and each scored text must hold more than whitespace.
    """
    prompt = _text(row.get("prompt"), source, index, "prompt", allow_empty=True)
    chosen = _text(row.get("chosen"), source, index, "chosen")
    rejected = _text(row.get("rejected"), source, index, "rejected")
    for field, reply in (("chosen", chosen), ("rejected", rejected)):
        if not (prompt + reply).strip():
            raise DataError(f"{_where(source, index, field)}: prompt + {field} is blank; expected some text")
    return {
        "prompt": prompt,
        "chosen": chosen,
        "rejected": rejected,
        "margin": _margin(row.get("margin"), source, index),
        "group": _group(row.get("group")),
    }


def validate_binary(row: dict[str, Any], source: str, index: int) -> dict[str, Any]:
    """Check one binary row (non-blank ``text``, label coercible to 0/1) and return the canonical fields."""
    text = _text(row.get("text"), source, index, "text")
    if not text.strip():
        raise DataError(f"{_where(source, index, 'text')}: blank text; expected some non-whitespace text")
    return {"text": text, "label": coerce_label(row.get("label"), source, index), "group": _group(row.get("group"))}


def pair_texts(row: dict[str, Any]) -> tuple[str, str]:
    """The two scored texts of a pairwise row: ``(prompt + chosen, prompt + rejected)``."""
    prompt = row.get("prompt") or ""
    return prompt + row["chosen"], prompt + row["rejected"]


def validate_multi(row: dict[str, Any], source: str, index: int) -> dict[str, Any]:
    """Check one multi row and return it with exactly the canonical fields.

    ``chosen`` must be a non-empty string and ``rejected`` a non-empty list of non-empty strings (an item
    is named ``rejected[j]``, 0-based); each scored text must hold more than whitespace. ``subset`` and
    ``group`` are strings or None.
    """
    prompt = _text(row.get("prompt"), source, index, "prompt", allow_empty=True)
    chosen = _text(row.get("chosen"), source, index, "chosen")
    rejected = row.get("rejected")
    if not isinstance(rejected, (list, tuple)):
        raise DataError(
            f"{_where(source, index, 'rejected')}: expected a list of strings, got {type(rejected).__name__} "
            f"{rejected!r:.80}"
        )
    if not rejected:
        raise DataError(f"{_where(source, index, 'rejected')}: empty list; expected at least one rejected reply")
    rejected = [_text(reply, source, index, f"rejected[{j}]") for j, reply in enumerate(rejected)]
    for field, reply in [("chosen", chosen)] + [(f"rejected[{j}]", r) for j, r in enumerate(rejected)]:
        if not (prompt + reply).strip():
            raise DataError(f"{_where(source, index, field)}: prompt + reply is blank; expected some text")
    return {
        "prompt": prompt,
        "chosen": chosen,
        "rejected": rejected,
        "subset": _group(row.get("subset")),
        "group": _group(row.get("group")),
    }


def multi_texts(row: dict[str, Any]) -> list[str]:
    """The scored texts of a multi row: ``[prompt + chosen, prompt + rejected_1, ...]`` -- chosen FIRST."""
    prompt = row.get("prompt") or ""
    return [prompt + row["chosen"]] + [prompt + reply for reply in row["rejected"]]
