"""Adapters: turn raw source rows into one of the canonical schemas (see `rewardsoup.data.schema`).

`ADAPTERS` is the explicit registry: name -> ``function(raw, data_cfg, tokenizer) -> (schema, Dataset)``,
or ``(schema, Dataset, report)`` when the adapter has counts to add to the data report (``reward_bench``:
how many rows its k-chosen expansion added). ``raw`` is the Dataset read from ``data_cfg["source"]``
(None for ``demo``, which builds its own rows); ``data_cfg`` is a plain dict. Every adapter reads its
source columns through the optional ``columns`` map (canonical or default field -> source column), so
renamed columns need no new code.

Source errors name the source, the 0-based row and the field: a missing column lists the columns present.
"""

from __future__ import annotations

import importlib
import os
from typing import Any, Callable

from datasets import Dataset

from rewardsoup.data.render import render_conversation, render_prompt_and_reply
from rewardsoup.data.schema import (
    BINARY,
    FEATURES,
    MULTI,
    PAIRWISE,
    rows_dataset,
    validate_binary,
    validate_multi,
    validate_pairwise,
)
from rewardsoup.core.errors import ConfigError, DataError

HH_MARKER = "\n\nAssistant:"
DEMO_SETS = {"thumbs": BINARY, "harmless": PAIRWISE}

Adapter = Callable[[Any, dict, Any], "tuple[str, Dataset] | tuple[str, Dataset, dict]"]


def _source(cfg: dict) -> str:
    return str(cfg.get("source"))


def _column(raw: Dataset, cfg: dict, field: str, default: str | None = None, required: bool = True) -> list | None:
    """Values of the source column mapped to ``field`` (via ``columns``; default ``default`` or ``field``).

    A required column that is missing is a DataError listing the columns present; an optional one that is
    missing (and not named explicitly in ``columns``) gives None.
    """
    columns = cfg.get("columns") or {}
    name = columns.get(field, default or field)
    if name not in raw.column_names:
        if required or field in columns:
            raise DataError(
                f"{_source(cfg)}: missing column {name!r} (for field {field!r}); "
                f"columns present: {raw.column_names}"
            )
        return None
    return list(raw[name])


def _build(schema: str, rows: list[dict[str, Any]], cfg: dict) -> tuple[str, Dataset, dict]:
    """Validated rows in ``schema``; a pair whose two sides are the same text teaches nothing: dropped and
    counted (report ``identical_pairs``); a source where every pair is such is a DataError naming it."""
    check = validate_pairwise if schema == PAIRWISE else validate_binary
    clean = [check(row, _source(cfg), i) for i, row in enumerate(rows)]
    report: dict[str, Any] = {}
    if schema == PAIRWISE:
        kept = [row for row in clean if row["chosen"] != row["rejected"]]
        if clean and not kept:
            raise DataError(f"{_source(cfg)}: every pair has chosen == rejected ({len(clean)} of {len(clean)} "
                            f"dropped as identical); a pair needs two different replies")
        report["identical_pairs"] = len(clean) - len(kept)
        clean = kept
    return schema, rows_dataset(clean, FEATURES[schema]), report


def _style(cfg: dict) -> str:
    return cfg.get("render_style") or "plain"


def split_hh_pair(chosen: str, rejected: str) -> tuple[str, str, str]:
    """Split two hh-rlhf transcripts into (prompt, chosen_reply, rejected_reply).

    The prompt is their shared prefix up to and including the last shared ``"\\n\\nAssistant:"`` marker,
    so ``prompt + chosen_reply == chosen`` exactly. If a reply would be empty (transcript ending at the
    marker), the marker moves into the replies; with no shared marker the prompt is "".
    """
    common = os.path.commonprefix([chosen, rejected])
    cut = common.rfind(HH_MARKER)
    end = cut + len(HH_MARKER) if cut >= 0 else 0
    if end and (end == len(chosen) or end == len(rejected)):
        end = cut
    return chosen[:end], chosen[end:], rejected[end:]


