"""Read raw source rows into a `datasets.Dataset`, from a local file or the Hugging Face hub.

A source is local by `rewardsoup.core.hub.is_local` (an existing path, a known file suffix, or a start of
``/``, ``./``, ``../`` or ``~``); anything else is a hub dataset name. Local files: ``.jsonl``, ``.jsonl.gz``, ``.json``
(JSON lines or one list of objects, optionally ``.gz``), ``.csv`` and ``.parquet``.

Failures become one `DataError`: a missing file is named; a text file (JSON, JSON lines, CSV) is first read
through once (`check_bytes`), so a corrupt ``.gz`` and bytes that are not UTF-8 are named by byte offset and line
before the datasets reader sees them (it would end in a bare traceback, or only when a bad row is first read); a
malformed JSON line is found by re-scanning the file and named by line number; an unreachable hub fails fast
(a 3 s connection probe instead of the hub client's ~25 s of retries) with a hint to use a local path.
"""

from __future__ import annotations

import codecs
import gzip
import json
import zlib
from pathlib import Path
from typing import IO, BinaryIO

import datasets

from rewardsoup.core.errors import DataError
from rewardsoup.core.hub import hub_offline, hub_reachable, is_local

BUILDERS = {
    ".jsonl": "json",
    ".jsonl.gz": "json",
    ".json": "json",
    ".json.gz": "json",
    ".csv": "csv",
    ".csv.gz": "csv",
    ".parquet": "parquet",
}


def _builder(path: Path) -> str:
    name = path.name.lower()
    for suffix, builder in BUILDERS.items():
        if name.endswith(suffix):
            return builder
    raise DataError(f"{path}: unknown file type; expected one of {sorted(BUILDERS)}")


def _open_text(path: Path) -> IO[str]:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


CHUNK = 1 << 20  # bytes read at a time by `check_bytes`


def _first_bad_byte(handle: BinaryIO, done: list[int]) -> tuple[int, int, str] | None:
    """(byte offset, 1-based line, the byte and why) of the first byte of ``handle`` that is not UTF-8, or None.
    ``done[0]`` counts the bytes read so far (so a failing decompression can say where it stopped)."""
    decoder, lines = codecs.getincrementaldecoder("utf-8")(), 0
    while True:
        chunk = handle.read(CHUNK)
        pending = decoder.getstate()[0]  # the incomplete character carried over from the last chunk
        try:
            decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as err:
            offset = done[0] - len(pending) + err.start
            line = lines + err.object[: err.start].count(b"\n") + 1
            return offset, line, f"byte 0x{err.object[err.start]:02x}: {err.reason}"
        if not chunk:
            return None
        done[0], lines = done[0] + len(chunk), lines + chunk.count(b"\n")


def check_bytes(path: Path) -> None:
    """Read a text source through once: a ``.gz`` must decompress whole and the text must be UTF-8. DataError
    naming the file and the byte offset (and line) at fault; a ``.gz``'s offsets count decompressed bytes."""
    packed = path.name.lower().endswith(".gz")
    done = [0]
    try:
        with (gzip.open(path, "rb") if packed else open(path, "rb")) as handle:
            bad = _first_bad_byte(handle, done)
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        if not packed:
            raise DataError(f"{path}: cannot read the file ({type(err).__name__}: {err})") from err
        raise DataError(f"{path}: corrupt gzip file ({type(err).__name__}: {err}) after {done[0]} bytes of "
                        f"decompressed text; expected a whole gzip-compressed file (a file that is not "
                        f"compressed must not end in .gz)") from err
    if bad is not None:
        offset, line, reason = bad
        where = "of the decompressed text " if packed else ""
        raise DataError(f"{path}: not UTF-8 text: byte offset {offset} {where}(line {line}) cannot be decoded "
                        f"({reason}); save the file as UTF-8")


