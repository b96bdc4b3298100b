"""Hugging Face model cards (README.md) for member and soup folders, and an optional upload to the hub.

- `member_card(meta)`: the card of a trained member, from its `rewardsoup_member.json`;
- `soup_card(...)`: the card of a soup: its members, weights and method, the exact mergekit YAML, the test
  table built from the evaluation's JSON (`rows` of `reports/evaluate-<split>/results.json`, or what
  `evaluate_models` returns) and the sweep that chose it;
- `write_card` / `write_member_card` / `write_soup_card`: `<folder>/README.md`, written atomically;
- `push_folder`: `create_repo(exist_ok=True)` + `upload_folder`; fails at once with one `HubError` line
  naming the repo when the hub is unreachable (HF_HUB_OFFLINE set, or no network).

Every card opens with the hub's model-card metadata, built with huggingface_hub's `ModelCardData` (base_model,
library_name, tags, datasets, pipeline_tag), so the hub files the model under the right filters; the accuracies
the card knows (a member's val accuracy, a soup's own row of the test table) are its `model-index`
(`EvalResult`s), so the hub shows them. The body shows how to load the model with `transformers.pipeline`.
"""

from __future__ import annotations

import json
import math
import numbers
from pathlib import Path
from typing import Any, Mapping

from huggingface_hub import EvalResult, ModelCardData

from rewardsoup.core.atomic import atomic_write_text
from rewardsoup.core.errors import RewardSoupError
from rewardsoup.core.hub import hub_offline, hub_reachable, is_local
from rewardsoup.models.adapters import describe_lora
from rewardsoup.models.assets import EMBEDDED_SMOLLM2
from rewardsoup.models.base import BASE_META, MEMBER_META

CARD = "README.md"
SOUP_CONFIG = "mergekit_config.yml"  # = rewardsoup.merging.on_disk.SOUP_CONFIG (models may not import merging)
HUB_SOURCES = {f"embedded:{EMBEDDED_SMOLLM2}": "HuggingFaceTB/SmolLM2-135M-Instruct"}  # spec -> hub original
MEMBER_TAGS = ["reward-model", "rewardsoup"]
SOUP_TAGS = ["reward-model", "merge", "mergekit", "rewardsoup"]


class HubError(RewardSoupError):
    """An upload to the Hugging Face hub failed, or the hub cannot be reached."""


def base_model(base_meta: Mapping[str, Any] | None, base_dir: str | Path | None) -> str:
    """The hub name of the model the base was cut from when there is one, else the base folder."""
    source = str((base_meta or {}).get("source") or "")
    if source in HUB_SOURCES:
        return HUB_SOURCES[source]
    if source and ":" not in source and not is_local(source):
        return source  # a hub name such as gpt2 or owner/name
    return str(base_dir) if base_dir else source


def dataset_ids(data_cfgs: list[Mapping[str, Any]]) -> list[str]:
    """Hub dataset names (source `owner/name`) where the data came from the hub, else the data set's name."""
    out: list[str] = []
    for d in data_cfgs:
        source = str(d.get("source") or "")
        name = source if "/" in source and not is_local(source) else str(d.get("name") or source)
        if name and name not in out:
            out.append(name)
    return out


def _accuracy(value: Any) -> float | None:
    """A finite accuracy as a plain float (no numpy scalar in the YAML), else None (missing, NaN)."""
    return float(value) if isinstance(value, numbers.Real) and math.isfinite(value) else None


def eval_results(accuracies: Mapping[str, Any], split: str, data_cfgs: list[Mapping[str, Any]]) -> list[EvalResult]:
    """`model-index` entries: one accuracy per dataset name on `split` ("validation" or "test"), NaN and missing
    values left out; a dataset's type is its hub name where `data_cfgs` (a mix's parts too) say it came from the hub."""
    cfgs = {str(k): {"name": k, **v} for d in data_cfgs for k, v in (d.get("parts") or {}).items()}
    cfgs.update({str(d.get("name")): d for d in data_cfgs})
    return [EvalResult(task_type="text-classification", dataset_type=dataset_ids([cfgs.get(ds) or {"name": ds}])[0],
                       dataset_name=str(ds), dataset_split=split, metric_type="accuracy", metric_value=_accuracy(v),
                       metric_name=f"{split} accuracy") for ds, v in accuracies.items() if _accuracy(v) is not None]


