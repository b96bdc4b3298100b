"""A member given as a peft LoRA adapter folder (trained outside the project): checked, then applied to its base.

Every stage merges and scores full weights, so an adapter member is materialised once: loaded on the recipe's
base with peft, `merge_and_unload`ed and saved (atomically) under `paths.cache/adapters/<name>-<hash>`, the
hash taken over the adapter's files and the base's, so a changed adapter is applied again and an unchanged one
is reused by every sweep trial. Refused, with one `error:` line naming the folder, before anything is loaded:
- an adapter that is not LoRA, or whose `adapter_config.json` does not parse;
- an adapter trained on another base than the recipe's (`base_model_name_or_path` is neither the recipe's base
  folder nor a base folder with the same `rewardsoup_base.json`): its differences mean nothing on this base;
- an adapter whose score head was not saved (not in `modules_to_save`: the member would score with the base's
  random head, peft #1070, trl #368), or was saved still equal to the base's initial head (never trained).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Mapping

from filelock import FileLock

from rewardsoup.core.atomic import atomic_dir, atomic_write_json
from rewardsoup.core.config import ADAPTER_CONFIG
from rewardsoup.core.errors import ModelError
from rewardsoup.models.base import BASE_META, HEAD

ADAPTER_DIR = "adapter"  # a LoRA member's peft adapter, inside the member's folder (training/lora.py writes it)
ADAPTER_WEIGHTS = "adapter_model.safetensors"
SOURCE = "rewardsoup_adapter.json"  # beside a materialised adapter: which adapter, on which base


def is_adapter(path: str | Path) -> bool:
    """A peft adapter folder (adapter_config.json and no full model's config.json)."""
    p = Path(str(path))
    return (p / ADAPTER_CONFIG).is_file() and not (p / "config.json").is_file()


def _same_base(recorded: str, base: Path) -> bool:
    other = Path(recorded).expanduser()
    if not other.is_dir():
        return False
    if other.resolve() == base.resolve():
        return True
    meta, theirs = base / BASE_META, other / BASE_META
    return meta.is_file() and theirs.is_file() and json.loads(meta.read_text()) == json.loads(theirs.read_text())


def saved_head(tensors: Mapping[str, object]) -> dict:
    """The score head an adapter saved (peft writes `modules_to_save` as `base_model.model.score.*`), under the
    full model's names (`score.weight`); empty when it saved none."""
    out = {}
    for k, v in tensors.items():
        if f".{HEAD}." in f".{k}" and "lora_" not in k:
            out[f"{HEAD}." + k.rsplit(f"{HEAD}.", 1)[-1].removeprefix("modules_to_save.default.")] = v
    return out


def _base_head(base: Path):
    """The base's initial score weight, read alone from its safetensors (no other tensor is loaded)."""
    from safetensors import safe_open

    for f in sorted(base.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as handle:
            if f"{HEAD}.weight" in handle.keys():
                return handle.get_tensor(f"{HEAD}.weight")
    return None


def check_adapter(folder: str | Path, base: str | Path, who: str) -> dict:
    """The adapter's config when it can be applied to `base` as a reward member; a ModelError naming the folder
    and the reason otherwise. Reads the config and the adapter's tensors only (no model is loaded)."""
    import torch
    from safetensors.torch import load_file

    folder, base = Path(str(folder)), Path(str(base))
    if not (folder / ADAPTER_CONFIG).is_file():
        raise ModelError(f"{who}: {folder} has no {ADAPTER_CONFIG} (not a peft adapter folder)")
    try:
        config = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ModelError(f"{who}: {folder / ADAPTER_CONFIG} is not valid JSON: {exc}") from exc
    if str(config.get("peft_type", "")).upper() != "LORA":
        raise ModelError(f"{who}: {folder} is a {config.get('peft_type')} adapter; members may be LoRA adapters")
    recorded = str(config.get("base_model_name_or_path") or "")
    if not _same_base(recorded, base):
        raise ModelError(f"{who}: {folder} is an adapter for base {recorded or '(not recorded)'}, not the recipe's "
                         f"base {base}: train it on that base (train.lora.enabled=true does)")
    weights = folder / ADAPTER_WEIGHTS
    if not weights.is_file():
        raise ModelError(f"{who}: {folder} has no {ADAPTER_WEIGHTS} (save the adapter with save_pretrained)")
    head = saved_head(load_file(str(weights)))
    if not head:
        raise ModelError(f"{who}: {folder} saved no '{HEAD}' head: a reward adapter must train and save it "
                         f"(peft LoraConfig(modules_to_save=['{HEAD}']) or task_type='SEQ_CLS')")
    start, saved = _base_head(base), head.get(f"{HEAD}.weight")
    if start is not None and saved is not None and saved.shape == start.shape and torch.equal(saved, start):
        raise ModelError(f"{who}: {folder}'s '{HEAD}' head still equals the base's initial head: it was never "
                         f"trained (was '{HEAD}' left out of the trainable modules?)")
    return config


def _digest(folder: Path, base: Path) -> str:
    """The adapter's files by content; the base by its metadata and its weights' sizes and times (hashing the
    base's bytes would read it again on every sweep trial that resolves the member)."""
    h = hashlib.sha256()
    for f in sorted(folder.glob("*.json")) + [folder / ADAPTER_WEIGHTS]:
        h.update(f.name.encode())
        h.update(f.read_bytes())
    h.update(str(base.resolve()).encode())
    for f in sorted(base.glob("*.safetensors")) + [base / BASE_META]:
        if f.is_file():
            h.update(f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}".encode())
    return h.hexdigest()[:12]


def materialise(folder: str | Path, base: str | Path, cache: str | Path, name: str) -> Path:
    """The full member of adapter `folder` on `base` (checked first), written once under `cache/adapters`."""
    folder, base = Path(str(folder)), Path(str(base))
    if not (folder / ADAPTER_WEIGHTS).is_file():
        check_adapter(folder, base, f"member {name!r}")  # names what is missing
    out = Path(str(cache)) / "adapters" / f"{name}-{_digest(folder, base)}"
    if (out / SOURCE).is_file():  # checked and applied before: the same adapter bytes on the same base
        return out
    check_adapter(folder, base, f"member {name!r}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out) + ".lock"):  # parallel sweep trials: one applies it, the others then find it
        if not (out / SOURCE).is_file():
            _apply(folder, base, out, name)
    return out


def _apply(folder: Path, base: Path, out: Path, name: str) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(str(base), dtype=torch.float32)
    try:
        model = PeftModel.from_pretrained(model, str(folder)).merge_and_unload()
    except (RuntimeError, ValueError, KeyError) as exc:  # shapes or module names that do not fit the base
        raise ModelError(f"member {name!r}: {folder} does not apply to base {base}: {str(exc).splitlines()[0]}") from exc
    with atomic_dir(out, overwrite=True) as tmp:
        model.config.problem_type = None
        model.save_pretrained(str(tmp))
        AutoTokenizer.from_pretrained(str(base)).save_pretrained(str(tmp))
        atomic_write_json(tmp / SOURCE, {"adapter": str(folder.resolve()), "base": str(base.resolve())})


def member_folders(members: Mapping[str, str], base: str | Path, cache: str | Path) -> dict[str, str]:
    """`members` (name -> folder) with every adapter folder replaced by its materialised full member."""
    return {n: str(materialise(p, base, cache, n)) if is_adapter(p) else str(p) for n, p in members.items()}


def describe_lora(lora: Mapping) -> str:
    """A LoRA member's line in its model card (training/lora.py `settings`)."""
    return (f"- LoRA (peft): rank {lora.get('r')}, alpha {lora.get('alpha')}, dropout {lora.get('dropout')}, targets "
            f"{', '.join(map(str, lora.get('targets') or []))}, the score head trained in full ({lora.get('trainable_params')} "
            f"trainable parameters); the adapter is in `{lora.get('adapter')}/`, these weights have it applied")
