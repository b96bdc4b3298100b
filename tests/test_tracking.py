"""Tracking: offline runs are written, `none` is a no-op, online without key/network never hangs."""

import time
from pathlib import Path

from omegaconf import OmegaConf

from rewardsoup.core.tracking import start_run


def _cfg(tmp_path, **logger):
    base = {"backend": "wandb", "project": "rewardsoup-test", "mode": "offline", "dir": str(tmp_path),
            "tags": ["t"], "init_timeout": 5}
    return OmegaConf.create({"logger": {**base, **logger}, "train": {"lr": 1e-3, "note": "${train.lr}"}})


def test_offline_run_writes_a_run_folder_with_resolved_config(tmp_path):
    with start_run(_cfg(tmp_path), job_type="train", name="r1") as tracker:
        assert tracker.enabled
        tracker.log({"train/loss": 0.5})
        tracker.summary({"val/accuracy": 0.75})
        run_dir = tracker.dir
        config = dict(tracker.run.config)
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and str(runs[0]) in run_dir
    assert config["train"]["note"] == 1e-3  # interpolations are resolved before logging
    assert any(p.suffix == ".wandb" for p in runs[0].iterdir())


def test_each_job_gets_its_own_run(tmp_path):
    for i in range(2):
        with start_run(_cfg(tmp_path), job_type="trial", name=f"t{i}", group="sweep-a") as tracker:
            tracker.log({"objective": i})
    assert len(list((tmp_path / "wandb").glob("offline-run-*"))) == 2


def _tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() + ("/" if p.is_dir() else "") for p in root.rglob("*")}


def _run_from_real_config(logger: str, compose_cfg, out_root, tmp_path, monkeypatch) -> tuple[set[str], bool]:
    """One job's tracking with the real `logger=<logger>` config, every place W&B may write moved under tmp_path.

    Returns the paths that appeared under tmp_path and whether the tracker was enabled.
    """
    import wandb

    cwd, home = tmp_path / "cwd", tmp_path / "home"
    for d in (cwd, home, out_root):
        d.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("HOME", str(home))
    for var in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose_cfg("train", [f"logger={logger}", "model=tiny_gpt2"])
    assert cfg.paths.root == str(out_root)
    before = _tree(tmp_path)
    with start_run(cfg, job_type="train", name="noop-check") as tracker:
        enabled = tracker.enabled
        tracker.log({"train/loss": 0.5})
        tracker.summary({"val/accuracy": 0.75})
        tracker.table("t", ["a"], [[1]])
    assert wandb.run is None  # no run left open either way
    return _tree(tmp_path) - before, enabled


def test_logger_none_writes_nothing_anywhere(compose_cfg, out_root, tmp_path, monkeypatch):
    new, enabled = _run_from_real_config("none", compose_cfg, out_root, tmp_path, monkeypatch)
    assert not enabled
    assert new == set()  # not in cwd, not under paths.root, not in WANDB_DIR/config/cache/data dirs, not in HOME
    assert not (tmp_path / "cwd" / "wandb").exists() and not (out_root / "wandb").exists()


def test_the_same_check_sees_an_offline_run_write(compose_cfg, out_root, tmp_path, monkeypatch):
    """The control for the test above: the real wandb logger (offline) run through the same body does write."""
    new, enabled = _run_from_real_config("wandb", compose_cfg, out_root, tmp_path, monkeypatch)
    assert enabled
    runs = list((out_root / "wandb").glob("offline-run-*"))  # logger.dir is ${paths.root}
    assert len(runs) == 1 and any(p.suffix == ".wandb" for p in runs[0].iterdir())
    rel = runs[0].relative_to(tmp_path).as_posix()
    assert rel + "/" in new and any(f.startswith(rel + "/") and f.endswith(".wandb") for f in new)


def test_online_without_key_or_network_falls_back_offline_quickly(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wbcfg"))  # no stored login
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    start = time.monotonic()
    with start_run(_cfg(tmp_path, mode="online"), job_type="train") as tracker:
        tracker.log({"x": 1})
        offline = tracker.run.settings.mode
    assert time.monotonic() - start < 60
    assert offline in ("offline", "dryrun")
