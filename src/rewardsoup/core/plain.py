"""`plain`: the one conversion of a config value to plain Python containers.

An OmegaConf `DictConfig` / `ListConfig` is resolved (`OmegaConf.to_container(resolve=True)`); any other
mapping becomes a dict with string keys, a list or tuple a list, recursively; scalars stay as they are.
The result is safe for `json.dumps`, `yaml.safe_dump`, pydantic and hashing into cache keys.
"""

from __future__ import annotations

from typing import Any, Mapping

from omegaconf import DictConfig, ListConfig, OmegaConf


def plain(obj: Any) -> Any:
    """`obj` as plain dicts / lists / scalars (OmegaConf containers resolved)."""
    if isinstance(obj, (DictConfig, ListConfig)):
        obj = OmegaConf.to_container(obj, resolve=True)
    if isinstance(obj, Mapping):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    return obj
