"""`make demo`: the whole recipe on the embedded default, offline, each stage skipped when done.

Stages run in one process through the same work functions as the entry points (configs composed from
conf/ exactly as `python train.py …` would). A stage whose output already exists is skipped, so a second
`make demo` is fast and a `make demo` after an interruption finishes the job (training resumes from its
last checkpoint).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import rewardsoup.config  # noqa: F401  (resolvers)
from rewardsoup.errors import RewardSoupError

CONF = Path(__file__).resolve().parents[2] / "conf"
MEMBERS = [  # (data, objective): the three demo members of the recipe
    ("demo_thumbs", "binary"),
    ("demo_pairs", "pairwise"),
    ("demo_harmless", "pairwise"),
]


def compose_cfg(root: str, overrides: list[str]) -> DictConfig:
    conf = CONF if CONF.exists() else Path.cwd() / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        return compose(config_name=root, overrides=overrides)


def _stage(title: str, done: Path | None, work: Callable[[], object]) -> None:
    if done is not None and done.exists():
        print(f"== {title}: already done ({done})", flush=True)
        return
    print(f"== {title} ...", flush=True)
    start = time.monotonic()
    work()
    print(f"== {title}: done in {time.monotonic() - start:.0f}s", flush=True)


def _run(cmd: list[str]) -> None:
    """A stage that is its own command (a Hydra multirun): stream its output, fail loudly."""
    import subprocess

    print("   $ " + " ".join(cmd[1:]), flush=True)
    if subprocess.run(cmd, cwd=CONF.parent).returncode != 0:
        raise RewardSoupError(f"stage failed: {' '.join(cmd[1:])}")


def run_demo(overrides: list[str]) -> None:
    from rewardsoup.base import BASE_META, build_base
    from rewardsoup.pick import pick_best
    from rewardsoup.training import MEMBER_META, train_member

    start = time.monotonic()
    cfg = compose_cfg("train", overrides)
    _stage(f"1/5 base: {cfg.model.source} cut to {cfg.model.layers} layers, 1-logit head",
           Path(cfg.model.base_dir) / BASE_META, lambda: build_base(cfg.model))
    members = {}
    for i, (data, objective) in enumerate(MEMBERS, 1):
        mcfg = compose_cfg("train", overrides + [f"data={data}", f"objective={objective}", "train.resume=true"])
        members[data] = Path(mcfg.train.output_dir)
        _stage(f"2/5 member {i}/3: {data} ({objective})", members[data] / MEMBER_META,
               lambda c=mcfg: train_member(c))
    scfg = compose_cfg("merge", overrides + ["search=optuna"])
    sweep_dir = Path(scfg.sweep.dir)
    # the Optuna study resumes: a rerun launches only the trials still missing
    _stage("3/5 sweep: Optuna trials (conf/search/optuna.yaml) merged in memory, scored on val", None,
           lambda: _run([sys.executable, "merge.py", "-m", "search=optuna", *overrides]))
    pcfg = compose_cfg("merge", overrides + ["search=optuna", "mode=pick"])
    picked = Path(pcfg.paths.soups) / str(pcfg.pick.name)
    report = Path(pcfg.paths.reports) / "evaluate-test" / "table.md"
    _stage("4/5 pick the best trial, export it with mergekit, test beside members and baselines",
           report if (picked / "mergekit_config.yml").exists() else None, lambda: pick_best(pcfg))
    samples = Path(cfg.paths.root) / "samples" / "demo-best-of-4.jsonl"
    _stage("5/5 best-of-4: SmolLM2 writes four replies per role-play prompt, the soup picks one", samples,
           lambda: _run([sys.executable, "sample.py", f"reward_model={picked}", "prompts=demo", "n=4",
                         f"output={samples}", *overrides]))
    print(f"\nDemo finished in {time.monotonic() - start:.0f}s. Results (test splits, unseen by the sweep):\n")
    print(report.read_text())
    print(f"Outputs under {cfg.paths.root}:")
    for name, path in members.items():
        print(f"  member {name}: {path}")
    print(f"  picked soup: {picked}  (mergekit YAML beside it)")
    print(f"  sweep ledger: {sweep_dir / 'ledger.jsonl'}  plots: {sweep_dir / 'plots'}")
    print(f"  best-of-4 samples: {samples}")
    print(f"  W&B offline runs: {cfg.paths.root}/wandb  (upload with `wandb sync {cfg.paths.root}/wandb/offline-run-*`)")


def main() -> None:
    try:
        run_demo(sys.argv[1:])
    except RewardSoupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
