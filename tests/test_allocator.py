"""core.allocator: a job's freed activations are reused from the heap, not faulted in again from the kernel."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

from rewardsoup.core.allocator import keep_freed_memory

PROBE = """
import json, resource
from rewardsoup.core.allocator import keep_freed_memory
kept = keep_freed_memory()
import torch
x, w, a = torch.ones(8192, 576), torch.ones(576, 1536), torch.zeros(32, 9, 256, 256)
faults = []
for _ in range(12):  # what every batch of a forward pass does: blocks above glibc's 32 MiB mmap ceiling
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    y = (x @ w).relu_()  # an MLP's activations, 48 MiB
    s = torch.softmax(a, -1)  # attention probabilities, 72 MiB
    del y, s
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
print(json.dumps({"kept": kept, "faults": sum(faults[6:])}))  # the steady state: the last six batches
"""


def _probe(**env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES", "REWARDSOUP_MALLOC"))}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt only")
def test_freed_blocks_are_reused_without_page_faults():
    kept, default = _probe(), _probe(REWARDSOUP_MALLOC="default")
    assert kept["kept"] and not default["kept"]
    pages = 6 * 120 * 2**20 // os.sysconf("SC_PAGE_SIZE")  # six batches' blocks, all fresh pages
    assert default["faults"] > pages // 2  # glibc's default maps and unmaps each block (the cost removed)
    assert kept["faults"] < pages // 20


def test_a_caller_s_own_malloc_settings_win(monkeypatch):
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "131072")
    assert keep_freed_memory() is False