def card_text(body: str, *, base: str, tags: list[str], datasets: list[str], name: str,
              results: list[EvalResult]) -> str:
    """The card: the YAML header from huggingface_hub's `ModelCardData` (results as `model-index`), then `body`."""
    data = ModelCardData(base_model=base, library_name="transformers", tags=list(tags), datasets=list(datasets),
                         pipeline_tag="text-classification", model_name=name if results else None,
                         eval_results=results or None)
    return f"---\n{data.to_yaml()}\n---\n\n{body}"


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


def _origin(base_meta: Mapping[str, Any] | None) -> str:
    meta = base_meta or {}
    if not meta.get("source"):
        return "origin not recorded"
    return (f"`{meta['source']}` cut to layers {_fmt(meta.get('layer_range'))} in {meta.get('dtype')}, "
            f"with a one-logit score head")


def _rendering(data_cfgs: list[Mapping[str, Any]]) -> str:
    styles = {str(d.get("render_style") or "plain") for d in data_cfgs} or {"plain"}
    if styles == {"plain"}:
        return "`rewardsoup.data.render`, plain style: `\\n\\nHuman: ...\\n\\nAssistant: ...`"
    return (f"`rewardsoup.data.render`, style {' / '.join(sorted(styles))}; "
            f"chat_template = the tokenizer's chat template")


def _usage(load_from: str, pairwise: bool, max_length: int | None, data_cfgs: list[Mapping[str, Any]]) -> list[str]:
    """What the single logit means and how to load the folder (or hub repo) with transformers."""
    meaning = ("Only differences are meaningful: compare replies to the same prompt; "
               "sigmoid(score_a - score_b) is the probability that a person prefers reply a (Bradley-Terry)."
               if pairwise else "sigmoid(score) is the probability that a person gives the reply a thumbs-up.")
    cut = (f" rewardsoup keeps the LAST {max_length} tokens of a longer text (left truncation, the reply is "
           f"what is judged); the pipeline does not truncate, so cut long texts the same way first."
           if max_length else "")
    return ["## What it scores", "",
            "One scalar logit per text (a sequence classifier with `num_labels=1`): the higher, the more a "
            f"person would like the reply. {meaning}", "",
            "The input is the whole conversation rendered as one string, reply last, the way the training data "
            f"was rendered ({_rendering(data_cfgs)}).{cut}", "",
            "## How to use", "", "```python", "from transformers import pipeline", "",
            f'pipe = pipeline("text-classification", model="{load_from}", function_to_apply="none")',
            'score = pipe(text)[0]["score"]  # the raw logit', "```", ""]


def _training_lines(meta: Mapping[str, Any]) -> list[str]:
    data, objective = meta.get("data") or {}, meta.get("objective") or {}
    sizes, tok = meta.get("split_sizes") or {}, meta.get("tokenization") or {}
    opt = meta.get("optimizer") or {}
    settings = ", ".join(f"{k}={_fmt(v)}" for k, v in objective.items() if k != "name") or "defaults"
    return ["## Training", "",
            f"- data: `{data.get('name')}` (adapter `{data.get('adapter')}`, source `{data.get('source')}`)",
            f"- objective: `{objective.get('name')}` ({settings})",
            "- split sizes: " + ", ".join(f"{s} {sizes[s]}" for s in ("train", "val", "test") if s in sizes),
            f"- truncation: {tok.get('left_truncated', 0)} of {tok.get('texts', '?')} train texts left-truncated "
            f"to {meta.get('max_length')} tokens (none dropped)",
            f"- {meta.get('steps')} optimizer steps, " + ", ".join(f"{k} {_fmt(v)}" for k, v in opt.items()),
            f"- train loss {_fmt(meta.get('train_loss'))}, {_fmt(meta.get('train_wall_s'))} s wall",
            *([describe_lora(meta["lora"])] if meta.get("lora") else []), ""]



