"""train.py under `accelerate launch` with two processes on CPU (gloo): one base build, one member, one W&B run,
and the numbers of a one-process run.

accelerate 1.15 runs `accelerate launch --cpu --num_processes 2` as ONE process (its multi-CPU mode needs
mpirun), so the test launches through `--multi_gpu`, i.e. torchrun: with no GPU, train.precision resolves to
the CPU and the process group is gloo. `max_length=16` makes every text the same length, so the Trainer's
length-grouped sampler gives the same rows per step to 2 x 4 rows as to 1 x 8 and the runs can be compared.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from conftest import ROOT
from rewardsoup.models.base import BASE_META, MEMBER_META
from rewardsoup.training.member import train_member

NAME = "demo_pairs-pairwise"
COMMON = ["experiment=smoke", "data=demo_pairs", "objective=pairwise", "train.max_steps=4", "train.save_steps=2",
          "train.logging_steps=1", "train.max_length=16",
          "train.precision=fp32"]  # the comparison with one process is exact in fp32 (accelerate runs --mixed_precision no)


def _shapes(folder: Path) -> dict:
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch_two(overrides: list[str]) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), "train.py", *overrides]
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def _recomputed_val(cfg, member: Path) -> dict:
    """validation_metrics of the saved member on the val rows training used, in this one process."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rewardsoup.data import load_splits
    from rewardsoup.scoring.metrics import evalset_from_split, validation_metrics
    from rewardsoup.training.objectives import adapt_splits, get_objective

    tok = AutoTokenizer.from_pretrained(str(member))
    splits, _ = adapt_splits(load_splits(cfg.data, tok), get_objective(str(cfg.objective.name)), cfg.objective)
    es = evalset_from_split(splits.name, splits.schema, splits.val, tok, int(cfg.train.max_length))
    model = AutoModelForSequenceClassification.from_pretrained(str(member), dtype=torch.float32)
    return validation_metrics(model, es, tok.pad_token_id, int(cfg.train.eval_batch_size))


# slow: 25 s; two torchrun processes on 2 cores (make test-slow)
@pytest.mark.slow
def test_two_processes_write_one_member_with_one_process_numbers(tmp_path, tiny_base_dir, compose_cfg):
    root, base = tmp_path / "two", tmp_path / "bases" / "tiny"  # a base not built yet: rank 0 builds it
    overrides = COMMON + [f"model.base_dir={base}", f"paths.root={root}", "train.batch_size=4"]
    run = _launch_two(overrides + ["logger=wandb", "logger.mode=offline"])
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-3000:]

    # the base: built once (rank 0), found by rank 1, and the same bytes as an in-process build
    assert out.count(f"base: {base} (built)") == 1 and out.count(f"base: {base} (found)") == 1, out[-3000:]
    assert sorted(p.name for p in base.parent.iterdir()) == ["tiny"] and (base / BASE_META).exists()
    assert load_file(base / "model.safetensors").keys() == load_file(tiny_base_dir / "model.safetensors").keys()
    assert (base / "model.safetensors").read_bytes() == (tiny_base_dir / "model.safetensors").read_bytes()

    # one member folder, no work dir or temporary sibling left, one W&B run, one final message
    assert sorted(p.name for p in (root / "members").iterdir()) == [NAME]
    member = root / "members" / NAME
    assert len(list((root / "wandb").glob("offline-run-*"))) == 1
    assert out.count(f"member '{NAME}' ->") == 1
    meta = json.loads((member / MEMBER_META).read_text())
    assert meta["distributed"] == {"processes": 2, "per_device_batch_size": 4, "grad_accum": 1,
                                   "effective_batch_size": 8}
    assert meta["steps"] == 4 and _shapes(member) == _shapes(base)

    # the saved validation is what one process computes on the saved member
    cfg = compose_cfg("train", overrides)
    again = _recomputed_val(cfg, member)
    assert again["n"] == meta["val"]["n"] == meta["split_sizes"]["val"] > 0
    for key in ("accuracy", "accuracy_strict", "tie_rate", "margin"):
        assert again[key] == pytest.approx(meta["val"][key], abs=1e-6), key

    # and a one-process run at the same effective batch (1 x 8) trains the same member
    one = compose_cfg("train", COMMON + [f"model.base_dir={base}", f"paths.root={tmp_path / 'one'}",
                                         "train.batch_size=8", "logger=none"])
    train_member(one)
    single = Path(one.train.output_dir)
    one_meta = json.loads((single / MEMBER_META).read_text())
    assert one_meta["distributed"]["processes"] == 1 and one_meta["distributed"]["effective_batch_size"] == 8
    assert _shapes(single) == _shapes(member)
    assert one_meta["val"]["accuracy"] == pytest.approx(meta["val"]["accuracy"], abs=1e-6)
    assert one_meta["val"]["margin"] == pytest.approx(meta["val"]["margin"], abs=1e-5)
    assert one_meta["train_loss"] == pytest.approx(meta["train_loss"], abs=1e-4)
    w0, w1, w2 = (load_file(p / "model.safetensors") for p in (base, single, member))
    moved = sum(float((w1[k] - w0[k]).norm() ** 2) for k in w0) ** 0.5
    apart = sum(float((w2[k] - w1[k]).norm() ** 2) for k in w0) ** 0.5
    assert moved > 0 and apart < 0.01 * moved, (apart, moved)
