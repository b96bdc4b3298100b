"""A PostgreSQL server for tests: the session fixture ``postgres_url`` (a SQLAlchemy URL, psycopg 3 driver).

Use it from a test module with ``from postgres import postgres_url  # noqa: F401`` (pytest finds a fixture
imported into the module), then take ``postgres_url`` as an argument. The database is shared by the session:
give each Optuna study a unique name (``unique_name()``).

Where the URL comes from, first that applies:
  1. ``REWARDSOUP_TEST_POSTGRES_URL`` (CI: ``.ci/run`` starts a server and exports it);
  2. a throwaway server started for the session by ``.ci/postgres.sh`` (needs Debian's ``postgresql``
     package, or initdb/pg_ctl on PATH, or ``REWARDSOUP_PG_BINDIR``), stopped and deleted at the end;
  3. otherwise the test skips, saying why.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

ENV = "REWARDSOUP_TEST_POSTGRES_URL"
SCRIPT = Path(__file__).resolve().parents[1] / ".ci" / "postgres.sh"
DRIVER_PIN = "psycopg[binary]==3.3.9"


def unique_name(prefix: str = "test") -> str:
    """A study (or table) name no other test of the shared database uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def start_server(folder: Path) -> str:
    """Start a throwaway server with its data in ``folder``; its URL, or RuntimeError with the script's reason."""
    out = subprocess.run(["bash", str(SCRIPT), "start", str(folder)], capture_output=True, text=True, timeout=180)
    if out.returncode != 0 or not out.stdout.strip():
        lines = [x for x in out.stderr.splitlines() if x.startswith("[postgres.sh]")] or out.stderr.splitlines()
        reason = lines[-1].removeprefix("[postgres.sh] ") if lines else f"{SCRIPT.name} exited {out.returncode}"
        raise RuntimeError(reason)
    return out.stdout.strip().splitlines()[-1]


def stop_server(folder: Path) -> None:
    """Stop the server in ``folder`` and delete the folder (nothing to do if it is gone)."""
    subprocess.run(["bash", str(SCRIPT), "stop", str(folder)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="session")
def postgres_url():
    """The SQLAlchemy URL of a PostgreSQL database for this session, or a skip saying why there is none."""
    if importlib.util.find_spec("psycopg") is None:
        pytest.skip(f"PostgreSQL tests need the psycopg driver: pip install '{DRIVER_PIN}'")
    if os.environ.get(ENV):
        yield os.environ[ENV]
        return
    # Not under pytest's tmp_path: its root folder is 0700, closed to the `postgres` user when we are root.
    folder = Path(tempfile.mkdtemp(prefix="rewardsoup-test-postgres-"))
    try:
        url = start_server(folder)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        stop_server(folder)
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"no PostgreSQL server: {ENV} is unset and a throwaway one did not start ({e})")
    try:
        yield url
    finally:
        stop_server(folder)
