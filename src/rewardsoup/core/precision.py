"""Where bf16 is native, and the forward/backward precision a job runs in.

One rule for every stage (training's `train.precision`, scoring's `scoring.dtype`, generation's
`generation.dtype`): `auto` means bf16 wherever the hardware runs bf16 matrix multiplies natively (CUDA with
bf16, CPUs with AVX512-BF16 or AMX tiles), fp32 elsewhere. bf16 here is mixed precision (`torch.autocast`):
weights stay fp32 (a member is saved in fp32, a resident soup is merged in fp32, exactly as mergekit merges
it); only the matrix multiplies run in bf16. Measured in bench/precision.py (docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib

PRECISIONS = ("auto", "fp32", "bf16")  # what `scoring.dtype` accepts (training adds fp16 for GPUs)
_CPU_NATIVE = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # torch.cpu's checks, newest torch first


def cpu_bf16_native() -> bool:
    """The CPU has bf16 matrix units (AVX512-BF16 or AMX): bf16 matmuls run at the bf16 rate, not emulated."""
    import torch

    return any(getattr(torch.cpu, f, lambda: False)() for f in _CPU_NATIVE)


def bf16_native(device: str = "auto") -> bool:
    """bf16 is native on `device` ("cuda", "cuda:N", "cpu"; "auto": cuda when available, else cpu)."""
    import torch

    device = str(device)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return device == "cpu" and cpu_bf16_native()


def resolve(choice: str, device: str = "auto") -> str:
    """`auto` -> "bf16" where native on `device`, else "fp32"; any other choice is returned as given."""
    choice = str(choice)
    if choice != "auto":
        return choice
    return "bf16" if bf16_native(device) else "fp32"


def autocast(choice: str, device: str = "auto"):
    """A context in which forwards run at `choice` (auto / fp32 / bf16): torch.autocast to bf16 on the
    device's type, or nothing for fp32. Weights are not touched."""
    import torch

    if resolve(choice, device) != "bf16":
        return contextlib.nullcontext()
    kind = str(device)
    if kind == "auto":
        kind = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.autocast(device_type=kind.split(":")[0], dtype=torch.bfloat16)
