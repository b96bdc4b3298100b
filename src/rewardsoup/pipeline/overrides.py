"""Command-line overrides of the main job, routed by the configs themselves.

`make demo ARGS="..."` hands one list of overrides to a job made of several entry points (train.py for the
members, merge.py for the sweep and the pick, sample.py for best-of-N). An override goes to every root
whose composed config accepts it: the root has that key or config group (`sweep.objective.kind=worst` only
merge.yaml, `logger=none` all of them); an added key (`+a.b.c=1`) goes where its parent `a.b` exists. An
override that no root accepts is a ConfigError naming it, instead of being dropped.
"""

from __future__ import annotations

from typing import Callable, Mapping

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import ConfigCompositionException, MissingConfigException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ValidationError

from rewardsoup.core.errors import ConfigError
from rewardsoup.core.jobs import compose_error

Compose = Callable[[str, list[str]], DictConfig]


def _accepts(compose: Compose, root: str, base: list[str], override: str) -> bool:
    parsed = OverridesParser.create().parse_overrides([override])[0]
    key = parsed.key_or_group
    if parsed.is_add() and "." in key and not key.startswith("hydra."):  # added under a node this root has
        return OmegaConf.select(compose(root, base), key.rsplit(".", 1)[0]) is not None
    try:
        compose(root, base + [override])
    except MissingConfigException as exc:
        if exc.options:  # the root has this config group, but no such choice in it
            raise ConfigError(compose_error(exc)) from None
        return False
    except ConfigCompositionException as exc:
        if isinstance(exc.__cause__, ValidationError):  # the root has the key; the value is wrong
            raise ConfigError(compose_error(exc)) from None
        return False
    return True


def route(overrides: list[str], roots: Mapping[str, list[str]], compose: Compose) -> dict[str, list[str]]:
    """root name -> the overrides it accepts, in command-line order. `roots` maps each root config name to
    the overrides the job composes it with (e.g. the recipe's), so keys those bring in count too."""
    routed: dict[str, list[str]] = {root: [] for root in roots}
    for override in overrides:
        takers = [root for root, base in roots.items() if _accepts(compose, root, base, override)]
        if not takers:
            raise ConfigError(f"override '{override}' matches no key or config group of "
                              f"{', '.join(f'{r}.yaml' for r in roots)}")
        for root in takers:
            routed[root].append(override)
    return routed
