"""Which Trainer checkpoint a rerun resumes from: every trained stage (members, tuned generators) shares it.

The Trainer writes `trainer_state.json` last, so a checkpoint without a readable one was cut short by a kill
and is never resumed from; a checkpoint at the run's last step is not resumed either (transformers would take
one optimizer step more), so a rerun replays the end exactly.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path


def trainer_state(ckpt: Path) -> dict | None:
    """The checkpoint's trainer_state.json, or None when a kill cut the checkpoint short."""
    try:
        return json.loads((ckpt / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return None


def finished(state: dict, max_steps: int) -> bool:
    """A checkpoint at this run's last step (`max_steps`, else the one its run planned): transformers resumed
    from it takes one optimizer step more (it checks the limit after a step), so it is not resumed from."""
    return int(state.get("global_step", 0)) >= (max_steps if max_steps > 0 else int(state.get("max_steps") or 0)) > 0


def last_checkpoint(work_dir: Path, max_steps: int, main: bool = True) -> str | None:
    """The newest COMPLETE checkpoint under `work_dir/checkpoints` short of the last step; the main process
    removes ones a kill cut short so they are never resumed."""
    ckpts = sorted((work_dir / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    for ckpt in reversed(ckpts):
        state = trainer_state(ckpt)
        if state is not None and not finished(state, max_steps):
            return str(ckpt)
        if state is not None or not main:
            continue
        print(f"[rewardsoup] {ckpt.name} is incomplete (interrupted while saving); removing it", flush=True)
        shutil.rmtree(ckpt, ignore_errors=True)
    return None