def hh_rlhf(raw: Dataset, cfg: dict, tokenizer: Any = None) -> tuple[str, Dataset]:
    """Anthropic hh-rlhf: ``{chosen, rejected}`` whole transcripts -> pairwise rows sharing one prompt."""
    rows = []
    for i, (chosen, rejected) in enumerate(zip(_column(raw, cfg, "chosen"), _column(raw, cfg, "rejected"))):
        for field, value in (("chosen", chosen), ("rejected", rejected)):
            if not isinstance(value, str) or not value:
                raise DataError(f"{_source(cfg)}, row {i} (0-based), field '{field}': expected a non-empty transcript")
        prompt, reply_c, reply_r = split_hh_pair(chosen, rejected)
        rows.append({"prompt": prompt, "chosen": reply_c, "rejected": reply_r})
    return _build(PAIRWISE, rows, cfg)


def chai_thumbs(raw: Dataset, cfg: dict, tokenizer: Any = None) -> tuple[str, Dataset]:
    """ChaiML/20231012_chai_prize_reward_model_data: ``input_text`` + int ``labels`` -> binary rows."""
    texts = _column(raw, cfg, "text", "input_text")
    labels = _column(raw, cfg, "label", "labels")
    groups = _column(raw, cfg, "group", required=False) or [None] * len(texts)
    return _build(BINARY, [{"text": t, "label": y, "group": g} for t, y, g in zip(texts, labels, groups)], cfg)


def _group_column(cfg: dict, default: str) -> str:
    """Source column for ``group``: ``columns.group``, else ``pairs.group_key`` when it is not "group"."""
    columns = cfg.get("columns") or {}
    key = (cfg.get("pairs") or {}).get("group_key")
    return columns.get("group") or (key if key and key != "group" else default)


def chai_feedback(raw: Dataset, cfg: dict, tokenizer: Any = None) -> tuple[str, Dataset]:
    """ChaiML/20231007_chai_prize_model_feedback_all: ``conversation`` + bool ``thumbs_up`` -> binary rows,
    grouped by ``bot_id`` (or the column named by ``columns.group`` / ``pairs.group_key``)."""
    texts = _column(raw, cfg, "text", "conversation")
    labels = _column(raw, cfg, "label", "thumbs_up")
    groups = _column(raw, cfg, "group", _group_column(cfg, "bot_id"))
    return _build(BINARY, [{"text": t, "label": y, "group": g} for t, y, g in zip(texts, labels, groups)], cfg)


def chai_pairs(raw: Dataset, cfg: dict, tokenizer: Any = None) -> tuple[str, Dataset]:
    """chargoddard/chai-feedback-pairs: ``chosen`` / ``rejected`` whole conversations -> pairwise, prompt ""."""
    chosen = _column(raw, cfg, "chosen")
    rejected = _column(raw, cfg, "rejected")
    return _build(PAIRWISE, [{"prompt": "", "chosen": c, "rejected": r} for c, r in zip(chosen, rejected)], cfg)


def _messages(value: Any, cfg: dict, index: int, field: str) -> list:
    if not isinstance(value, list):
        raise DataError(
            f"{_source(cfg)}, row {index} (0-based), field '{field}': expected a list of messages, got {value!r:.80}"
        )
    return value


def _render(messages: list, cfg: dict, tokenizer: Any, index: int, field: str) -> str:
    try:
        return render_conversation(messages, _style(cfg), tokenizer)
    except DataError as err:
        raise DataError(f"{_source(cfg)}, row {index} (0-based), field '{field}': {err}") from None


def messages_label(raw: Dataset, cfg: dict, tokenizer: Any = None) -> tuple[str, Dataset]:
    """KTO style: ``messages`` [{role, content}] + bool ``label`` -> binary rows of rendered conversations."""
    messages = _column(raw, cfg, "messages")
    labels = _column(raw, cfg, "label")
    groups = _column(raw, cfg, "group", required=False) or [None] * len(labels)
    rows = [
        {"text": _render(_messages(m, cfg, i, "messages"), cfg, tokenizer, i, "messages"), "label": y, "group": g}
        for i, (m, y, g) in enumerate(zip(messages, labels, groups))
    ]
    return _build(BINARY, rows, cfg)


