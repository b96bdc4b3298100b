"""Is the Hugging Face hub reachable? Answer in seconds, not after minutes of retries.

`from_pretrained("gpt2")` with no network retries for ~50 s before failing, and `datasets.load_dataset`
does the same. Every hub load goes through `require_hub` first: it fails at once with one clear message
that says how to use a local path instead, when `HF_HUB_OFFLINE` is set or a TCP connect to the hub's
endpoint does not succeed within a few seconds.

`is_local` is the one rule for "local path or hub name" (models and data sources alike), and
`hub_offline` the one reading of `HF_HUB_OFFLINE` (huggingface_hub's own truth set).
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path
from urllib.parse import urlparse

from huggingface_hub.constants import ENV_VARS_TRUE_VALUES

from rewardsoup.core.errors import RewardSoupError

LOCAL_PREFIXES = ("/", "./", "../", "~")
LOCAL_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".gz")  # also .jsonl.gz, .json.gz, .csv.gz


def is_local(spec: str) -> bool:
    """True when `spec` names a local file or folder rather than a hub name (`owner/name`).

    Local: an existing path, a path starting with `/`, `./`, `../` or `~`, or a name ending in a data file
    suffix (.jsonl, .json, .csv, .parquet, .gz) -- a hub name never does.
    """
    spec = str(spec)
    if spec.startswith(LOCAL_PREFIXES) or spec.lower().endswith(LOCAL_SUFFIXES):
        return True
    return Path(spec).expanduser().exists()


def hub_offline() -> bool:
    """`HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`) as huggingface_hub reads it, but read now, not at import.

    `huggingface_hub.constants.HF_HUB_OFFLINE` is fixed when the module is imported; this reads the
    environment on each call with the same truth set (`ENV_VARS_TRUE_VALUES`: 1, ON, YES, TRUE).
    """
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    return value is not None and value.upper() in ENV_VARS_TRUE_VALUES


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """True when the hub's endpoint accepts a TCP connection (cached for the process)."""
    if hub_offline():
        return False
    if any(os.environ.get(key) for key in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True  # behind a proxy a direct probe says nothing; let the hub client try
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_hub(name: str, what: str, local_hint: str, error: type[RewardSoupError]) -> None:
    """Raise `error` naming `name` when the hub cannot be reached; `local_hint` says what to pass instead."""
    if hub_reachable():
        return
    raise error(
        f"{what} '{name}' is a Hugging Face hub name, but the hub is unreachable from this machine "
        f"(no network, or HF_HUB_OFFLINE is set). Download it where the hub is reachable and pass the "
        f"local copy instead: {local_hint}"
    )
