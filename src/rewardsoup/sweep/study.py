"""The Optuna study a sweep shares between its sweeper and its trials, and between several workers.

- `make_storage(url, ...)`: Optuna's own storages from one string. `sqlite:///…`, `postgresql://…`,
  `mysql://…` -> `RDBStorage` with Optuna's heartbeat (a worker that stops beating for `grace_period`
  seconds has its RUNNING trials failed and retried by `RetryHeartbeatStaleTrialCallback`);
  `journal:/abs/path.log` -> `JournalStorage(JournalFileBackend)`: a file on a shared disk, no server
  (Optuna 5.0 has no heartbeat for it; see `fail_dead_trials`).
- `make_pruner(name, kwargs)`: `none | median | successive_halving | hyperband`, Optuna's pruners.
- `fail_dead_trials(study, max_retry)`: RUNNING trials whose worker process is gone (same host, pid no
  longer alive; recorded in the trial's `worker` user attribute) are failed and retried at once by the same
  Optuna callback, on any storage. Trials of live workers, here or elsewhere, are left alone.
- `study.json` in the sweep folder (`write_study_file` / `read_study_file`) tells a trial job which study
  and pruner it belongs to, so it can report intermediate values and ask whether to stop
  (`rewardsoup.sweep.pruning`). It is written by the sweeper before any job starts.
"""

from __future__ import annotations

import json
import os
import socket
import warnings
from pathlib import Path
from typing import Any, Mapping

from rewardsoup.core.atomic import atomic_write_text
from rewardsoup.core.errors import ConfigError

PRUNERS = ("none", "median", "successive_halving", "hyperband")  # hydra.sweeper.pruner
JOURNAL_PREFIX = "journal:"
STUDY_FILE = "study.json"


def journal_path(url: str) -> str:
    """`journal:/abs/file.log` or `journal:///abs/file.log` -> `/abs/file.log`."""
    path = url[len(JOURNAL_PREFIX):]
    return "/" + path.lstrip("/") if path.startswith("//") else path


def make_storage(url: str | None, heartbeat_interval: int | None = None, grace_period: int | None = None,
                 max_retry: int | None = 2) -> Any:
    """An Optuna storage for `url` (None: in-memory, nothing shared or resumed)."""
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
    from sqlalchemy.exc import OperationalError

    if url is None:
        return None
    url = str(url)
    if url.startswith(JOURNAL_PREFIX):
        path = journal_path(url)
        if not path:
            raise ConfigError(f"hydra.sweeper.storage: '{url}' names no file; use journal:/abs/path/optuna.journal")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # the open(O_CREAT|O_EXCL) lock works on local disks and NFS alike
        return optuna.storages.JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))
    if "://" not in url:
        raise ConfigError(f"hydra.sweeper.storage: '{url}' is not an Optuna storage URL "
                          "(sqlite:////abs/optuna.db, postgresql://user:pw@host/db, mysql://…, journal:/abs/file)")
    retry = RetryHeartbeatStaleTrialCallback(max_retry=max_retry) if heartbeat_interval else None
    _sqlite_folder(url)
    try:
        return optuna.storages.RDBStorage(url, heartbeat_interval=heartbeat_interval, grace_period=grace_period,
                                          heartbeat_stale_trial_callback=retry)
    except ImportError as exc:  # the URL's database driver is not installed
        raise ConfigError(f"hydra.sweeper.storage: '{url.split('://')[0]}' needs a driver that is not "
                          f"installed ({exc})") from exc
    except OperationalError as exc:  # the server is down, refuses us, or the database does not exist
        reason = next((line.strip() for line in str(exc.orig or exc).splitlines() if line.strip()), "")
        raise ConfigError(f"hydra.sweeper.storage: cannot connect to '{masked_url(url)}': {reason}") from exc


def _sqlite_folder(url: str) -> None:
    """A sqlite file's folder is created (the default storage lives in the sweep folder, which the sweeper
    writes only after the study opened); a server URL creates nothing."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def masked_url(url: str) -> str:
    """`url` with its password shown as ***, for messages and logs."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("://")[0] + "://…"


def make_pruner(name: str, kwargs: Mapping[str, Any] | None = None) -> Any:
    """One of Optuna's pruners by name; `none` never prunes."""
    import optuna

    classes = {"none": optuna.pruners.NopPruner, "median": optuna.pruners.MedianPruner,
               "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
               "hyperband": optuna.pruners.HyperbandPruner}
    if name not in classes:
        raise ConfigError(f"hydra.sweeper.pruner: '{name}' is not one of {', '.join(PRUNERS)}")
    try:
        return classes[name](**dict(kwargs or {}))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"hydra.sweeper.pruner_kwargs: {exc}") from exc


def this_worker() -> dict[str, Any]:
    """Who runs a trial: recorded on the trial so a later worker can tell a dead one's leftovers."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def fail_dead_trials(study: Any, max_retry: int | None = 2) -> list[int]:
    """Fail and retry (Optuna's RetryHeartbeatStaleTrialCallback) RUNNING trials whose worker died on
    this host; returns their numbers. Optuna's heartbeat (RDB storages) covers workers on other hosts."""
    from optuna.exceptions import ExperimentalWarning
    from optuna.storages import RetryHeartbeatStaleTrialCallback, fail_stale_trials
    from optuna.trial import TrialState

    warnings.filterwarnings("ignore", category=ExperimentalWarning, module="rewardsoup")  # stable since Optuna 2.8
    fail_stale_trials(study)  # a no-op unless the storage has a heartbeat
    me, dead = this_worker(), []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker") or {}
        if worker.get("host") != me["host"] or worker.get("pid") in (None, me["pid"]) or _alive(worker["pid"]):
            continue
        if study._storage.set_trial_state_values(t._trial_id, state=TrialState.FAIL):
            dead.append(t.number)
            RetryHeartbeatStaleTrialCallback(max_retry=max_retry)(study, study._storage.get_trial(t._trial_id))
    return dead


def write_study_file(sweep_dir: Path, info: Mapping[str, Any]) -> None:
    atomic_write_text(Path(sweep_dir) / STUDY_FILE, json.dumps(dict(info), indent=1, sort_keys=True))


def read_study_file(sweep_dir: Path) -> dict[str, Any] | None:
    path = Path(sweep_dir) / STUDY_FILE
    return json.loads(path.read_text()) if path.exists() else None