def member_card(meta: Mapping[str, Any], *, load_from: str | None = None) -> str:
    """README.md of a member folder from its `rewardsoup_member.json` content (training.member._metadata)."""
    base_meta = meta.get("base_meta") or {}
    base = base_model(base_meta, meta.get("base"))
    objective = str((meta.get("objective") or {}).get("name"))
    data = meta.get("data") or {}
    where = load_from or str((meta.get("train") or {}).get("output_dir") or meta.get("name"))
    val = meta.get("val") or {}
    lines = [f"# {meta.get('name')}", "",
             f"A rewardsoup reward-model member: `{objective}` objective on `{data.get('name')}`, fine-tuned from "
             f"the merge-ready base `{meta.get('base')}` ({_origin(base_meta)}).", "",
             *_usage(where, objective == "pairwise", meta.get("max_length"), [data]), *_training_lines(meta),
             "## Validation", "",
             f"- val accuracy: {_fmt_acc(val.get('accuracy'))} (n={val.get('n')})",
             *[f"- {k}: {_fmt(v)}" for k, v in val.items() if k not in ("accuracy", "n")]]
    history = meta.get("val_history") or []
    if history:
        lines += ["", "| epoch | step | accuracy | n |", "|---|---|---|---|"]
        lines += [f"| {h.get('epoch')} | {h.get('step')} | {_fmt_acc(h.get('accuracy'))} | {h.get('n')} |"
                  for h in history]
    parts = data.get("parts") or {}  # a mix: each part's val accuracy (the mix's mean is no one dataset's)
    accuracies = {p: val.get(f"{p}/accuracy") for p in parts} or {str(data.get("name")): val.get("accuracy")}
    results = eval_results(accuracies, "validation", [data])
    return card_text("\n".join(lines) + "\n", base=base, tags=MEMBER_TAGS, datasets=dataset_ids([data]),
                     name=str(meta.get("name")), results=results)


def _fmt_acc(x: Any) -> str:
    return "–" if _accuracy(x) is None else f"{float(x):.4f}"


def _member_rows(request: Mapping[str, Any]) -> list[str]:
    weights, density = request.get("weights") or {}, request.get("density")
    rows = ["| member | folder | weight | density |", "|---|---|---|---|"]
    for name, folder in (request.get("members") or {}).items():
        d = density.get(name) if isinstance(density, Mapping) else density
        rows.append(f"| {name} | `{folder}` | {_fmt(weights.get(name, '–'))} | {'–' if d is None else _fmt(d)} |")
    return rows


def _member_metas(request: Mapping[str, Any]) -> dict[str, dict]:
    """Each member folder's `rewardsoup_member.json` where it exists."""
    out = {}
    for name, folder in (request.get("members") or {}).items():
        path = Path(str(folder)) / MEMBER_META
        if path.exists():
            out[name] = json.loads(path.read_text())
    return out


def eval_rows(evaluation: Mapping[str, Any] | list | None) -> list[dict]:
    """The table rows of an evaluation: results.json's / evaluate_models' `rows`, or the rows themselves."""
    if evaluation is None:
        return []
    return list(evaluation if isinstance(evaluation, list) else evaluation.get("rows") or [])


def eval_datasets(evaluation: Mapping[str, Any] | list | None) -> list[str]:
    """The datasets of an evaluation: its `datasets` when given, else the row keys that carry an accuracy
    with `_lo`, `_hi` and `_n` (evaluation.tables.rows' layout), in row order."""
    if isinstance(evaluation, Mapping) and evaluation.get("datasets"):
        return [str(d) for d in evaluation["datasets"]]
    rows = eval_rows(evaluation)
    found: list[str] = []
    for key in rows[0] if rows else []:
        if key in ("model", "kind", "mean") or any(key.startswith(d + "_") for d in found):
            continue
        if all(f"{key}_{s}" in rows[0] for s in ("lo", "hi", "n")):
            found.append(key)
    return found


def _acc_cell(r: Mapping[str, Any], ds: str) -> str:
    acc = r.get(ds)
    if acc is None or (isinstance(acc, float) and math.isnan(acc)):
        return "–"
    return f"{acc:.3f} [{r[f'{ds}_lo']:.3f}, {r[f'{ds}_hi']:.3f}] n={r[f'{ds}_n']}"


def results_table(evaluation: Mapping[str, Any] | list, highlight: str | None = None) -> str:
    """Markdown from the evaluation's rows: one row per model, `acc [lo, hi] n=N` per dataset, the mean;
    then each soup's / baseline's paired difference from the best member with the recipe's bar."""
    rows, datasets = eval_rows(evaluation), eval_datasets(evaluation)
    if not rows:
        return "No test evaluation was given for this soup.\n"
    table = ["| model | kind | " + " | ".join(datasets) + " | mean |", "|" + "---|" * (len(datasets) + 3)]
    for r in rows:
        kind = f"{r.get('kind')} (this model)" if r["model"] == highlight else str(r.get("kind"))
        mean = r.get("mean")
        table.append(f"| {r['model']} | {kind} | " + " | ".join(_acc_cell(r, ds) for ds in datasets)
                     + f" | {'–' if mean is None or math.isnan(mean) else f'{mean:.3f}'} |")
    lines = ["Accuracy [bootstrap 95% interval] on n held-out rows (ties earn half credit).", "", *table]
    diffs = [r for r in rows if any(f"{ds}_vs_best_member" in r for ds in datasets)]
    if diffs:
        lines += ["", "Against the best member on each dataset (points, paired 95% interval on the same rows) "
                      "and the recipe's bar (at most 2 points below each specialist):", "",
                  "| model | " + " | ".join(datasets) + " |", "|" + "---|" * (len(datasets) + 1)]
        lines += ["| " + r["model"] + " | " + " | ".join(_diff_cell(r, ds) for ds in datasets) + " |" for r in diffs]
    found = [v for v in (evaluation.get("verdicts") or [] if isinstance(evaluation, Mapping) else [])
             if highlight is not None and v["model"] == highlight]
    if found:
        lines += ["", "This model against the alternatives (points, paired 95% interval on the same rows):", "",
                  "| against | dataset | difference | verdict |", "|---|---|---|---|"]
        lines += [f"| {v['against']} | {v['dataset']} | {100 * v['diff']:+.1f} [{100 * v['lo']:+.1f}, "
                  f"{100 * v['hi']:+.1f}] | {v['verdict']} |" for v in found]
    return "\n".join(lines) + "\n"


