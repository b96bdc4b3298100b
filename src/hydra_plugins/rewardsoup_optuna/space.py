"""The search space of ``hydra.sweeper``: Optuna distributions from ``params`` specs, Hydra override values
from sampled values, and the one error type that names the bad key."""

from __future__ import annotations

import functools
import re
from typing import Any, Tuple

from hydra.errors import CompactHydraException

from rewardsoup.core.errors import ConfigError
from rewardsoup.core.plain import plain

_BARE = re.compile(r"[A-Za-z_][\w\-./]*\Z")
_RESERVED = {"true", "false", "null", "inf", "nan"}


class SearchSpaceError(CompactHydraException):
    """An invalid ``hydra.sweeper`` setting or command line; the message names the offending key."""


def wrap(fn: Any) -> Any:
    """`fn` with a ConfigError (a bad storage URL or pruner setting) raised as SearchSpaceError."""
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            raise SearchSpaceError(str(exc)) from exc

    return call


def _is_num(v: Any, types: Tuple[type, ...] = (int, float)) -> bool:
    return isinstance(v, types) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return _is_num(v, (int,))


def _name(key: Any, where: str) -> str:
    """The Optuna param name of an override key: the key without a ``+``/``++`` prefix."""
    ok = isinstance(key, str) and key.lstrip("+") != "" and key[0] != "~" and "=" not in key
    _require(ok, where, f"invalid override key {key!r}")
    return key.lstrip("+")


def _require(ok: bool, where: str, message: str) -> None:
    if not ok:
        raise SearchSpaceError(f"{where}: {message}")


def parse_distribution(key: str, spec: Any) -> Any:
    """One ``params`` entry -> an Optuna distribution; raises SearchSpaceError naming ``key``."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    where, spec = f"hydra.sweeper.params['{key}']", plain(spec)
    _require(isinstance(spec, dict), where, f"expected {{low, high}} or {{choices: [...]}}, got {spec!r}")
    if "choices" in spec:
        choices = spec["choices"]
        _require(set(spec) == {"choices"}, where, f"a categorical spec takes only 'choices': {sorted(spec)}")
        _require(isinstance(choices, list) and len(choices) > 0, where, "'choices' must be a non-empty list")
        _require(all(c is None or isinstance(c, (bool, int, float, str)) for c in choices), where,
                 f"choices must be strings, numbers, bools or null: {choices!r}")
        return CategoricalDistribution(choices)
    _require({"low", "high"} <= set(spec) <= {"low", "high", "log", "step", "type"}, where,
             f"a range spec takes low, high and optionally log, step, type; got {sorted(spec)}")
    low, high, step, use_log = spec["low"], spec["high"], spec.get("step"), spec.get("log", False)
    _require(_is_num(low) and _is_num(high), where, f"low/high must be numbers: low={low!r} high={high!r}")
    _require(isinstance(use_log, bool), where, f"log must be true or false, got {use_log!r}")
    kind = spec.get("type") or ("int" if all(_is_int(v) for v in (low, high, step or 1)) else "float")
    _require(kind in ("int", "float"), where, f"type must be 'int' or 'float', got {kind!r}")
    _require(low < high, where, f"low ({low}) must be < high ({high}): "
             f"{'inverted range' if low > high else 'empty range'}")
    _require(not use_log or low > 0, where, f"log scale needs low > 0, got low={low}")
    _require(step is None or (_is_num(step) and step > 0), where, f"step must be a positive number: {step!r}")
    _require(not (use_log and step is not None and (kind == "float" or step != 1)), where,
             "log scale and step cannot be combined")
    if kind == "int":
        _require(all(float(v).is_integer() for v in (low, high, step or 1)), where,
                 "an int range needs integer low/high/step")
        return IntDistribution(int(low), int(high), log=use_log, step=int(step or 1))
    return FloatDistribution(float(low), float(high), log=use_log, step=None if step is None else float(step))


def format_value(v: Any) -> str:
    """A sampled value as the right-hand side of a Hydra override (strings quoted when needed)."""
    if v is None or isinstance(v, bool):
        return {None: "null", True: "true", False: "false"}[v]
    if isinstance(v, (int, float)):
        return repr(v)
    s = str(v)
    if _BARE.match(s) and s.lower() not in _RESERVED:
        return s
    for q in ("'", '"'):
        if q not in s:
            return f"{q}{s}{q}"
    raise SearchSpaceError(f"cannot write {s!r} as a Hydra override value (it holds both quote kinds)")
