"""The error boundary of every entry point: bad input or a bad config is one `error:` line, exit code 1.

- `entry(main)` runs an entry point's `@hydra.main` function. A config that does not compose (a key the
  schema lacks, a value of the wrong type, an unknown choice, a config group given a number, an override
  Hydra cannot parse) is one `error: <key>: <reason>` line on stderr, exit code 1, nothing written;
  `HYDRA_FULL_ERROR=1` set by the caller shows Hydra's full report.
- `ValidateConfig` (a Hydra callback, conf/hydra/default.yaml) applies the schemas' value rules
  (`rewardsoup.core.config.validate`) before a single run creates its folder: a violation is one `error:`
  line, exit code 1, nothing written.
- `run_job(work, cfg)` validates again (a multirun job's own overrides) and runs the stage's work function;
  a `RewardSoupError` becomes one `error:` line.

Importing this module registers the `abspath` resolver used by conf/paths (outputs are absolute paths
resolved against the launch directory; jobs never chdir). The schemas themselves are registered by
`rewardsoup.schemas`, which the entry points import: `core` imports no stage.
"""

from __future__ import annotations

import difflib
import os
import sys
from typing import Any, Callable, NoReturn

from hydra.errors import CompactHydraException, MissingConfigException, OverrideParseException
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from rewardsoup.core.allocator import keep_freed_memory
from rewardsoup.core.config import validate
from rewardsoup.core.errors import RewardSoupError


if not OmegaConf.has_resolver("abspath"):
    OmegaConf.register_new_resolver("abspath", lambda p: os.path.abspath(os.path.expanduser(str(p))))


def fail(message: str) -> NoReturn:
    """One `error:` line on stderr, exit code 1."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def run_job(work: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """Check `cfg` against its schemas' value rules, then run a stage's work function; bad input becomes one
    `error:` line on stderr and exit code 1."""
    try:
        return work(validate(cfg))
    except RewardSoupError as exc:
        fail(str(exc))


class ValidateConfig(Callback):
    """Value rules before Hydra creates a single run's folder, so a bad value writes nothing. (Hydra turns a
    callback's exception into a warning and goes on, so a violation ends the process here.)"""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            validate(config)
        except RewardSoupError as exc:
            fail(str(exc))


def _first_line(text: str) -> str:
    return next((line.strip() for line in str(text).splitlines() if line.strip()), "")


def _raising_local(exc: BaseException, name: str) -> Any:
    """A local variable of the frame that raised `exc` (inside Hydra: the override or config group at fault)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_locals.get(name) if tb is not None else None


def _group_value_error(exc: ValueError) -> str | None:
    """Hydra's plain ValueError for a config group given a number, bool or null (`data=1`), named by its
    override; None for any other ValueError (that one keeps its traceback)."""
    override = _raising_local(exc, "override")
    if "Config group override" not in str(exc) or getattr(override, "input_line", None) is None:
        return None
    return f"{override.input_line}: {override.key_or_group} is a config group: give the name of one of its configs"


def compose_error(exc: BaseException) -> str:
    """`<key>: <reason>` in one line for an exception Hydra raised while composing a config."""
    if isinstance(exc, OverrideParseException):  # Hydra's own line names the grammar's complaint, not the key
        return f"{exc.override}: not a valid override ({_first_line(exc.message)})"
    cause = exc.__cause__ or exc.__context__
    if getattr(cause, "full_key", None) == "_dummy_":  # Hydra resolves a group choice (`data=${x}`) in a stand-in
        group = getattr(_raising_local(exc, "self"), "get_group_path", lambda: "a config group choice")()
        return f"{group}: {_first_line(exc)}"
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file:
        group, _, choice = str(exc.missing_cfg_file).rpartition("/")
        options = f"; expected one of {', '.join(exc.options)}" if exc.options else ""
        return f"{group or choice}: no config '{exc.missing_cfg_file}'{options}"
    if not isinstance(cause, OmegaConfBaseException):
        return _first_line(exc)
    key, reason = getattr(cause, "full_key", None), _first_line(getattr(cause, "msg", None) or cause)
    schema = getattr(cause, "object_type", None)
    known = list(getattr(schema, "__dataclass_fields__", {}))
    if key and "not in" in reason and known:
        close = difflib.get_close_matches(str(key).rsplit(".", 1)[-1], known, n=1)
        if close:
            reason += f" (did you mean {str(key).rpartition('.')[0] + '.' if '.' in str(key) else ''}{close[0]}?)"
    return f"{key}: {reason}" if key else reason


def entry(main: Callable[[], Any]) -> Any:
    """Run `main`, a `@hydra.main` function: a config that fails to compose or breaks a value rule is one
    `error: <key>: <reason>` line on stderr and exit code 1, as is any exception Hydra prints without a
    traceback (`CompactHydraException`: a sweeper's bad setting); any other exception keeps its traceback.
    Freed memory stays in the process for the job's next batch (`core.allocator`)."""
    keep_freed_memory()
    if os.environ.get("HYDRA_FULL_ERROR") == "1":  # the caller asked for Hydra's full report
        return main()
    os.environ["HYDRA_FULL_ERROR"] = "1"  # Hydra re-raises instead of printing its multi-line report
    try:
        return main()
    except CompactHydraException as exc:  # composition, override syntax, a sweeper's settings (SearchSpaceError)
        fail(compose_error(exc))
    except ValueError as exc:  # Hydra raises a plain one for `data=1`; any other keeps its traceback
        if (why := _group_value_error(exc)) is None:
            raise
        fail(why)
