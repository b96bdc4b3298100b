"""Is the Hugging Face hub reachable? Answer in seconds, not after minutes of retries.

`from_pretrained("gpt2")` with no network retries for ~50 s before failing, and `datasets.load_dataset`
does the same. Every hub load goes through `require_hub` first: it fails at once with one clear message
that says how to use a local path instead, when `HF_HUB_OFFLINE` is set or a TCP connect to the hub's
endpoint does not succeed within a few seconds.
"""

from __future__ import annotations

import functools
import os
import socket
from urllib.parse import urlparse

from rewardsoup.core.errors import RewardSoupError

_TRUE = {"1", "true", "yes", "on"}


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """True when the hub's endpoint accepts a TCP connection (cached for the process)."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in _TRUE:
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
