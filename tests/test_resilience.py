"""Interruptions and determinism: kill -9 mid-training then resume, kill -9 mid-merge, same seed twice."""

import pytest
import json
import os
import signal
import subprocess
import sys
import time

import torch
from safetensors.torch import load_file

from conftest import ROOT
from rewardsoup.training.member import MEMBER_META, train_member


def _wait_for(predicate, proc, timeout=240.0, every=0.005):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(every)
    return False


# slow: 20 s; test_kill_matrix kills training before its final rename in make test and checks the same bytes
@pytest.mark.slow
def test_kill_during_training_then_resume_completes(out_root, tiny_base_dir):
    args = [sys.executable, "train.py", "experiment=smoke", f"model.base_dir={tiny_base_dir}", "data=demo_thumbs",
            "train.max_steps=60", "train.save_steps=5", "train.batch_size=2"]
    work = out_root / "members" / ".demo_thumbs-binary.work" / "checkpoints"
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert _wait_for(lambda: (work / "checkpoint-10").exists(), proc), "no checkpoint before the run ended"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    final = out_root / "members" / "demo_thumbs-binary"
    assert not final.exists()  # no half-written member
    done = subprocess.run(args + ["train.resume=true"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    meta = json.loads((final / MEMBER_META).read_text())
    assert meta["resumed_from"] and int(meta["resumed_from"].rsplit("-", 1)[1]) >= 5 and meta["steps"] == 60


def test_kill_during_merge_write_leaves_no_final_folder(merge_overrides, out_root):
    soups = out_root / "soups"
    for attempt in range(3):
        proc = subprocess.Popen([sys.executable, "merge.py", *merge_overrides, "merge=ties", "merge.density=0.5",
                                 f"merge.name=k{attempt}"], cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        seen = _wait_for(lambda: soups.exists() and any(p.name.startswith(f".k{attempt}.tmp-")
                                                        for p in soups.iterdir()), proc)
        if seen:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            assert not (soups / f"k{attempt}").exists()
            return
        proc.wait()
    raise AssertionError("never caught the merge while it was writing")


def test_same_seed_same_metrics_and_weights(compose_cfg, smoke_overrides, tmp_path):
    outs = []
    for run in range(2):
        cfg = compose_cfg("train", smoke_overrides + ["data=demo_harmless", "objective=pairwise",
                                                      f"paths.root={tmp_path}/r{run}"])
        train_member(cfg)
        meta = json.loads((tmp_path / f"r{run}" / "members" / "demo_harmless-pairwise" / MEMBER_META).read_text())
        outs.append((meta["val"], load_file(tmp_path / f"r{run}" / "members" / "demo_harmless-pairwise" /
                                            "model.safetensors")))
    assert outs[0][0] == outs[1][0]
    assert all(torch.equal(outs[0][1][k], outs[1][1][k]) for k in outs[0][1])
