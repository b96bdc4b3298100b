"""Keep freed memory in the process, so a forward pass does not pay the kernel for its activations again.

glibc's malloc serves every block above its mmap threshold (128 KiB, rising to at most 32 MiB) with a fresh
`mmap` and gives it back with `munmap` when freed; a heap top above 128 KiB is trimmed back to the kernel
the same way. A transformer's activations are such blocks (a 32-text batch at 256 tokens: 18 MiB hidden
states, 72 MiB attention probabilities over SmolLM2's 9 heads), allocated and freed in every layer of every
batch, so each pass maps fresh zeroed pages and faults them in again: `make demo` took 20 million page faults and 117 s of system
time for 949 s of user time. Raising the threshold and the trim limit once, at the start of a job, keeps
those blocks in the heap for the next batch (a scoring pass 7% faster on the demo, bench/forward_options.py
with and without; the same outputs: only where memory comes from changes). The cost is that the process
keeps its peak heap instead of returning it between stages.

Only on glibc (Linux); elsewhere, or when the caller set glibc's own `MALLOC_*` variables or
`REWARDSOUP_MALLOC=default`, nothing is changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # glibc's mallopt parameter numbers
_KEEP = {
    _M_MMAP_THRESHOLD: 2**31 - 1,  # blocks up to 2 GiB come from the heap (mallopt takes an int)
    _M_TRIM_THRESHOLD: 2**31 - 1,  # freed heap tops stay unless over 2 GiB
    _M_TOP_PAD: 256 * 2**20,  # grow the heap 256 MiB at a time
}
_ENV = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")


def keep_freed_memory() -> bool:
    """Set glibc's malloc to keep freed blocks for reuse; True when it did."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if os.environ.get("REWARDSOUP_MALLOC") == "default" or any(k in os.environ for k in _ENV):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    return all(libc.mallopt(ctypes.c_int(opt), ctypes.c_int(value)) == 1 for opt, value in _KEEP.items())