def sharegpt_pairs(raw: Dataset, cfg: dict, tokenizer: Any = None) -> tuple[str, Dataset]:
    """DPO sharegpt style: ``conversations`` [{from, value}] + ``chosen`` / ``rejected`` {from, value} ->
    pairwise rows with the rendered conversation as prompt and the rendered replies."""
    rows = []
    convs = _column(raw, cfg, "conversations")
    for i, (conv, chosen, rejected) in enumerate(zip(convs, _column(raw, cfg, "chosen"), _column(raw, cfg, "rejected"))):
        conv = _messages(conv, cfg, i, "conversations")
        try:
            p_c, reply_c = render_prompt_and_reply(conv, chosen, _style(cfg), tokenizer)
            p_r, reply_r = render_prompt_and_reply(conv, rejected, _style(cfg), tokenizer)
        except DataError as err:
            raise DataError(f"{_source(cfg)}, row {i} (0-based): {err}") from None
        if p_c != p_r:  # only with odd chat templates: fall back to the shared prefix of both texts
            full_c, full_r = p_c + reply_c, p_r + reply_r
            p_c = os.path.commonprefix([full_c, full_r])
            reply_c, reply_r = full_c[len(p_c):], full_r[len(p_c):]
        for field, msg in (("chosen", chosen), ("rejected", rejected)):
            if not (msg.get("value") or msg.get("content") if isinstance(msg, dict) else msg):
                raise DataError(f"{_source(cfg)}, row {i} (0-based), field '{field}': empty reply; expected text")
        rows.append({"prompt": p_c, "chosen": reply_c, "rejected": reply_r})
    return _build(PAIRWISE, rows, cfg)


def local_pairs(raw: Dataset, cfg: dict, tokenizer: Any = None) -> tuple[str, Dataset]:
    """Generic pairwise file: ``chosen``, ``rejected`` and optional ``prompt``, ``margin``, ``group``."""
    chosen = _column(raw, cfg, "chosen")
    n = len(chosen)
    rows = {
        "chosen": chosen,
        "rejected": _column(raw, cfg, "rejected"),
        "prompt": _column(raw, cfg, "prompt", required=False) or [""] * n,
        "margin": _column(raw, cfg, "margin", required=False) or [None] * n,
        "group": _column(raw, cfg, "group", required=False) or [None] * n,
    }
    return _build(PAIRWISE, [{k: v[i] for k, v in rows.items()} for i in range(n)], cfg)


def local_binary(raw: Dataset, cfg: dict, tokenizer: Any = None) -> tuple[str, Dataset]:
    """Generic binary file: ``text``, ``label`` and optional ``group`` (or the ``pairs.group_key`` column)."""
    texts = _column(raw, cfg, "text")
    labels = _column(raw, cfg, "label")
    group_column = _group_column(cfg, "group")
    groups = _column(raw, cfg, "group", group_column, required=group_column != "group") or [None] * len(texts)
    return _build(BINARY, [{"text": t, "label": y, "group": g} for t, y, g in zip(texts, labels, groups)], cfg)


def _reply_list(value: Any, cfg: dict, index: int, field: str) -> list[str]:
    """A reply cell as a list: a string -> [it]; a list must be non-empty with non-empty string items."""
    where = f"{_source(cfg)}, row {index} (0-based), field"
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise DataError(f"{where} '{field}': expected a string or a list of strings, got {type(value).__name__} "
                        f"{value!r:.80}")
    if not items:
        raise DataError(f"{where} '{field}': empty list; expected at least one {field} reply")
    for j, item in enumerate(items):
        name = field if isinstance(value, str) else f"{field}[{j}]"
        if not isinstance(item, str):
            raise DataError(f"{where} '{name}': expected a string, got {type(item).__name__} {item!r:.80}")
        if not item:
            raise DataError(f"{where} '{name}': empty text; expected a non-empty string")
    return list(items)


