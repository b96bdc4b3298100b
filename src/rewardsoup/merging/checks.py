"""On-disk checks run before mergekit: every checkpoint exists and matches the base.

Reads only `config.json`, safetensors headers (`safe_open`, no weights loaded) and tokenizer files, so it
is cheap even for large members. Each failure names the member and the file / tensor / value at fault.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

from rewardsoup.core.errors import ModelError


def weight_files(path: str | os.PathLike, who: str) -> list[Path]:
    """The .safetensors files of a checkpoint folder (sharded or not), or the file itself."""
    p = Path(path)
    if p.is_file() and p.suffix == ".safetensors":
        return [p]
    index = p / "model.safetensors.index.json"
    if index.is_file():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        files = [p / s for s in shards]
    else:
        files = sorted(p.glob("*.safetensors"))
    if not files:
        raise ModelError(f"{who}: no .safetensors weights in {p} (save it with save_pretrained)")
    for f in files:
        if not f.is_file():
            raise ModelError(f"{who}: weight shard {f} is missing")
    return files


def tensor_shapes(path: str | os.PathLike, who: str) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from safetensors headers only."""
    from safetensors import safe_open

    shapes: dict[str, tuple[int, ...]] = {}
    for f in weight_files(path, who):
        try:
            with safe_open(str(f), framework="pt") as handle:
                for name in handle.keys():
                    shapes[name] = tuple(handle.get_slice(name).get_shape())
        except Exception as e:  # truncated / not a safetensors file
            raise ModelError(f"{who}: cannot read tensor headers of {f}: {e}") from e
    return shapes


def vocab_size(path: str | os.PathLike) -> int | None:
    """len(tokenizer) from the tokenizer files, or None when the folder has no tokenizer."""
    p = Path(path)
    if (p / "tokenizer.json").is_file():
        data = json.loads((p / "tokenizer.json").read_text(encoding="utf-8"))
        vocab = (data.get("model") or {}).get("vocab") or {}
        ids = set(vocab.values()) if isinstance(vocab, dict) else set(range(len(vocab)))
        ids |= {t["id"] for t in data.get("added_tokens") or []}
        return len(ids)
    if (p / "vocab.json").is_file() or (p / "tokenizer.model").is_file():
        from transformers import AutoTokenizer

        return len(AutoTokenizer.from_pretrained(str(p)))
    return None


def _config(path: Path, who: str) -> dict:
    if not path.exists():
        raise ModelError(f"{who}: checkpoint folder {path} does not exist")
    cfg = path / "config.json"
    if not cfg.is_file():
        raise ModelError(f"{who}: {path} has no config.json (not a saved transformers model)")
    try:
        return json.loads(cfg.read_text(encoding="utf-8"))
    except ValueError as e:
        raise ModelError(f"{who}: {cfg} is not valid JSON: {e}") from e


def check_checkpoints(base: str | os.PathLike | None, members: Mapping[str, str | os.PathLike]) -> dict:
    """Base and members exist, share architectures, tensor names/shapes and vocabulary size.

    The reference is the base (or the first member when no base is used). Returns a small report.
    """
    models = ({"base": base} if base else {}) | {f"member {n!r}": p for n, p in members.items()}
    infos = {}
    for who, path in models.items():
        path = Path(path)
        cfg = _config(path, who)
        infos[who] = {"path": path, "architectures": cfg.get("architectures"),
                      "shapes": tensor_shapes(path, who), "vocab": vocab_size(path)}
    ref_who, ref = next(iter(infos.items()))
    for who, info in infos.items():
        if who == ref_who:
            continue
        if info["architectures"] != ref["architectures"]:
            raise ModelError(f"{who} has architectures {info['architectures']} but {ref_who} has "
                             f"{ref['architectures']} ({info['path']})")
        for name, shape in ref["shapes"].items():
            if name not in info["shapes"]:
                raise ModelError(f"{who} lacks tensor {name!r} that {ref_who} has ({info['path']})")
            if info["shapes"][name] != shape:
                raise ModelError(f"{who}: tensor {name!r} has shape {list(info['shapes'][name])} but "
                                 f"{ref_who} has {list(shape)} ({info['path']})")
        extra = sorted(set(info["shapes"]) - set(ref["shapes"]))
        if extra:
            raise ModelError(f"{who} has tensor {extra[0]!r} that {ref_who} lacks ({info['path']})")
        if info["vocab"] is not None and ref["vocab"] is not None and info["vocab"] != ref["vocab"]:
            raise ModelError(f"{who} has a tokenizer of {info['vocab']} tokens but {ref_who} has "
                             f"{ref['vocab']} ({info['path']})")
    return {who: {"architectures": i["architectures"], "tensors": len(i["shapes"]), "vocab": i["vocab"]}
            for who, i in infos.items()}
