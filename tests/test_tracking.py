"""Tracking: offline runs are written, `none` is a no-op, online without key/network never hangs."""

import time

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


def test_logger_none_is_a_noop(tmp_path):
    cfg = OmegaConf.create({"logger": {"backend": "none"}})
    with start_run(cfg, job_type="train") as tracker:
        assert not tracker.enabled
        tracker.log({"x": 1})
        tracker.table("t", ["a"], [[1]])
    assert not (tmp_path / "wandb").exists()


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
