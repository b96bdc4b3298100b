"""Schema of the `model` group (conf/model/*.yaml): which base every member starts from.

Registered as `model/schema`; a preset extends it (`defaults: [schema, _self_]`) and states only what differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional

from omegaconf import MISSING

from rewardsoup.core.config import at_least_one, checked, one_of, store

MODEL_DTYPES = ("float32", "float16", "bfloat16")  # torch dtypes a base is cut and saved in


@dataclass
class ModelConfig:
    name: str = MISSING  # used in folder names and W&B
    source: str = MISSING  # hub name, local folder, embedded:<name> or tiny:<arch>
    layers: int = checked(check=at_least_one)  # keep the first K layers of the source
    dtype: str = checked("float32", check=one_of(*MODEL_DTYPES))  # CPUs train and merge in fp32
    tiny: Optional[Dict[str, Any]] = None  # architecture settings of a tiny:* source; unused otherwise
    # the merge-ready base every member starts from: one folder per model and layer count
    base_dir: str = "${paths.bases}/${model.name}-L${model.layers}"


store(ModelConfig, "schema", group="model")
