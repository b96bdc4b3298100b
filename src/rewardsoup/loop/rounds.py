"""The loop's rounds: sample -> pick -> fine-tune, k times per picker, then held-out replies to judge.

Round r of picker p (r = 1..k): the generator of round r-1 (round 0: `loop.generator`) writes `loop.n`
candidates per train prompt and p keeps the best (`sample.py mode=best`, seed + r) -> the generator is
fine-tuned on those picks (`tune.py`, seed + r) -> the tuned generator is round r's. Every generator of the
loop (round 0's once, shared by the pickers) then writes one greedy reply per held-out prompt. Each of these
is a stage with one output file or folder, written atomically, and skipped when it exists: a rerun after a
kill redoes only the unfinished stage (sampling is seeded, fine-tuning resumes from its checkpoint), so it
ends with the same outputs. Layout under `folder` (paths.root/loop):

    train-prompts.jsonl, heldout-prompts.jsonl     (demo prompts; or the user's files)
    round-0/heldout.jsonl                         round 0's greedy held-out replies
    <picker>/round-<r>/picks.jsonl                 sample.py mode=best on the train prompts
    <picker>/round-<r>/generator/                  tune.py's output
    <picker>/round-<r>/heldout.jsonl               its greedy held-out replies
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from omegaconf import DictConfig

from rewardsoup.core.atomic import atomic_write_text
from rewardsoup.core.config import validate
from rewardsoup.loop.config import LoopSettings
from rewardsoup.loop.prompts import prompt_files
from rewardsoup.sampling.generation import device_of, generate_replies, load_generator, release_generators
from rewardsoup.sampling.job import sample_job
from rewardsoup.sampling.prompts import read_prompts
from rewardsoup.tuning.sft import TUNED_META, tune_generator

Compose = Callable[[str, list[str]], DictConfig]  # (root config name, overrides) -> composed config
Stage = Callable[[str, "Path | None", Callable[[], object]], None]  # (title, output that marks it done, work)
HELDOUT = "heldout.jsonl"


def round_dir(folder: Path, picker: str | None, r: int) -> Path:
    return folder / "round-0" if r == 0 else folder / str(picker) / f"round-{r}"


def generator_of(loop: LoopSettings, folder: Path, picker: str | None, r: int) -> str:
    """Round r's generator: `loop.generator` for round 0, else that round's tuned folder."""
    return str(loop.generator) if r == 0 else str(round_dir(folder, picker, r) / "generator")


def heldout_replies(spec: str, prompts: Path, scfg: DictConfig, out: Path) -> None:
    """One greedy reply per held-out prompt from generator `spec`, written as jsonl (atomic)."""
    items = read_prompts(prompts)
    gen = load_generator(spec, str(scfg.generation.dtype), device_of(scfg.device))
    batch, lines = int(scfg.generation.batch_prompts) * int(scfg.n), []  # as many sequences per call as sampling
    for start in range(0, len(items), batch):
        chunk = items[start:start + batch]
        for item, (reply,) in zip(chunk, generate_replies(gen, chunk, 1, scfg.generation, greedy=True)):
            lines.append({"where": item.where, "messages": item.messages, "reply_name": item.reply_name,
                          "reply": reply, "generator": {"name": spec, "family": gen.family}})
    release_generators()
    atomic_write_text(out, "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines))


class Loop:
    """The rounds of one loop recipe: `run()` does every unfinished stage through `stage`."""

    def __init__(self, loop: LoopSettings, pickers: dict[str, Path], judge: Path, folder: Path, compose: Compose,
                 stage: Stage, overrides: dict[str, list[str]]):
        self.loop, self.pickers, self.judge, self.folder = loop, pickers, judge, folder
        self.compose, self.stage, self.overrides = compose, stage, overrides
        self.train, self.heldout = prompt_files(loop, folder)

    def sample_cfg(self, picker: Path, generator: str, r: int, output: Path | None = None) -> DictConfig:
        """sample.py's config for round r (the held-out replies read only its generation settings)."""
        args = list(self.loop.sample) + [f"reward_model={picker}", f"generator={generator}", f"prompts={self.train}",
                                         f"n={self.loop.n}", "mode=best", f"seed={self.loop.seed + r}",
                                         "print_candidates=false"] + ([f"output={output}"] if output else [])
        return validate(self.compose("sample", args + self.overrides.get("sample", [])))

    def tune_cfg(self, name: str, generator: str, picks: Path, output: Path, r: int) -> DictConfig:
        args = list(self.loop.tune) + [f"generator={generator}", f"picks={picks}", f"output={output}",
                                       f"tune.seed={self.loop.seed + r}", f"name=tune-{name}-round-{r}"]
        return validate(self.compose("tune", args + self.overrides.get("tune", [])))

    def _heldout(self, title: str, spec: str, out: Path) -> None:
        scfg = self.sample_cfg(self.judge, spec, 0)
        self.stage(title, out, lambda: heldout_replies(spec, self.heldout, scfg, out))

    def run(self) -> dict[str, Any]:
        k = int(self.loop.rounds)
        self._heldout("loop round 0: greedy held-out replies", str(self.loop.generator),
                      round_dir(self.folder, None, 0) / HELDOUT)
        for name, picker in self.pickers.items():
            for r in range(1, k + 1):
                here, previous = round_dir(self.folder, name, r), generator_of(self.loop, self.folder, name, r - 1)
                picks, tuned = here / "picks.jsonl", here / "generator"
                self.stage(f"loop '{name}' round {r}/{k}: best-of-{self.loop.n} on the train prompts", picks,
                           lambda: sample_job(self.sample_cfg(picker, previous, r, picks)))
                release_generators()
                self.stage(f"loop '{name}' round {r}/{k}: fine-tune on the picks (tune.py)", tuned / TUNED_META,
                           lambda: tune_generator(self.tune_cfg(name, previous, picks, tuned, r)))
                self._heldout(f"loop '{name}' round {r}/{k}: greedy held-out replies", str(tuned), here / HELDOUT)
        return {"train_prompts": str(self.train), "heldout_prompts": str(self.heldout)}
