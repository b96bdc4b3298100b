"""The loop's two prompt sets: train prompts (it samples and learns on them) and held-out prompts (it is judged
on them). Either the demo role-play prompts (`data.demo.roleplay_prompts`, cut into two disjoint sets and
written under the loop's folder) or two jsonl files of the user's. A prompt in both sets is refused: a win
rate on prompts the generator was tuned on says nothing about held-out prompts.
"""

from __future__ import annotations

import json
from pathlib import Path

from rewardsoup.core.atomic import atomic_write_text
from rewardsoup.core.errors import DataError
from rewardsoup.data.demo import roleplay_prompts
from rewardsoup.loop.config import LoopSettings
from rewardsoup.sampling.prompts import PromptItem, read_prompts


def _key(item: PromptItem) -> str:
    return json.dumps(item.messages, sort_keys=True, ensure_ascii=False)


def check_disjoint(train: list[PromptItem], heldout: list[PromptItem]) -> None:
    """DataError naming the first held-out prompt that is also a train prompt (same messages)."""
    seen = {_key(item): item.where for item in train}
    for item in heldout:
        if _key(item) in seen:
            raise DataError(f"{item.where}: this held-out prompt is also train prompt {seen[_key(item)]}; the "
                            "held-out prompts must not overlap the train prompts")


def demo_sets(loop: LoopSettings) -> tuple[list[dict], list[dict]]:
    """(train rows, held-out rows): the first train_count and the next heldout_count demo role-play prompts."""
    rows = roleplay_prompts(int(loop.seed))
    if loop.train_count + loop.heldout_count > len(rows):
        raise DataError(f"loop.train_count={loop.train_count} + loop.heldout_count={loop.heldout_count} exceeds "
                        f"the {len(rows)} demo role-play prompts")
    return rows[:loop.train_count], rows[loop.train_count:loop.train_count + loop.heldout_count]


def prompt_files(loop: LoopSettings, folder: Path, write: bool = True) -> tuple[Path, Path]:
    """The (train, held-out) jsonl files, checked disjoint; the demo's are written under `folder` (atomic)
    unless `write` is False (the pre-flight check)."""
    if loop.train_prompts is not None:
        train, heldout = Path(loop.train_prompts), Path(str(loop.heldout_prompts))
        check_disjoint(read_prompts(train), read_prompts(heldout))
        return train, heldout
    rows = demo_sets(loop)
    paths = folder / "train-prompts.jsonl", folder / "heldout-prompts.jsonl"
    if write:
        for path, part in zip(paths, rows):
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in part)
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                atomic_write_text(path, text)
        check_disjoint(read_prompts(paths[0]), read_prompts(paths[1]))
    return paths
