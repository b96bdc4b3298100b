"""The loop recipe's `loop:` block (conf/recipe/*loop*.yaml): its schema, value rules and who picks and judges.

Checked by `settings()` before the recipe's first stage, so a bad value is one `error:` line naming
`loop.<field>` and nothing is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rewardsoup.core.config import at_least, at_least_one, checked, existing_file, model_folder, problems, unset
from rewardsoup.core.errors import ConfigError

SOUP = "soup"  # a picker or judge named `soup` is the recipe's picked soup


def _some(value: Any) -> str | None:
    return None if value else "must name at least one picker (name: soup, a member, or a folder)"


@dataclass
class LoopSettings:
    rounds: int = checked(check=at_least_one)  # k: sample -> pick -> fine-tune, k times (k = 0 would be no loop)
    n: int = checked(check=at_least(2))  # candidates per train prompt: best of one is no choice
    generator: str = MISSING  # round 0's generator: hub name, local folder or embedded:...
    pickers: Dict[str, str] = checked(check=_some, factory=dict)  # name -> soup | member name | folder
    judge: str = MISSING  # soup | member name | folder: never one of the pickers
    seed: int = MISSING  # round r samples with seed + r and tunes with seed + r
    train_prompts: Optional[str] = checked(None, check=existing_file)  # jsonl; null: the demo role-play prompts
    heldout_prompts: Optional[str] = checked(None, check=existing_file)  # jsonl; null: the demo role-play prompts
    train_count: int = checked(check=at_least_one)  # demo prompts the loop learns on
    heldout_count: int = checked(check=at_least_one)  # demo prompts it is judged on (disjoint from train)
    sample: List[str] = field(default_factory=list)  # sample.py overrides: generation settings of every round
    tune: List[str] = field(default_factory=list)  # tune.py overrides: the fine-tuning of every round


def settings(raw: Mapping[str, Any], where: str) -> LoopSettings:
    """The `loop:` block of recipe file `where`, typed and checked; ConfigError naming `loop.<field>`."""
    try:
        node = OmegaConf.merge(OmegaConf.structured(LoopSettings), dict(raw))
    except OmegaConfBaseException as exc:
        raise ConfigError(f"{where}: loop.{exc.full_key}: {str(exc).splitlines()[0]}") from None
    found = unset(node, "loop.") or problems(node, "loop.")
    if found:
        raise ConfigError(f"{where}: {found[0]}")
    if (raw.get("train_prompts") is None) != (raw.get("heldout_prompts") is None):
        raise ConfigError(f"{where}: loop.train_prompts and loop.heldout_prompts are given together (files) or "
                          "both left null (the demo role-play prompts)")
    return OmegaConf.to_object(node)


def resolve(value: str, named: Mapping[str, Path], what: str) -> Path:
    """A picker's or the judge's folder: `soup`, a member or alternative of the recipe, or a model folder."""
    if value in named:
        return Path(named[value])
    if Path(value).expanduser().exists():
        why = model_folder(Path(value).expanduser())
        if why:
            raise ConfigError(f"{what}={value!r}: {why}")
        return Path(value).expanduser().resolve()
    raise ConfigError(f"{what}={value!r}: not {SOUP!r}, a member of the recipe ({', '.join(k for k in named if k != SOUP)}) "
                      "or an existing model folder")


def roles(loop: LoopSettings, named: Mapping[str, Path]) -> tuple[dict[str, Path], Path]:
    """(picker name -> folder, judge folder); the judge may not be a picker: its win rates would grade the
    replies it chose itself, the over-optimisation the loop must be able to see."""
    pickers = {name: resolve(str(v), named, f"loop.pickers.{name}") for name, v in loop.pickers.items()}
    judge = resolve(loop.judge, named, "loop.judge")
    for name, folder in pickers.items():
        if Path(folder).resolve() == Path(judge).resolve():
            raise ConfigError(f"loop.judge={loop.judge!r} is also picker '{name}' ({folder}): a judge must be a "
                              "reward model that did not pick the training replies")
    return pickers, judge
