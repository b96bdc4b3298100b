"""Schema of sample.py's root config (conf/sample.yaml extends `sample_schema`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from omegaconf import MISSING

from rewardsoup.core.config import (LoggerConfig, PathsConfig, at_least_one, checked, existing_file, scorer_folder,
                                    one_of, positive, store, within)
from rewardsoup.data.render import STYLES
from rewardsoup.models.config import ModelConfig
from rewardsoup.scoring.config import ScoringConfig

# best: one line per prompt with every candidate and the chosen one; preferences: best vs worst as pairs
MODES = ("best", "preferences")


@dataclass
class GenerationConfig:
    max_new_tokens: int = checked(check=at_least_one)
    temperature: float = checked(check=positive)  # sampling needs spread; use n=1 for one reply
    top_p: float = checked(check=within(0, 1, low_open=True))
    batch_prompts: int = checked(check=at_least_one)
    share_prompt: bool = MISSING
    max_prompt_length: int = checked(check=at_least_one)
    dtype: str = MISSING  # auto, or a torch dtype name (checked where the generator loads)


@dataclass
class SampleJobConfig:
    paths: PathsConfig = MISSING
    scoring: ScoringConfig = MISSING
    model: ModelConfig = MISSING
    logger: LoggerConfig = MISSING
    generator: str = MISSING
    reward_model: str = checked(check=scorer_folder)  # a soup, member or routed soup folder: checked before the generator loads
    mode: str = checked(check=one_of(*MODES))
    prompts: Optional[str] = checked(None, check=existing_file)  # jsonl of prompts; null: prompt or candidates
    prompt: Optional[Any] = None  # one string, or a list of them
    candidates: Optional[str] = checked(None, check=existing_file)  # jsonl of replies to rerank; null: generate
    n: int = checked(check=at_least_one)
    seed: int = MISSING
    output: Optional[str] = None
    print_candidates: bool = MISSING
    device: str = MISSING
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    render_style: str = checked(check=one_of(*STYLES))
    max_length: int = checked(check=at_least_one)
    score_batch_size: int = checked(check=at_least_one)
    # experiment bundles (conf/experiment) serve every entry point and also set train.py's `train.*`: unused here
    train: Dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def rules(node) -> list[tuple[str, str]]:
        if node.mode == "preferences" and node.n < 2 and not node.candidates:
            return [("n", "mode=preferences needs n >= 2 (a best and a worst candidate)")]
        return []


store(SampleJobConfig, "sample_schema")
