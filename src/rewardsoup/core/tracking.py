"""Experiment tracking: one W&B run per job, or nothing when `logger=none`.

- The resolved config is logged (`OmegaConf.to_container(resolve=True)`), with project, group, job_type
  and tags from `cfg.logger`.
- Offline by default. It never hangs and never fails for lack of network or key: an online init that
  fails (no key, no network, timeout) warns once and falls back to an offline run.
- `wandb.finish()` always runs (context manager), so multirun jobs in one process get one run each.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Iterator, Mapping

from omegaconf import DictConfig

from rewardsoup.core.plain import plain

log = logging.getLogger("rewardsoup.core.tracking")


class Tracker:
    """Thin wrapper over a W&B run; every method is a no-op when tracking is off."""

    def __init__(self, run=None):
        self.run = run

    @property
    def enabled(self) -> bool:
        return self.run is not None

    @property
    def dir(self) -> str | None:
        return getattr(self.run, "dir", None) if self.run else None

    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        if self.run:
            self.run.log(dict(metrics), step=step)

    def summary(self, metrics: Mapping[str, Any]) -> None:
        if self.run:
            for k, v in metrics.items():
                self.run.summary[k] = v

    def table(self, key: str, columns: list[str], rows: list[list[Any]]) -> None:
        if self.run:
            import wandb

            self.run.log({key: wandb.Table(columns=columns, data=rows)})

    def image(self, key: str, path: str) -> None:
        if self.run:
            import wandb

            self.run.log({key: wandb.Image(path)})


def _init(logger: Mapping[str, Any], config: dict, job_type: str, name: str | None,
          group: str | None, extra_tags: list[str]):
    import wandb

    mode = str(logger.get("mode", "offline"))
    kwargs = dict(
        project=logger.get("project", "rewardsoup"), entity=logger.get("entity"),
        group=group or logger.get("group"), job_type=job_type, name=name,
        tags=list(logger.get("tags") or []) + extra_tags, config=config, dir=logger.get("dir"),
        reinit="finish_previous",
    )
    if kwargs["dir"]:
        os.makedirs(kwargs["dir"], exist_ok=True)
    settings = wandb.Settings(init_timeout=float(logger.get("init_timeout", 30)), silent=True)
    if mode == "online":
        try:
            return wandb.init(mode="online", settings=settings, **kwargs)
        except Exception as exc:  # no key, no network, timeout: keep the run, offline
            log.warning("W&B online init failed (%s); logging this run offline instead", exc)
    return wandb.init(mode="disabled" if mode == "disabled" else "offline", settings=settings, **kwargs)


@contextlib.contextmanager
def start_run(cfg: DictConfig, job_type: str, name: str | None = None, group: str | None = None,
              config: dict | None = None, tags: list[str] | None = None) -> Iterator[Tracker]:
    """Open one tracked run for a job; yields a `Tracker` (a no-op one when `logger.backend=none`)."""
    logger = cfg.get("logger") or {"backend": "none"}
    if logger.get("backend", "none") == "none":
        yield Tracker()
        return
    resolved = config if config is not None else plain(cfg)
    logger = plain(logger)
    run = _init(logger, resolved, job_type, name, group, list(tags or []))
    try:
        yield Tracker(run)
    finally:
        run.finish()
