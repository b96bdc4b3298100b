"""Shared fixtures: compose the project's real Hydra configs, isolate outputs, keep W&B offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

import rewardsoup.config  # noqa: F401  (registers the `abspath` resolver)

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SHARED_DATA = ROOT.parent / "shared" / "data"

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


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