def find_json_error(path: Path) -> str | None:
    """Re-scan a JSON / JSON-lines file and describe its first malformed spot (or that it has no rows: the
    datasets json reader then fails with a bare StopIteration), or None if none is found."""
    with _open_text(path) as handle:
        text = handle.read()
    if not text.strip():
        return "no rows (the file is empty)"
    if text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as err:
            return f"line {err.lineno}, column {err.colno}: {err.msg}"
        if not rows:
            return "no rows (the file holds an empty list)"
        bad = next((i for i, row in enumerate(rows) if not isinstance(row, dict)), None)
        return None if bad is None else f"item {bad} of the list: expected a JSON object"
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            return f"line {number}: malformed JSON ({err.msg} at column {err.colno})"
        if not isinstance(row, dict):
            return f"line {number}: expected a JSON object, got {type(row).__name__}"
    return None


def read_local(source: str) -> datasets.Dataset:
    """Read a local file (or a dataset folder) into a Dataset; DataError naming the file on any failure."""
    path = Path(source).expanduser()
    if any(ch in path.name for ch in "*?[") and not path.exists():
        return _read_glob(source, path)
    if not path.exists():
        raise DataError(f"data source {source}: file not found ({path.resolve()}); expected an existing file")
    if path.is_dir():
        try:
            return datasets.load_dataset(str(path), split="train")
        except Exception as err:
            raise DataError(f"{path}: cannot read the dataset folder ({type(err).__name__}: {err})") from err
    builder = _builder(path)
    if builder != "parquet":  # parquet is binary and checks its own bytes
        check_bytes(path)
    try:
        return datasets.load_dataset(builder, data_files=str(path), split="train")
    except Exception as err:
        detail = find_json_error(path) if builder == "json" else None
        cause = detail or f"{type(err).__name__}: {err}"
        raise DataError(f"{path}: cannot read as {builder}: {cause}") from err


def _read_glob(source: str, pattern: Path) -> datasets.Dataset:
    """Every file matching a glob in the file name (sorted), read as one set; DataError when none match."""
    files = sorted(pattern.parent.glob(pattern.name))
    if not files:
        raise DataError(f"data source {source}: no file matches {pattern.name} in {pattern.parent.resolve()}")
    builders = {_builder(f) for f in files}
    if len(builders) > 1:
        raise DataError(f"data source {source}: the matching files mix formats ({sorted(builders)}); expected one")
    parts = [read_local(str(f)) for f in files]
    try:
        return datasets.concatenate_datasets(parts)
    except ValueError as err:
        raise DataError(f"data source {source}: the matching files have different columns ({err})") from err


def _hub_error(name: str, data_dir: str | None, split: str, why: str) -> DataError:
    return DataError(
        f"data source {name!r} (data_dir={data_dir}, split={split}) looks like a Hugging Face hub dataset, "
        f"but the hub is unreachable or refused it ({why}). Download the file elsewhere and point to it "
        f"with a local path instead, e.g. data.source=/path/to/file.jsonl (or set HF_HUB_OFFLINE=1 to "
        f"read a copy already in the local datasets cache)."
    )


def read_hub(name: str, data_dir: str | None = None, split: str = "train") -> datasets.Dataset:
    """Read one split of a hub dataset; one DataError (with the local-path hint) when that fails."""
    if not hub_offline() and not hub_reachable():
        raise _hub_error(name, data_dir, split, "no connection to the hub endpoint")
    try:
        return datasets.load_dataset(name, data_dir=data_dir, split=split)
    except Exception as err:
        raise _hub_error(name, data_dir, split, f"{type(err).__name__}: {err}") from err


def read_source(source: str, data_dir: str | None = None, split: str = "train") -> datasets.Dataset:
    """Read the raw rows of ``source`` (local path or hub name); see the module docstring."""
    if not isinstance(source, str) or not source:
        raise DataError(f"data.source={source!r}: expected a local file path or a hub dataset name")
    if is_local(source):
        return read_local(source)
    return read_hub(source, data_dir=data_dir, split=split)
