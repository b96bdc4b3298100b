"""The sweep ledger: one JSON line per trial in `<sweep dir>/ledger.jsonl`, plus `sweep.json`.

`sweep.json` records what the sweep is about (base, members, datasets, objective); a ledger row records
one trial's merge request (method, weights by member name, density, parameters, seed) and every
per-dataset val accuracy with the objective. Appends are atomic: one `write` of one line to a file opened
with O_APPEND while holding `ledger.jsonl.lock` (`filelock`, on POSIX and Windows alike), so parallel
launchers never interleave rows. A torn last line (a writer killed mid-row) is skipped by `read`, and the
next append starts on a fresh line so the torn bytes never swallow a good row.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping

from filelock import FileLock

from rewardsoup.core.atomic import atomic_write_json, atomic_write_text
from rewardsoup.core.errors import ConfigError
from rewardsoup.sweep.objective import non_dominated

LEDGER, HEADER = "ledger.jsonl", "sweep.json"


def header_for(request: Mapping[str, Any], datasets: list[str], objective: Mapping[str, Any]) -> dict:
    return {"base": request["base"], "members": dict(sorted(request["members"].items())),
            "datasets": sorted(datasets), "objective": dict(objective)}


def open_sweep(sweep_dir: str | Path, header: Mapping[str, Any]) -> Path:
    """Create the sweep folder, or check that an existing one belongs to the same members and datasets."""
    sweep_dir = Path(sweep_dir)
    path = sweep_dir / HEADER
    if path.exists():
        found = json.loads(path.read_text())
        for key in ("members", "datasets", "base"):
            if found.get(key) != header.get(key):
                raise ConfigError(f"the ledger in {sweep_dir} is from a different sweep: its {key} are "
                                  f"{found.get(key)}, this run's are {header.get(key)}; use another "
                                  f"sweep.name or delete that folder")
        return sweep_dir
    sweep_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, dict(header))
    return sweep_dir


def _ends_torn(path: Path) -> bool:
    """True when the ledger's last byte is not a newline (a writer died mid-row)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() == 0:
                return False
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) != b"\n"
    except FileNotFoundError:
        return False


def append(sweep_dir: str | Path, row: Mapping[str, Any]) -> None:
    """Add one row as one line, under the ledger's lock (safe across processes and launchers)."""
    path = Path(sweep_dir) / LEDGER
    line = (json.dumps(row, sort_keys=True, default=str) + "\n").encode()
    with FileLock(f"{path}.lock"):
        if _ends_torn(path):
            line = b"\n" + line
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)


def read(sweep_dir: str | Path) -> tuple[dict, list[dict]]:
    """(header, rows) of a finished or running sweep; a folder that is not a sweep is a clear error."""
    sweep_dir = Path(sweep_dir)
    if not (sweep_dir / HEADER).exists():
        raise ConfigError(f"{sweep_dir} is not a sweep folder (no {HEADER}); run `python merge.py -m …` first")
    header = json.loads((sweep_dir / HEADER).read_text())
    rows = []
    path = sweep_dir / LEDGER
    for i, line in enumerate(path.read_text().splitlines() if path.exists() else [], 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:  # a torn last line from a kill -9: skip it, say so
                print(f"[rewardsoup] {path}:{i}: unreadable ledger row skipped ({exc})")
    return header, rows


def request_key(request: Mapping[str, Any]) -> str:
    """Identity of a merge request, to find a trial already in the ledger."""
    keep = {k: request.get(k) for k in ("method", "members", "weights", "density", "params", "seed", "dtype")}
    keep["members"] = sorted(keep["members"] or {})
    if request.get("layer_weights"):  # only then: the keys of every other request stay as they were
        keep["layer_weights"] = request["layer_weights"]
    return json.dumps(keep, sort_keys=True, default=str)


def find(rows: list[dict], request: Mapping[str, Any]) -> dict | None:
    key = request_key(request)
    return next((r for r in rows if r.get("key") == key), None)


def complete(rows: list[dict]) -> list[dict]:
    """Rows of trials that scored every val row (pruned trials hold partial scores: never picked or ranked)."""
    return [r for r in rows if r.get("state", "complete") == "complete"]


def mark_front(sweep_dir: str | Path) -> list[dict]:
    """Set `front` on every row: true for the complete trials no other complete trial beats or equals on every
    dataset's val score and beats on one (the Pareto front), false otherwise. The ledger is rewritten in
    place, atomically, under its lock. Returns the rows."""
    path = Path(sweep_dir) / LEDGER
    with FileLock(f"{path}.lock"):
        header, rows = read(sweep_dir)
        done = complete(rows)
        datasets = header["datasets"]
        flags = non_dominated([[r["val"][d] for d in datasets] for r in done])
        on_front = {id(r) for r, f in zip(done, flags) if f}
        for r in rows:
            r["front"] = id(r) in on_front
        text = "".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in rows)
        atomic_write_text(path, text)
    return rows