def _diff_cell(r: Mapping[str, Any], ds: str) -> str:
    key = f"{ds}_vs_best_member"
    if key not in r:
        return "–"
    pts = lambda x: f"{100 * x:+.1f}"  # noqa: E731
    return (f"{pts(r[key])} [{pts(r[key + '_lo'])}, {pts(r[key + '_hi'])}] vs {r.get(f'{ds}_best_member')}: "
            f"{r.get(f'{ds}_bar')}")


def _bullets(obj: Mapping[str, Any], depth: int = 0) -> list[str]:
    """A nested mapping as a markdown bullet list; small flat mappings stay on one line."""
    lines, pad = [], "  " * depth
    for key, value in obj.items():
        if isinstance(value, Mapping) and value:
            if len(value) <= 6 and not any(isinstance(v, (Mapping, list)) for v in value.values()):
                lines.append(f"{pad}- {key}: " + ", ".join(f"{k} {_fmt(v)}" for k, v in value.items()))
            else:
                lines += [f"{pad}- {key}:", *_bullets(value, depth + 1)]
        else:
            lines.append(f"{pad}- {key}: {_fmt(value)}")
    return lines


def soup_card(*, name: str, request: Mapping[str, Any], merge_yaml: str, evaluation: Mapping[str, Any] | None,
              sweep: Mapping[str, Any] | None, base_meta: Mapping[str, Any] | None,
              load_from: str | None = None) -> str:
    """README.md of a soup folder: hub metadata, what it scores, how to load it, members and weights,
    the mergekit YAML, the test table (from the evaluation's JSON) and the sweep that chose it."""
    if base_meta is None and (Path(str(request.get("base"))) / BASE_META).exists():
        base_meta = json.loads((Path(str(request["base"])) / BASE_META).read_text())
    base = base_model(base_meta, request.get("base"))
    metas = _member_metas(request)
    data_cfgs = [m.get("data") or {} for m in metas.values()]
    objectives = {str((m.get("objective") or {}).get("name")) for m in metas.values()}
    max_length = max((int(m["max_length"]) for m in metas.values() if m.get("max_length")), default=None)
    params = ", ".join(f"{k}={_fmt(v)}" for k, v in (request.get("params") or {}).items()) or "none"
    lines = [f"# {name}", "",
             f"A rewardsoup reward-model soup: {len(request.get('members') or {})} members fine-tuned from one "
             f"merge-ready base `{request.get('base')}` ({_origin(base_meta)}), merged with mergekit "
             f"`{request.get('method')}`.", "",
             *_usage(load_from or name, "pairwise" in objectives or not objectives, max_length, data_cfgs),
             "## Members", "", *_member_rows(request), "",
             f"method `{request.get('method')}`, parameters {params}, dtype {request.get('dtype')}, "
             f"seed {request.get('seed')}; the density applies to TIES/DARE-style methods only.", "",
             "## Mergekit configuration", "",
             f"`mergekit-yaml {SOUP_CONFIG} OUT` rebuilds the weights:", "",
             "```yaml", merge_yaml.rstrip("\n"), "```", "",
             "## Test results", "", results_table(evaluation or [], highlight=name).rstrip("\n"), "",
             "## The sweep that chose it", ""]
    layerwise = (sweep or {}).get("layerwise")
    lines += _bullets({k: v for k, v in sweep.items() if k != "layerwise"}) if sweep else [
        "Not chosen by a sweep: the weights above were set by hand."]
    if layerwise:  # search=layerwise: one TIES weight per (member, layer group), learned on val
        groups = layerwise["groups"]
        lines += ["", "## Per-layer coefficients", "", "![per-layer coefficients](layer_coefficients.png)", "",
                  "| member | " + " | ".join(groups) + " |", "|---|" + "---|" * len(groups)]
        lines += [f"| {n} | " + " | ".join(f"{c:.3f}" for c in row) + " |"
                  for n, row in zip(layerwise["members"], layerwise["coefficients"])]
    return card_text("\n".join(lines) + "\n", base=base, tags=SOUP_TAGS, name=name,
                     datasets=dataset_ids(data_cfgs) or eval_datasets(evaluation),
                     results=_soup_results(name, evaluation, data_cfgs))


