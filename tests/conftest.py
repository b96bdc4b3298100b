"""Shared fixtures: compose the project's real Hydra configs, isolate outputs, keep W&B offline."""

from __future__ import annotations

import os
from pathlib import Path

if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs one worker per core (pytest-xdist): one thread each,
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # here (set before torch loads) and in the entry points a
        os.environ[var] = "1"  # test launches, so the workers share the cores instead of oversubscribing them

import pytest  # noqa: E402
from hydra import compose, initialize_config_dir  # noqa: E402

import rewardsoup.schemas  # noqa: F401,E402  (registers the config schemas and the `abspath` resolver)
from rewardsoup.core.allocator import keep_freed_memory  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED_DATA = ROOT.parent / "shared" / "data"

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
keep_freed_memory()  # as every entry point does: tests run the work functions in this process


def group_choices(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.fixture
def out_root(tmp_path, monkeypatch) -> Path:
    """A fresh paths.root for the test (through the env var the config reads)."""
    root = tmp_path / "outputs"
    monkeypatch.setenv("REWARDSOUP_OUTPUTS", str(root))
    return root


@pytest.fixture
def compose_cfg(out_root):
    """compose_cfg("train", ["data=demo_pairs"]) -> the DictConfig the entry point would see."""

    def _compose(root: str, overrides: list[str] | None = None):
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return compose(config_name=root, overrides=list(overrides or []))

    return _compose


def shared_file(name: str) -> Path:
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} not present (shared real data is optional)")
    return path


@pytest.fixture(scope="session")
def tiny_base_dir(tmp_path_factory) -> Path:
    """The merge-ready tiny GPT-2 base, built once per test session."""
    from rewardsoup.models.base import build_base

    folder = tmp_path_factory.mktemp("bases") / "tiny_gpt2-L2"
    return build_base({"source": "tiny:gpt2", "layers": 2, "dtype": "float32",
                       "tiny": {"n_layer": 2, "n_embd": 32, "n_head": 2, "n_positions": 512},
                       "base_dir": str(folder)})


@pytest.fixture
def smoke_overrides(tiny_base_dir) -> list[str]:
    """Overrides for a seconds-long training run on the shared tiny base."""
    return ["experiment=smoke", f"model.base_dir={tiny_base_dir}", "train.max_steps=4",
            "train.batch_size=4", "train.save_steps=2", "train.logging_steps=1"]


@pytest.fixture(scope="session")
def tiny_members(tmp_path_factory, tiny_base_dir) -> dict[str, Path]:
    """Three tiny members (thumbs/binary, pairs/pairwise, harmless/pairwise) trained a few steps."""
    from rewardsoup.training.member import train_member

    root = tmp_path_factory.mktemp("soup-root")
    out = {}
    for name, data, objective in (("thumbs", "demo_thumbs", "binary"), ("pairs", "demo_pairs", "pairwise"),
                                  ("harmless", "demo_harmless", "pairwise")):
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose(config_name="train", overrides=[
                "experiment=smoke", f"model.base_dir={tiny_base_dir}", f"paths.root={root}", f"data={data}",
                f"objective={objective}", "train.max_steps=6", "train.lr=1e-3", "train.save_steps=100"])
        train_member(cfg)
        out[name] = Path(cfg.train.output_dir)
    return out


@pytest.fixture
def merge_overrides(tiny_members, tiny_base_dir) -> list[str]:
    return ["logger=none", "model=tiny_gpt2", f"model.base_dir={tiny_base_dir}"] + [
        f"members.{name}={path}" for name, path in tiny_members.items()]
