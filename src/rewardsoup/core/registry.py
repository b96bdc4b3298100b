"""Name -> implementation lookups that also take an import path, so extending needs no edit here.

A config names a built-in by its registry key (`data.adapter: hh_rlhf`, `objective.name: pairwise`) or
code of your own by `module:attribute` (`data.adapter: my_project.adapters:upvotes`): the module is
imported on first use. Adding an adapter or an objective is one code file plus one YAML.
"""

from __future__ import annotations

import importlib
from typing import Any, Mapping

from rewardsoup.core.errors import ConfigError


def lookup(registry: Mapping[str, Any], name: str, field: str) -> Any:
    """`registry[name]`, or the attribute an import path `module:attribute` names; ConfigError naming
    `field` otherwise."""
    if name in registry:
        return registry[name]
    if ":" in name:
        module, _, attribute = name.partition(":")
        try:
            return getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"{field}={name!r}: cannot import it ({exc})") from None
    raise ConfigError(f"{field}={name!r}: unknown; expected one of {sorted(registry)} or an import path "
                      f"'module:attribute'")
