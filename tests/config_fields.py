"""Every field of a composed entry-point config, derived from its schemas, and what a value for it must be.

`fields(cfg)` walks a composed config (train, merge, evaluate or sample) and lists every field with what the
schemas say of it: its kind (int, float, bool, str, any, enum; list, dict or node for containers), whether
null is allowed, its value rule (`checked(check=...)`, or the `each=` rule of the mapping it sits in), and
whether it names an input path (its value in the valid base config is an existing absolute file or folder).
Nothing here names a field: a new schema field is listed without editing a test.

`why_bad(field, text)` says, from those facts alone, why the override `key=text` must be refused (or None
when the schemas accept it), so a generated case knows what to expect before it runs.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import OverrideParseException
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.nodes import AnyNode, BooleanNode, EnumNode, FloatNode, IntegerNode, PathNode, StringNode

Check = Callable[[Any], Optional[str]]
VALUE_KINDS = {IntegerNode: "int", FloatNode: "float", BooleanNode: "bool", StringNode: "str", AnyNode: "any",
               EnumNode: "enum", PathNode: "str"}
TYPE_KINDS = {int: "int", float: "float", bool: "bool", str: "str"}
BOOL_WORDS = {"true", "false", "yes", "no", "on", "off", "y", "n", "1", "0"}  # OmegaConf's BooleanNode strings


@dataclass(frozen=True)
class Field:
    key: str  # dotted, from the config root
    kind: str  # int | float | bool | str | any | enum | list | dict | node
    optional: bool  # null allowed (null means "not set": value rules do not apply)
    element: str = "any"  # list | dict: the kind of each element
    check: Optional[Check] = None  # the field's value rule
    each: Optional[Check] = None  # dict: the rule every value must pass
    path: Optional[str] = None  # "file" | "dir": the base value is an existing input path of that kind
    closed: bool = True  # dict | node: a key the schema lacks is refused (struct)
    choices: tuple = ()  # enum: the member names

    @property
    def last(self) -> str:
        return self.key.rsplit(".", 1)[-1]


def _element_kind(tp: Any) -> str:
    if tp in TYPE_KINDS:
        return TYPE_KINDS[tp]
    if dataclasses.is_dataclass(tp):
        return "node"
    return {list: "list", dict: "dict"}.get(typing.get_origin(tp), "any")


def _path_kind(value: Any) -> Optional[str]:
    if isinstance(value, str) and os.path.isabs(value) and os.path.exists(value):
        return "dir" if os.path.isdir(value) else "file"
    return None


def _container(key: str, child: Any, check: Optional[Check], each: Optional[Check], schema: bool) -> Field:
    meta = child._metadata
    kind = "list" if isinstance(child, ListConfig) else ("node" if schema else "dict")
    return Field(key, kind, bool(meta.optional), _element_kind(meta.element_type), check, each,
                 closed=bool(child._get_flag("struct")) if kind != "list" else True)


def _walk(node: DictConfig, prefix: str, each: Optional[Check], out: list[Field]) -> None:
    schema = OmegaConf.get_type(node)
    rules = {f.name: f.metadata for f in dataclasses.fields(schema)} if dataclasses.is_dataclass(schema) else None
    for key in node.keys():
        if not prefix and key == "hydra":
            continue
        child, full = node._get_node(key), f"{prefix}{key}"
        meta = rules.get(str(key), {}) if rules is not None else {}
        check = meta.get("check") if rules is not None else each  # a plain mapping's values obey its `each`
        if isinstance(child, (DictConfig, ListConfig)):
            is_schema = isinstance(child, DictConfig) and dataclasses.is_dataclass(child._metadata.object_type)
            out.append(_container(full, child, check, meta.get("each"), is_schema))
            if isinstance(child, DictConfig) and not child._is_none() and not child._is_missing():
                _walk(child, full + ".", meta.get("each"), out)
            continue
        kind = VALUE_KINDS.get(type(child), "any")
        value = None if OmegaConf.is_missing(node, key) else OmegaConf.select(node, str(key))
        choices = tuple(m.name for m in child._metadata.ref_type) if kind == "enum" else ()
        out.append(Field(full, kind, bool(child._metadata.optional), check=check, choices=choices,
                         path=_path_kind(value) if kind == "str" else None))


def fields(cfg: DictConfig) -> list[Field]:
    """Every field of `cfg` (Hydra's own `hydra` node aside), containers and their entries included."""
    out: list[Field] = []
    _walk(cfg, "", None, out)
    return out


@functools.lru_cache(maxsize=None)  # the same few texts are parsed for every field
def parsed(text: str) -> Any:
    """The Python value Hydra's override parser makes of `key=text`."""
    return OverridesParser.create().parse_overrides([f"k={text}"])[0].value()


def _as_int(v: Any) -> Optional[int]:
    if type(v) is int:
        return v
    try:
        return int(v) if isinstance(v, str) else None
    except ValueError:
        return None


def _as_float(v: Any) -> Optional[float]:
    if type(v) in (int, float):
        return float(v)
    try:
        return float(v) if isinstance(v, str) else None
    except ValueError:
        return None


def converted(kind: str, value: Any, choices: tuple = ()) -> tuple[bool, Any]:
    """(the kind takes `value`, the value it stores) as OmegaConf's typed nodes convert a parsed override."""
    if kind in ("any", "list", "dict", "node"):
        return True, value
    if isinstance(value, (list, dict)):
        return False, value
    if kind == "int":
        v = _as_int(value)
        return v is not None, v
    if kind == "float":
        v = _as_float(value)
        return v is not None, v
    if kind == "bool":
        ok = type(value) in (bool, int) or (isinstance(value, str) and value.lower() in BOOL_WORDS)
        return ok, value
    if kind == "enum":
        return isinstance(value, str) and value in choices, value
    return True, value if isinstance(value, str) else str(value)


def _container_problem(f: Field, value: Any) -> Optional[str]:
    if f.kind == "list" and not isinstance(value, list):
        return "type: not a list"
    if f.kind in ("dict", "node") and not isinstance(value, dict):
        return "type: not a mapping"
    items = value if isinstance(value, list) else list(value.values()) if f.kind == "dict" else []
    for item in items:
        ok, item = converted(f.element, item)
        if not ok:
            return f"type: element {item!r} is not {f.element}"
        if item is None and f.element not in ("any",):
            return "type: null element"
        if f.each is not None and f.each(item) is not None:
            return f"rule: element {item!r}: {f.each(item)}"
    return None


def why_bad(f: Field, text: str) -> Optional[str]:
    """Why the schemas refuse `key=text` ("syntax", "missing", "interpolation", "type: ...", "rule: ...",
    "path: ..."), or None when they accept it."""
    try:
        value = parsed(text)
    except OverrideParseException:
        return "syntax: not an override Hydra can parse"
    if value == "???":
        return "missing"
    if isinstance(value, str) and "${" in value:
        return "interpolation: names no key of the config"
    if value is None:
        return None if f.optional else "type: null for a field that is not Optional"
    if f.kind in ("list", "dict", "node"):
        return _container_problem(f, value)
    ok, value = converted(f.kind, value, f.choices)
    if not ok:
        return f"type: {text} is not {f.kind}"
    if f.check is not None:  # the field's own rule decides, for a path too
        return None if (why := f.check(value)) is None else f"rule: {why}"
    if f.path is not None and not (Path(str(value)).is_dir() if f.path == "dir" else Path(str(value)).is_file()):
        return f"path: no {f.path} {value}"
    return None