def _render_replies(prompt: Any, replies: list[str], cfg: dict, tokenizer: Any, index: int) -> tuple[str, list[str]]:
    """(prompt_text, reply_texts) for one prompt and several replies, so ``prompt_text + reply_text`` is the
    rendered conversation ``[user prompt, assistant reply]`` (a prompt given as a list of messages is
    rendered as it is). No prompt: ("", the replies verbatim)."""
    if prompt is None or prompt == "":
        return "", list(replies)
    if isinstance(prompt, str):
        messages = [{"role": "user", "content": prompt}]
    else:
        messages = _messages(prompt, cfg, index, "prompt")
    try:
        rendered = [render_prompt_and_reply(messages, reply, _style(cfg), tokenizer) for reply in replies]
    except DataError as err:
        raise DataError(f"{_source(cfg)}, row {index} (0-based), field 'prompt': {err}") from None
    if len({p for p, _ in rendered}) == 1:
        return rendered[0][0], [r for _, r in rendered]
    fulls = [p + r for p, r in rendered]  # only with odd chat templates: the shared prefix is the prompt
    shared = os.path.commonprefix(fulls)
    return shared, [full[len(shared):] for full in fulls]


def reward_bench(raw: Dataset, cfg: dict, tokenizer: Any = None) -> tuple[str, Dataset, dict]:
    """RewardBench-style evaluation sets (allenai/reward-bench-2, allenai/reward-bench or a local file):
    ``prompt`` (text or messages), ``chosen`` (a reply or a list), ``rejected`` (a list or one reply),
    ``subset``, optional ``id`` -> multi rows ``{prompt, chosen, rejected: [...], subset, group}``.

    A source row with k > 1 chosen replies (reward-bench-2's Ties) becomes k rows in source order, each
    chosen against every rejected reply, all with the source row's ``id`` (else its 0-based index) as
    ``group``; the third return value counts them: ``{"chosen_expansion": {"source_rows", "rows_added",
    "max_chosen"}}``. Replies are rendered after the prompt like hh-rlhf (``render_style``).
    """
    chosen_col = _column(raw, cfg, "chosen")
    n = len(chosen_col)
    rejected_col = _column(raw, cfg, "rejected")
    prompts = _column(raw, cfg, "prompt", required=False) or [""] * n
    subsets = _column(raw, cfg, "subset", required=False) or [None] * n
    ids = _column(raw, cfg, "group", "id", required=False) or list(range(n))
    rows, expanded, added, widest = [], 0, 0, 0
    for i in range(n):
        chosen = _reply_list(chosen_col[i], cfg, i, "chosen")
        rejected = _reply_list(rejected_col[i], cfg, i, "rejected")
        prompt, texts = _render_replies(prompts[i], chosen + rejected, cfg, tokenizer, i)
        if len(chosen) > 1:
            expanded, added, widest = expanded + 1, added + len(chosen) - 1, max(widest, len(chosen))
        group = None if ids[i] is None else str(ids[i])
        for reply in texts[: len(chosen)]:
            row = {"prompt": prompt, "chosen": reply, "rejected": texts[len(chosen):], "subset": subsets[i],
                   "group": group}
            rows.append(validate_multi(row, _source(cfg), i))
    report = {"chosen_expansion": {"source_rows": expanded, "rows_added": added, "max_chosen": max(widest, 1)}}
    return MULTI, Dataset.from_list(rows, features=FEATURES[MULTI]), report


def demo(raw: Any, cfg: dict, tokenizer: Any = None) -> tuple[str, Dataset]:
    """The packaged demo sets: ``source`` "thumbs" (binary) or "harmless" (pairwise), from
    `rewardsoup.data.demo.demo_rows`."""
    name = _source(cfg)
    if name not in DEMO_SETS:
        raise ConfigError(f"data.source={name!r} for adapter 'demo': expected one of {sorted(DEMO_SETS)}")
    rows = importlib.import_module("rewardsoup.data.demo").demo_rows(name, seed=0)
    return _build(DEMO_SETS[name], list(rows), cfg)


ADAPTERS: dict[str, Adapter] = {
    "hh_rlhf": hh_rlhf,
    "chai_thumbs": chai_thumbs,
    "chai_feedback": chai_feedback,
    "chai_pairs": chai_pairs,
    "messages_label": messages_label,
    "sharegpt_pairs": sharegpt_pairs,
    "local_pairs": local_pairs,
    "local_binary": local_binary,
    "reward_bench": reward_bench,
    "demo": demo,
}
BUILDS_OWN_ROWS = {"demo"}  # adapters that read no `source`; every other one (yours too) gets the rows read from it
