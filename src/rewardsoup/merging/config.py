"""Schemas of the `merge` group (conf/merge/*.yaml, also composed at `pick.seed_ties`): one soup's settings.

`MergeConfig` holds rewardsoup's own settings (members used, weights by member name, dtype, folder); each
method's schema adds the names of the mergekit parameters its preset sets (`normalize`, `lambda`, `t`, ...).
Their types and values are mergekit's: `merging.methods.resolve` checks them against mergekit's registry, so
they are `Any` here. A preset extends its method's schema (`defaults: [ties_schema, _self_]`); a parameter no
preset sets is added with `+` (`merge.method=dare_ties +merge.rescale=false` on a ties preset).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from omegaconf import MISSING

from rewardsoup.core.config import checked, finite, folder_name, folder_path, one_of, store, within
from rewardsoup.merging.on_disk import DTYPES  # the dtypes mergekit writes a soup in



@dataclass
class MergeConfig:
    method: str = MISSING  # a mergekit method rewardsoup wires (merging/methods.py SUPPORTED)
    use: Optional[List[str]] = None  # subset of member names; null = every member
    # member name -> weight; the members group sets 1.0 for each, override per name
    weights: Dict[str, float] = checked(factory=dict, each=finite)
    # member name -> layer group (embed, block<i>, norm, head) -> that member's weight there (merging/layers.py)
    layers: Dict[str, Dict[str, float]] = field(default_factory=dict)
    dtype: str = checked("float32", check=one_of(*DTYPES))  # fp32: a soup scores like its in-memory trial
    seed: Optional[int] = None  # mergekit random_seed: only DARE draws randomly
    name: str = checked("${merge.method}", check=folder_name)  # soup folder name under paths.soups
    # where a single run writes the soup (atomically: '' or '..' would replace the launch folder or a parent)
    output_dir: str = checked("${paths.soups}/${merge.name}", check=folder_path)


@dataclass
class TiesMergeConfig(MergeConfig):
    density: float = checked(check=within(0, 1, low_open=True))  # share of each member's delta kept
    normalize: Any = MISSING


@dataclass
class DareTiesMergeConfig(TiesMergeConfig):
    rescale: Any = MISSING


@dataclass
class LinearMergeConfig(MergeConfig):
    normalize: Any = MISSING


@dataclass
class _TaskArithmeticFields(MergeConfig):
    normalize: Any = MISSING


# mergekit names task arithmetic's scale `lambda`, a Python keyword, which a class body cannot declare: the
# schema is built with it. init=False (no __init__ taking `lambda`): OmegaConf reads the fields, never calls it.
TaskArithmeticMergeConfig = dataclass(init=False, repr=False, eq=False)(type(
    "TaskArithmeticMergeConfig", (_TaskArithmeticFields,),
    {"__annotations__": {"lambda": Any}, "lambda": MISSING, "__module__": __name__}))


@dataclass
class SlerpMergeConfig(MergeConfig):
    t: Any = MISSING
    base_member: Any = MISSING


@dataclass
class ModelStockMergeConfig(MergeConfig):
    filter_wise: Any = MISSING


@dataclass
class DellaMergeConfig(DareTiesMergeConfig):
    epsilon: Any = MISSING  # della's spread of keep rates around `density`, by magnitude rank


@dataclass
class BreadcrumbsMergeConfig(TiesMergeConfig):
    gamma: Any = MISSING  # share of the largest-magnitude entries dropped as outliers


@dataclass
class SceMergeConfig(MergeConfig):
    select_topk: Any = MISSING  # share of entries kept, by variance across members


@dataclass
class KarcherMergeConfig(MergeConfig):
    max_iter: Any = MISSING  # iterations of the Riemannian mean
    tol: Any = MISSING  # convergence tolerance


@dataclass
class NuslerpMergeConfig(MergeConfig):
    nuslerp_row_wise: Any = MISSING  # slerp row vectors instead of column vectors
    nuslerp_flatten: Any = MISSING  # slerp each tensor as one flat vector


@dataclass
class MultislerpMergeConfig(MergeConfig):
    normalize_weights: Any = MISSING  # weights scaled to sum to 1
    eps: Any = MISSING  # numerical floor


@dataclass
class NearswapMergeConfig(MergeConfig):
    t: Any = MISSING  # similarity threshold: entries closer than this move toward the other member
    base_member: Any = MISSING  # the member taken as mergekit's base_model


@dataclass
class ArceeFusionMergeConfig(MergeConfig):
    base_member: Any = MISSING  # the member taken as mergekit's base_model


@dataclass
class RamMergeConfig(MergeConfig):
    epsilon: Any = MISSING  # an entry counts as changed above this


@dataclass
class RamPlusMergeConfig(RamMergeConfig):
    r: Any = MISSING  # RAM+'s overlap share
    alpha: Any = MISSING  # RAM+'s rescale strength


for _name, _schema in (("schema", MergeConfig), ("ties_schema", TiesMergeConfig),
                       ("dare_ties_schema", DareTiesMergeConfig), ("linear_schema", LinearMergeConfig),
                       ("task_arithmetic_schema", TaskArithmeticMergeConfig), ("slerp_schema", SlerpMergeConfig),
                       ("model_stock_schema", ModelStockMergeConfig), ("della_schema", DellaMergeConfig),
                       ("breadcrumbs_schema", BreadcrumbsMergeConfig), ("sce_schema", SceMergeConfig),
                       ("karcher_schema", KarcherMergeConfig), ("nuslerp_schema", NuslerpMergeConfig),
                       ("multislerp_schema", MultislerpMergeConfig), ("nearswap_schema", NearswapMergeConfig),
                       ("arcee_fusion_schema", ArceeFusionMergeConfig), ("ram_schema", RamMergeConfig),
                       ("ramplus_schema", RamPlusMergeConfig)):
    store(_schema, _name, group="merge")
