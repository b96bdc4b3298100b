"""The tuning stage's data: a sample.py `mode=best` file read as (prompt, chosen reply) examples.

Each line must carry the messages, the chosen reply and the generator that wrote the candidates
(`sampling.generation.family`: architecture and vocabulary). Replies that another generator family wrote are
refused: their tokens would mean something else to this one, and "fine-tune on your own best samples" is
what the loop claims to do. Every problem is a `DataError` naming the file and the 1-based line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rewardsoup.core.errors import DataError
from rewardsoup.sampling.prompts import PromptItem, item_from_row, read_jsonl


@dataclass
class Pick:
    """One prompt and the reply the reward model chose for it."""

    item: PromptItem
    reply: str
    reward: float


def read_picks(path: str | Path, family: str) -> list[Pick]:
    """The chosen reply of every line of a mode=best file written by a generator of `family`."""
    picks = []
    for where, row in read_jsonl(path, "picks"):
        item = item_from_row(row, where)
        chosen = row.get("chosen") if isinstance(row, dict) else None
        if not isinstance(chosen, dict) or not isinstance(chosen.get("text"), str):
            raise DataError(f"{where}: no `chosen` reply; expected a line of `python sample.py mode=best` "
                            "(mode=preferences files hold pairs, not picks)")
        origin = row.get("generator") or {}
        if not origin.get("family"):
            raise DataError(f"{where}: no `generator.family`: the line does not say which generator wrote its "
                            "candidates (reranked or older files cannot be tuned on); sample them again")
        if origin["family"] != family:
            raise DataError(f"{where}: written by generator '{origin.get('name')}' of family {origin['family']}, "
                            f"but the generator being tuned is of family {family} (another architecture or "
                            "tokenizer): sample with the generator you tune")
        if not chosen["text"].strip():
            raise DataError(f"{where}: the chosen reply is empty")
        picks.append(Pick(item, chosen["text"], float(chosen.get("reward", float("nan")))))
    return picks
