"""rewardsoup.merging (methods, in_memory, on_disk, state_dicts) against mergekit 0.1.5 itself: in-memory math == run_merge output, fast trim ==
mergekit's trim, name-keyed configs, preflight errors, atomic outputs. Tiny seeded models only."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from rewardsoup.merging import trim
from rewardsoup.core.errors import ConfigError, ModelError
from rewardsoup.merging.in_memory import merge_in_memory
from rewardsoup.merging.methods import METHODS
from rewardsoup.merging.on_disk import merge_to_disk, mergekit_config, preflight
from rewardsoup.merging.state_dicts import apply_state_dict, load_state_dict

NAMES = ("alpha", "bravo", "charlie")
WEIGHTS = {"alpha": 1.0, "bravo": 0.5, "charlie": 0.75}


def _gpt2_config(num_labels: int = 1):
    from transformers import GPT2Config

    return GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=1000, n_positions=128, num_labels=num_labels,
                      pad_token_id=0, bos_token_id=1, eos_token_id=1)


def _llama_config():
    from transformers import LlamaConfig

    return LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, vocab_size=1000, num_labels=1, pad_token_id=0, bos_token_id=1,
                       eos_token_id=1)


def _save_tokenizer(folder: Path, size: int = 50) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"w{i}": i for i in range(size - 1)} | {"[UNK]": size - 1}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[UNK]").save_pretrained(folder)


def _build(root: Path, cls, config, seed: int) -> dict[str, Path]:
    """base + three members = base + seeded perturbations (one member leaves wpe / ln_f untouched)."""
    torch.manual_seed(seed)
    base = cls(config)
    paths = {"base": root / "base"}
    base.save_pretrained(paths["base"])
    _save_tokenizer(paths["base"])
    for i, name in enumerate(NAMES):
        g = torch.Generator().manual_seed(seed * 10 + i)
        sd = {}
        for k, v in base.state_dict().items():
            same = name == "charlie" and ("wpe" in k or "norm" in k or "ln_f" in k)
            sd[k] = v.clone() if same else v + 0.01 * torch.randn(v.shape, generator=g)
        member = cls(config)
        member.load_state_dict(sd)
        paths[name] = root / name
        member.save_pretrained(paths[name])
        _save_tokenizer(paths[name])
    return paths


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory) -> dict[str, Path]:
    from transformers import GPT2ForSequenceClassification

    return _build(tmp_path_factory.mktemp("gpt2"), GPT2ForSequenceClassification, _gpt2_config(), seed=0)


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> dict[str, Path]:
    from transformers import LlamaForSequenceClassification

    return _build(tmp_path_factory.mktemp("llama"), LlamaForSequenceClassification, _llama_config(), seed=1)


def _members(paths, names=NAMES):
    return {n: str(paths[n]) for n in names}


def _disk_vs_memory(paths, tmp_path, method, density=None, params=None, weights=WEIGHTS, seed=None):
    members = _members(paths)
    base = str(paths["base"])
    preflight(method, base, members, weights, density, params)
    cfg = mergekit_config(method, base, members, weights, density, params, dtype="float32")
    rng = torch.get_rng_state()
    out = merge_to_disk(cfg, tmp_path / "soup", seed=seed, copy_tokenizer=False)
    assert torch.equal(torch.get_rng_state(), rng), "merge_to_disk(seed=...) leaked a global reseed"
    written = load_file(str(out / "model.safetensors"))
    mem = merge_in_memory(method, load_state_dict(base), {n: load_state_dict(p) for n, p in members.items()},
                          weights, density, params, seed=seed)
    assert set(written) == set(mem), "run_merge wrote a different tensor set"
    return max(float((written[k] - mem[k]).abs().max()) for k in written), out, mem


CASES = [
    ("ties", 1.0, None),
    ("ties", 0.5, None),
    ("ties", 0.3, {"normalize": False, "lambda": 0.7, "rescale": True, "int8_mask": True}),
    ("linear", None, None),
    ("task_arithmetic", None, None),
    ("task_arithmetic", None, {"lambda": 1.3, "normalize": True}),
    ("dare_ties", 1.0, None),
    ("dare_ties", 0.5, None),
    ("dare_ties", 0.5, {"rescale": False, "normalize": True}),
]


@pytest.mark.parametrize("method,density,params", CASES)
def test_in_memory_equals_run_merge(gpt2, tmp_path, method, density, params):
    diff, _, _ = _disk_vs_memory(gpt2, tmp_path, method, density, params, seed=1234)
    assert diff <= 1e-6, f"{method} density={density}: max |in-memory - run_merge| = {diff}"


@pytest.mark.parametrize("method,density", [("ties", 0.5), ("task_arithmetic", None), ("linear", None)])
def test_in_memory_equals_merge_state_dicts(gpt2, method, density):
    """mergekit's own in-memory API is the second reference (deterministic methods: its DARE draws follow
    the state dict's key order, run_merge's follow sorted tensor names)."""
    from mergekit.merge_methods import merge_state_dicts

    base, sds = load_state_dict(gpt2["base"]), {n: load_state_dict(gpt2[n]) for n in NAMES}
    params = {"weight": WEIGHTS} | ({"density": density} if density else {})
    inputs = sds if method == "linear" else sds | {"base": base}
    ref = merge_state_dicts(inputs, method, base=None if method == "linear" else "base", parameters=params)
    ours = merge_in_memory(method, base, sds, WEIGHTS, density)
    assert all(torch.equal(ref[k], ours[k]) for k in ref)


@pytest.mark.parametrize("method,params", [("slerp", {"t": 0.3}), ("model_stock", None)])
def test_delegated_methods_equal_run_merge(gpt2, tmp_path, method, params):
    names = NAMES[:2] if method == "slerp" else NAMES
    members, base = _members(gpt2, names), str(gpt2["base"])
    cfg = mergekit_config(method, base, members, None, None, params)
    written = load_file(str(merge_to_disk(cfg, tmp_path / "soup", copy_tokenizer=False) / "model.safetensors"))
    mem = merge_in_memory(method, load_state_dict(base), {n: load_state_dict(p) for n, p in members.items()},
                          params=params)
    assert max(float((written[k] - mem[k]).abs().max()) for k in written) <= 1e-6


# The methods mergekit 0.1.5 registers beyond the presets above, each as `run_merge` writes it. Random ones
# (dare_linear, della, della_linear) draw from torch's generator seeded like mergekit's `random_seed`.
MORE = [  # method, members, weights?, density, params
    ("dare_linear", NAMES, True, 0.5, None),
    ("della", NAMES, True, 0.6, {"epsilon": 0.1}),
    ("della_linear", NAMES, True, 0.6, None),
    ("breadcrumbs", NAMES, True, 0.8, {"gamma": 0.05}),
    ("breadcrumbs_ties", NAMES, True, 0.8, None),
    ("sce", NAMES, False, None, {"select_topk": 0.5}),
    ("karcher", NAMES, False, None, None),
    ("nuslerp", NAMES[:2], True, None, None),
    ("multislerp", NAMES, True, None, None),
    ("nearswap", NAMES[:2], False, None, {"t": 0.001}),
    ("arcee_fusion", NAMES[:2], False, None, {"base_member": "bravo"}),
    ("ram", NAMES, False, None, None),
    ("ramplus_tl", NAMES, False, None, None),
]


@pytest.mark.parametrize("method,names,weighted,density,params", MORE, ids=[c[0] for c in MORE])
def test_every_mergekit_method_in_memory_equals_run_merge(gpt2, tmp_path, method, names, weighted, density, params):
    members, base = _members(gpt2, names), str(gpt2["base"])
    weights = {n: WEIGHTS[n] for n in names} if weighted else None
    preflight(method, base, members, weights, density, params)
    cfg = mergekit_config(method, base, members, weights, density, params)
    assert cfg["merge_method"] == method
    written = load_file(str(merge_to_disk(cfg, tmp_path / "soup", seed=7, copy_tokenizer=False) / "model.safetensors"))
    base_sd, sds = load_state_dict(base), {n: load_state_dict(p) for n, p in members.items()}
    mem = merge_in_memory(method, base_sd, sds, weights, density, params, seed=7)
    assert set(written) == set(mem)
    assert max(float((written[k] - mem[k]).abs().max()) for k in written) <= 1e-6
    moved = [k for k in mem if mem[k].is_floating_point() and not torch.equal(mem[k], base_sd[k])]
    assert moved, f"{method}: the soup equals the base"  # a real merge, not a copy
    if method in ("dare_linear", "della", "della_linear"):  # the seed is what makes them reproducible
        other = merge_in_memory(method, base_sd, sds, weights, density, params, seed=8)
        assert any(not torch.equal(other[k], mem[k]) for k in mem)


def test_llama_ties_equals_run_merge(llama, tmp_path):
    diff, out, mem = _disk_vs_memory(llama, tmp_path, "ties", 0.5)
    assert diff <= 1e-6
    assert list(mem["score.weight"].shape) == [1, 32]


def test_dare_seed_matters_and_is_reproducible(gpt2):
    base = load_state_dict(gpt2["base"])
    sds = {n: load_state_dict(gpt2[n]) for n in NAMES}
    a = merge_in_memory("dare_ties", base, sds, WEIGHTS, 0.5, seed=1)
    b = merge_in_memory("dare_ties", base, sds, WEIGHTS, 0.5, seed=1)
    c = merge_in_memory("dare_ties", base, sds, WEIGHTS, 0.5, seed=2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.float().view(torch.int32)  # NaN-safe, sign-of-zero-aware equality


def test_fast_trim_equals_mergekit_trim():
    from mergekit.sparsify import magnitude as mk_magnitude

    g = torch.Generator().manual_seed(0)
    sparse = torch.zeros(4000)
    sparse[::5] = torch.randn(800, generator=g)
    tensors = {
        "gaussian": torch.randn(300, 40, generator=g),
        "many_equal": (torch.randint(-3, 4, (6000,), generator=g) * 0.5),  # 3 magnitudes, both signs
        "repeated": torch.randn(9, generator=g).repeat(500),
        "mostly_zero": sparse,
        "bf16_grid": torch.randn(20000, generator=g).to(torch.bfloat16).float() * 1e-3,
        "specials": torch.tensor([float("inf"), -1.0, 1.0, float("-inf"), 0.0, -0.0, 2.0, -2.0]),
        "with_nan": torch.tensor([1.0, float("nan"), -3.0, 0.5]),
        "bf16": torch.randn(64, 8, generator=g).to(torch.bfloat16),
        "single": torch.tensor([-0.25]),
    }
    trim.STATS.update(select=0, argsort=0)
    for name, t in tensors.items():
        rank = trim.magnitude_rank(t)
        assert int((rank < trim.NOT_KEPT).sum()) == int((t != 0).sum())  # zeros never ranked (NaN is non-zero)
        for density in (1e-4, 0.1, 0.25, 1 / 3, 0.5, 0.9, 0.999, 1.0):
            ours, ref = trim.magnitude(t, density), mk_magnitude(t, density=density)
            assert torch.equal(_bits(ours), _bits(ref)), f"{name} density={density}"
            fast_idx = trim.magnitude(t, density, fast="index")  # same count and magnitudes, maybe other ties
            assert torch.equal(_bits(fast_idx.abs().flatten().sort().values), _bits(ref.abs().flatten().sort().values))
            if density < 1:  # a sweep's path: mergekit's order once, then any density from it
                mask = rank < max(1, int(density * t.numel()))
                assert torch.equal(_bits(t * mask.reshape(t.shape)), _bits(ref)), f"{name} order density={density}"
    assert trim.STATS["select"] > 0 and trim.STATS["argsort"] > 0  # both paths exercised


def test_fast_trim_tie_cases_without_sort():
    t = torch.tensor([0.5, -0.5, 0.25, -0.75, 0.5, 0.0, 0.0, -0.0])
    trim.STATS.update(select=0, argsort=0)
    # k=4 keeps 0.75 and all three 0.5s: the tie fits entirely, so no sort is needed.
    assert torch.equal(trim.magnitude(t, 0.5), t * torch.tensor([1, 1, 0, 1, 1, 0, 0, 0.0]))
    # k=6: threshold is 0 -> which zeros are "kept" cannot change the result.
    assert torch.equal(_bits(trim.magnitude(t, 0.75)), _bits(t))
    assert trim.STATS == {"select": 2, "argsort": 0}


def test_weights_keyed_by_name_not_position(gpt2):
    base = str(gpt2["base"])
    fwd = mergekit_config("ties", base, _members(gpt2), WEIGHTS, 0.5, None)
    rev_members = dict(reversed(list(_members(gpt2).items())))
    rev = mergekit_config("ties", base, rev_members, dict(reversed(list(WEIGHTS.items()))), 0.5, None)
    assert fwd == rev
    by_path = {m["model"]: m["parameters"]["weight"] for m in fwd["models"]}
    assert by_path == {str(Path(gpt2[n]).resolve()): WEIGHTS[n] for n in NAMES}
    assert fwd["parameters"] == {"normalize": True, "int8_mask": False, "lambda": 1.0, "rescale": False}
    sds = {n: load_state_dict(gpt2[n]) for n in NAMES}
    bsd = load_state_dict(base)
    a = merge_in_memory("dare_ties", bsd, sds, WEIGHTS, 0.5, seed=3)
    b = merge_in_memory("dare_ties", bsd, dict(reversed(list(sds.items()))), WEIGHTS, 0.5, seed=3)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_yaml_beside_output_reproduces_merge(gpt2, tmp_path):
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    cfg = mergekit_config("ties", gpt2["base"], _members(gpt2), WEIGHTS, 0.5, {"lambda": 0.9})
    out = merge_to_disk(cfg, tmp_path / "soup")
    assert (out / "tokenizer.json").is_file() and (out / "config.json").is_file()
    text = (out / "mergekit_config.yml").read_text()
    assert yaml.safe_load(text) == cfg
    again = tmp_path / "again"
    run_merge(MergeConfiguration.model_validate(yaml.safe_load(text)), str(again),
              options=MergeOptions(quiet=True, write_model_card=False, copy_tokenizer=False))
    a, b = load_file(str(out / "model.safetensors")), load_file(str(again / "model.safetensors"))
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def test_apply_state_dict_in_place(gpt2):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(gpt2["base"])
    sd = merge_in_memory("ties", load_state_dict(gpt2["base"]), {n: load_state_dict(gpt2[n]) for n in NAMES},
                         WEIGHTS, 0.5)
    ptr = model.score.weight.data_ptr()
    apply_state_dict(model, sd)
    assert model.score.weight.data_ptr() == ptr
    assert all(torch.equal(model.state_dict()[k], v) for k, v in sd.items())
    with pytest.raises(ModelError, match="score.weight"):
        apply_state_dict(model, {k: v for k, v in sd.items() if k != "score.weight"})


def test_registry_shape():
    assert METHODS["slerp"].min_members == METHODS["slerp"].max_members == 2
    assert METHODS["ties"].uses_base and not METHODS["linear"].uses_base
    assert "density" in METHODS["dare_ties"].member_params and "density" not in METHODS["linear"].member_params
    cut = mergekit_config("passthrough", None, {"alpha": "/m/alpha"}, params={"layer_range": [0, 1]})
    assert cut["slices"] == [{"sources": [{"model": "/m/alpha", "layer_range": [0, 1]}]}]


def test_methods_are_read_from_mergekits_registry(monkeypatch):
    from mergekit.merge_methods import get
    from mergekit.merge_methods.registry import _METHODS as registered

    assert set(registered) == set(METHODS)  # every method mergekit 0.1.5 registers is wired
    for name, spec in METHODS.items():
        params = {p.name: p.default for p in get(name).spec.parameters}
        shared = {n for n, p in ((p.name, p) for p in get(name).spec.parameters) if p.scope.value == "shared"}
        assert {k: params[k] for k in spec.defaults} == dict(spec.defaults), name
        assert shared <= set(spec.global_params), name
    assert METHODS["model_stock"].min_members == 2  # mergekit's 3 inputs include the base
    assert "density" not in METHODS["task_arithmetic"].member_params  # mergekit would ignore it
    assert METHODS["della"].global_params["epsilon"] is float  # a per-member knob, one value for all members
    assert METHODS["nuslerp"].uses_base and not METHODS["nearswap"].uses_base  # task vectors / a member as base
    monkeypatch.delitem(METHODS, "della")
    with pytest.raises(ConfigError, match="'della' is in mergekit's registry but not wired"):
        mergekit_config("della", "/m/base", {"alpha": "/m/alpha"})


# ---------------------------------------------------------------- preflight errors, one by one
def _variant(gpt2, tmp_path, name: str, edit) -> dict[str, str]:
    """Members where `name` is replaced by an edited copy of its folder."""
    folder = tmp_path / f"{name}-edited"
    shutil.copytree(gpt2[name], folder)
    edit(folder)
    return _members(gpt2) | {name: str(folder)}


def _set_arch(folder: Path):
    cfg = json.loads((folder / "config.json").read_text())
    cfg["architectures"] = ["GPT2LMHeadModel"]
    (folder / "config.json").write_text(json.dumps(cfg))


def _drop_tensor(folder: Path):
    sd = load_file(str(folder / "model.safetensors"))
    del sd["transformer.ln_f.bias"]
    save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt"})


def _two_labels(folder: Path):
    from transformers import GPT2ForSequenceClassification

    shutil.rmtree(folder)
    GPT2ForSequenceClassification(_gpt2_config(num_labels=2)).save_pretrained(folder)


def _other_vocab(folder: Path):
    for f in folder.glob("tokenizer*"):
        f.unlink()
    _save_tokenizer(folder, size=51)


@pytest.mark.parametrize("edit,who,needles", [
    (_set_arch, "bravo", ["member 'bravo'", "architectures", "GPT2LMHeadModel"]),
    (_drop_tensor, "bravo", ["member 'bravo'", "transformer.ln_f.bias"]),
    (_two_labels, "charlie", ["member 'charlie'", "score.weight", "[2, 32]", "[1, 32]"]),
    (_other_vocab, "alpha", ["member 'alpha'", "tokenizer", "51", "50"]),
])
def test_preflight_checkpoint_errors(gpt2, tmp_path, edit, who, needles):
    members = _variant(gpt2, tmp_path, who, edit)
    with pytest.raises(ModelError) as err:
        preflight("ties", str(gpt2["base"]), members, WEIGHTS, 0.5, None)
    for needle in needles:
        assert needle in str(err.value), str(err.value)


def test_preflight_missing_member_path(gpt2, tmp_path):
    members = _members(gpt2) | {"bravo": str(tmp_path / "nowhere")}
    with pytest.raises(ModelError, match=r"member 'bravo'.*nowhere.*does not exist"):
        preflight("ties", str(gpt2["base"]), members, WEIGHTS, None, None)


@pytest.mark.parametrize("method,weights,density,params,needles", [
    ("ties", WEIGHTS | {"bravo": float("nan")}, None, None, ["weight for member 'bravo'", "nan"]),
    ("ties", WEIGHTS | {"alpha": float("inf")}, None, None, ["weight for member 'alpha'", "inf"]),
    ("ties", dict.fromkeys(NAMES, 0.0), None, None, ["all member weights are zero"]),
    ("ties", WEIGHTS, 0.0, None, ["density for member 'alpha'", "(0, 1]"]),
    ("ties", WEIGHTS, 1.5, None, ["density for member 'alpha'", "1.5"]),
    ("dare_ties", WEIGHTS, {"alpha": 0.5, "bravo": 0.0, "charlie": 0.5}, None, ["density for member 'bravo'"]),
    ("ties", WEIGHTS | {"zulu": 1.0}, None, None, ["unknown member 'zulu'", "alpha, bravo, charlie"]),
    ("ties", {"alpha": 1.0, "bravo": 1.0}, None, None, ["member 'charlie' has no weight"]),
    ("ties", [1.0, 0.5, 0.75], None, None, ["weight must map member names"]),
    ("slerp", None, None, {"t": 0.5}, ["'slerp'", "exactly 2", "got 3"]),
    ("ties", WEIGHTS, None, {"lamda": 0.5}, ["unknown parameter 'lamda'", "lambda"]),
    ("ties", WEIGHTS, None, {"normalize": "yes"}, ["parameter 'normalize'", "bool"]),
    ("linear", WEIGHTS, 0.5, None, ["'linear' takes no density"]),
    ("model_stock", WEIGHTS, None, None, ["'model_stock' takes no per-member weights"]),
    ("bogus", WEIGHTS, None, None, ["unknown merge method 'bogus'"]),
    ("nuslerp", WEIGHTS, None, None, ["'nuslerp'", "exactly 2", "got 3"]),
    ("arcee_fusion", None, None, None, ["'arcee_fusion'", "exactly 2", "got 3"]),
    ("sce", WEIGHTS, None, None, ["'sce' takes no per-member weights"]),
    ("della", WEIGHTS, 0.5, {"gamma": 0.1}, ["unknown parameter 'gamma'", "epsilon"]),
    ("karcher", None, None, {"max_iter": "ten"}, ["parameter 'max_iter'", "int"]),
])
def test_preflight_request_errors(gpt2, method, weights, density, params, needles):
    with pytest.raises(ConfigError) as err:
        preflight(method, str(gpt2["base"]), _members(gpt2), weights, density, params)
    for needle in needles:
        assert needle in str(err.value), str(err.value)


def test_slerp_missing_required_parameter(gpt2):
    with pytest.raises(ConfigError, match="requires parameter 't'"):
        preflight("slerp", None, _members(gpt2, NAMES[:2]), None, None, {})
    cfg = mergekit_config("slerp", None, _members(gpt2, NAMES[:2]), params={"t": 0.25, "base_member": "bravo"})
    assert cfg["base_model"] == str(Path(gpt2["bravo"]).resolve()) and cfg["parameters"] == {"t": 0.25}


# ---------------------------------------------------------------- atomic output
def _leftovers(out: Path) -> list[str]:
    return [p.name for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


def test_failing_merge_leaves_nothing_behind(gpt2, tmp_path):
    bad = _variant(gpt2, tmp_path, "charlie", _two_labels)  # passes mergekit_config, fails inside mergekit
    cfg = mergekit_config("ties", gpt2["base"], bad, WEIGHTS, None, None)
    out = tmp_path / "soups" / "broken"
    with pytest.raises(ModelError, match="score.weight"):
        merge_to_disk(cfg, out)
    assert not out.exists() and _leftovers(out) == []


def test_existing_output_needs_overwrite(gpt2, tmp_path):
    cfg = mergekit_config("linear", None, _members(gpt2), WEIGHTS)
    out = merge_to_disk(cfg, tmp_path / "soup", copy_tokenizer=False)
    with pytest.raises(ConfigError, match="already exists"):
        merge_to_disk(cfg, out)
    (out / "stale.txt").write_text("old")
    merge_to_disk(cfg, out, overwrite=True, copy_tokenizer=False)
    assert not (out / "stale.txt").exists() and (out / "model.safetensors").is_file()
    assert _leftovers(out) == []