def _soup_results(name: str, evaluation, data_cfgs: list[Mapping[str, Any]]) -> list[EvalResult]:
    """The soup's own row of the evaluation (model == name) as `model-index` entries on the evaluated split."""
    mine = [r for r in eval_rows(evaluation) if r.get("model") == name][:1]
    split = str(evaluation.get("split") or "test") if isinstance(evaluation, Mapping) else "test"
    accuracies = {ds: r.get(ds) for r in mine for ds in eval_datasets(evaluation)}
    return eval_results(accuracies, {"val": "validation"}.get(split, split), data_cfgs)


def write_card(folder: str | Path, text: str) -> Path:
    """`<folder>/README.md`, written atomically (temporary file + rename)."""
    return atomic_write_text(Path(folder) / CARD, text)


def write_member_card(folder: str | Path, meta: Mapping[str, Any] | None = None, *,
                      load_from: str | None = None) -> Path:
    """The member card of `folder` (its `rewardsoup_member.json` unless `meta` is given)."""
    folder = Path(folder)
    meta = meta if meta is not None else json.loads((folder / MEMBER_META).read_text())
    return write_card(folder, member_card(meta, load_from=load_from))


def write_soup_card(folder: str | Path, request: Mapping[str, Any], *, name: str | None = None,
                    evaluation: Mapping[str, Any] | None = None, sweep: Mapping[str, Any] | None = None,
                    load_from: str | None = None) -> Path:
    """The soup card of `folder`, with the mergekit YAML written beside its weights."""
    folder = Path(folder)
    text = soup_card(name=name or folder.name, request=request, merge_yaml=(folder / SOUP_CONFIG).read_text(),
                     evaluation=evaluation, sweep=sweep, base_meta=None, load_from=load_from or str(folder))
    return write_card(folder, text)


def _unreachable(folder: Path, repo_id: str, why: str) -> HubError:
    return HubError(f"cannot upload {folder} to hub repo '{repo_id}': the Hugging Face hub is unreachable "
                    f"from this machine ({why}); the folder is complete on disk, upload it later with "
                    f"`hf upload {repo_id} {folder}`")


def _client_errors() -> tuple[type[BaseException], ...]:
    """The HTTP client errors huggingface_hub may let through (it uses httpx2 in 2.x, httpx before)."""
    import importlib

    found = []
    for module in ("httpx2", "httpx"):
        try:
            found.append(importlib.import_module(module).HTTPError)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def check_upload(repo_id: str, folder: str | Path = "the picked soup") -> None:
    """Fail now (before a pick spends minutes exporting and testing) when an upload to `repo_id` cannot work."""
    if hub_offline():
        raise _unreachable(Path(folder), repo_id, "HF_HUB_OFFLINE is set")
    if not hub_reachable():
        raise _unreachable(Path(folder), repo_id, "no connection to the hub's endpoint")


def push_folder(folder: str | Path, repo_id: str, token: str | None = None, private: bool | None = None) -> str:
    """Upload `folder` to the hub model repo `repo_id` (created when missing); returns the repo's URL.

    Fails at once with one HubError line naming the repo when HF_HUB_OFFLINE is set or the hub's endpoint
    does not answer a TCP connect within seconds; hub and network errors also become one HubError line."""
    folder = Path(folder)
    if not (folder / "config.json").exists():
        raise HubError(f"cannot upload {folder} to hub repo '{repo_id}': it is not a model folder (no config.json)")
    check_upload(repo_id, folder)
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled

    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, repo_type="model", exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                          commit_message=f"rewardsoup: upload {folder.name}")
    except OfflineModeIsEnabled as exc:
        raise _unreachable(folder, repo_id, "offline mode") from exc
    except (HfHubHTTPError, HFValidationError, OSError, *_client_errors()) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise HubError(f"upload of {folder} to hub repo '{repo_id}' failed: {first}") from exc
    return str(url)
