"""Prompts and candidate replies for best-of-N (`rewardsoup.sampling.job`): read, check, normalise.

A prompt is a conversation: a list of messages ``{role, content, name?}`` (``{from, value}`` sharegpt keys are
accepted too) that ends where the reply should start. Sources:

- a jsonl file, one object per line, with ``messages`` (a list of messages) or ``prompt`` (a string, taken
  as one user message); blank lines are skipped;
- the command line: ``prompt="..."`` or a list ``prompt='[first, second]'``;
- a candidates jsonl (rerank mode): the same fields plus ``candidates``, a non-empty list of reply strings.

Any line may carry ``reply_name``: the speaker name the reply is rendered with (Chai style). Without it the
reply takes the name of the last named assistant message, so a role-play bot keeps its name; plain prompts
give a plain ``Assistant`` reply. Every problem is a `DataError` naming the file and the 1-based line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from rewardsoup.data.render import role_and_text
from rewardsoup.core.errors import DataError

_ROLES = {"Human": "user", "Assistant": "assistant", "System": "system"}


@dataclass
class PromptItem:
    """One prompt: normalised messages, where it came from, and (rerank mode) its given candidates."""

    messages: list[dict[str, str]]
    where: str
    reply_name: str | None = None
    candidates: list[str] | None = None

    def reply(self, text: str) -> dict[str, str]:
        """The assistant message holding `text`, named like the bot when the conversation names it."""
        message = {"role": "assistant", "content": text}
        if self.reply_name:
            message["name"] = self.reply_name
        return message


def normalise_messages(value: Any, where: str) -> list[dict[str, str]]:
    """``{role, content, name?}`` dicts from role/content or from/value messages; DataError otherwise."""
    if not isinstance(value, list) or not value:
        raise DataError(f"{where}: `messages` must be a non-empty list of {{role, content}} objects, "
                        f"got {value!r:.80}")
    out = []
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            raise DataError(f"{where}: message {i} is {message!r:.60}; expected an object with role and content")
        try:
            speaker, _, _ = role_and_text(message)
        except DataError as exc:
            raise DataError(f"{where}: message {i}: {exc}") from None
        content = message.get("content", message.get("value"))
        if not isinstance(content, str):
            raise DataError(f"{where}: message {i} content is {content!r:.60}; expected a string")
        item = {"role": _ROLES[speaker], "content": content}
        if message.get("name"):
            item["name"] = str(message["name"])
        out.append(item)
    return out


def default_reply_name(messages: list[dict[str, str]]) -> str | None:
    """Name of the last named assistant message (the bot's name in Chai conversations), else None."""
    for message in reversed(messages):
        if message["role"] == "assistant" and message.get("name"):
            return message["name"]
    return None


def item_from_row(row: Any, where: str, with_candidates: bool = False) -> PromptItem:
    """A PromptItem from one parsed jsonl object (``messages`` or ``prompt``; ``candidates`` when asked)."""
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    if "messages" in row:
        messages = normalise_messages(row["messages"], where)
    elif isinstance(row.get("prompt"), str) and row["prompt"].strip():
        messages = [{"role": "user", "content": row["prompt"]}]
    else:
        raise DataError(f"{where}: expected `messages` (a list of {{role, content, name?}}) or `prompt` "
                        f"(a non-empty string); keys present: {sorted(row)}")
    reply_name = row.get("reply_name")
    if reply_name is not None and not isinstance(reply_name, str):
        raise DataError(f"{where}: `reply_name` must be a string, got {reply_name!r:.60}")
    item = PromptItem(messages, where, reply_name or default_reply_name(messages))
    if with_candidates:
        cands = row.get("candidates")
        if not isinstance(cands, list) or not cands or not all(isinstance(c, str) for c in cands):
            raise DataError(f"{where}: `candidates` must be a non-empty list of strings, got {cands!r:.80}")
        item.candidates = list(cands)
    return item


def read_jsonl(path: str | Path, what: str) -> Iterable[tuple[str, Any]]:
    """(where, parsed object) per non-blank line; DataError for a missing, empty or malformed file."""
    path = Path(str(path)).expanduser()
    if not path.is_file():
        raise DataError(f"{what} file '{path}' does not exist (or is not a file)")
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}, line {number}"
            try:
                rows.append((where, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: not valid JSON ({exc.msg}); expected one object per line") from None
    if not rows:
        raise DataError(f"{what} file '{path}' is empty; expected one JSON object per line")
    return rows


def read_prompts(path: str | Path) -> list[PromptItem]:
    """Prompts from a jsonl file of ``{messages}`` or ``{prompt}`` objects."""
    return [item_from_row(row, where) for where, row in read_jsonl(path, "prompts")]


def read_candidates(path: str | Path) -> list[PromptItem]:
    """Prompts with their given replies, from a jsonl of ``{prompt or messages, candidates: [...]}``."""
    return [item_from_row(row, where, with_candidates=True) for where, row in read_jsonl(path, "candidates")]


def cli_prompts(value: Any) -> list[PromptItem]:
    """Prompts from ``prompt=...`` on the command line: one string or a list of strings."""
    values = [value] if isinstance(value, str) else list(value)
    items = []
    for i, text in enumerate(values):
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"prompt[{i}]={text!r:.60}: expected a non-empty string")
        items.append(PromptItem([{"role": "user", "content": text}], f"prompt[{i}]"))
    return items
