"""Turn a conversation (a list of messages) into the single string a reward model scores.

The one rendering rule of the project lives here: `render_conversation`. Messages may use either
``{"role", "content"}`` (OpenAI / KTO style) or ``{"from", "value"}`` (sharegpt style) keys.

``plain`` style is hh-rlhf's own format: every message becomes ``"\\n\\n<Speaker>: <text>"`` with
user/human -> ``Human``, assistant/gpt/bot -> ``Assistant``, system -> ``System``; a message that carries a
``name`` key renders as ``"\\n\\n<Name>: <text>"``. So ``[user "hi", assistant "hello"]`` renders as
``"\\n\\nHuman: hi\\n\\nAssistant: hello"``, exactly like an hh-rlhf transcript.

``chat_template`` style uses ``tokenizer.apply_chat_template(..., tokenize=False)``; a tokenizer without a
chat template logs one warning (once per process) and falls back to ``plain``.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any

from rewardsoup.core.errors import ConfigError, DataError

log = logging.getLogger(__name__)

STYLES = ("plain", "chat_template")
SPEAKERS = {
    "user": "Human",
    "human": "Human",
    "assistant": "Assistant",
    "gpt": "Assistant",
    "bot": "Assistant",
    "system": "System",
}
_TEMPLATE_ROLES = {"Human": "user", "Assistant": "assistant", "System": "system"}
_HH_MARKER = re.compile(r"\n\n(Human|Assistant|System):")
_warned_no_template = False


def role_and_text(message: Any) -> tuple[str, str, str | None]:
    """(speaker, text, name) of one message; DataError for a message of unknown shape or role."""
    if isinstance(message, str):
        return "Assistant", message, None
    if not isinstance(message, dict):
        raise DataError(f"message {message!r:.80}: expected a dict with role/content or from/value keys")
    role = message.get("role", message.get("from"))
    text = message.get("content", message.get("value"))
    speaker = SPEAKERS.get(str(role).lower()) if role is not None else None
    if speaker is None:
        raise DataError(f"message role {role!r}: expected one of {sorted(SPEAKERS)} (key 'role' or 'from')")
    return speaker, "" if text is None else str(text), message.get("name") or None


def _use_template(style: str, tokenizer: Any) -> bool:
    global _warned_no_template
    if style not in STYLES:
        raise ConfigError(f"render_style={style!r}: expected one of {list(STYLES)}")
    if style == "plain":
        return False
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return True
    if not _warned_no_template:
        _warned_no_template = True
        log.warning("render_style=chat_template but the tokenizer has no chat template; using plain style")
    return False


def _template_messages(messages: list[Any]) -> list[dict[str, str]]:
    out = []
    for message in messages:
        speaker, text, name = role_and_text(message)
        item = {"role": _TEMPLATE_ROLES[speaker], "content": text}
        if name:
            item["name"] = name
        out.append(item)
    return out


def render_conversation(messages: list[Any], style: str = "plain", tokenizer: Any = None) -> str:
    """Render ``messages`` as one string in ``style`` ("plain" or "chat_template"); see the module docstring."""
    if _use_template(style, tokenizer):
        return tokenizer.apply_chat_template(_template_messages(messages), tokenize=False)
    parts = []
    for message in messages:
        speaker, text, name = role_and_text(message)
        parts.append(f"\n\n{name or speaker}: {text}")
    return "".join(parts)


def render_prompt_and_reply(
    messages: list[Any], reply: Any, style: str = "plain", tokenizer: Any = None
) -> tuple[str, str]:
    """Split the rendering of ``messages + [reply]`` into (prompt_text, reply_text).

    Invariant: ``prompt_text + reply_text == render_conversation(messages + [reply], style, tokenizer)``.
    In plain style the prompt ends with the reply's speaker marker (``"\\n\\nAssistant:"``) and the reply
    text starts with the space after it, as in hh-rlhf.
    """
    full = render_conversation(list(messages) + [reply], style, tokenizer)
    if _use_template(style, tokenizer):
        prompt = tokenizer.apply_chat_template(
            _template_messages(messages), tokenize=False, add_generation_prompt=True
        )
        if not full.startswith(prompt):
            prompt = os.path.commonprefix([prompt, full])
    else:
        speaker, _, name = role_and_text(reply)
        prompt = render_conversation(messages) + f"\n\n{name or speaker}:"
    return prompt, full[len(prompt):]


def parse_hh_transcript(text: str) -> list[dict[str, str]]:
    """Parse an hh-rlhf transcript ("\\n\\nHuman: …\\n\\nAssistant: …") into role/content messages.

    One space after each marker is dropped, so ``render_conversation(parse_hh_transcript(t)) == t`` for
    well-formed transcripts. Text before the first marker is a DataError.
    """
    matches = list(_HH_MARKER.finditer(text))
    if not matches or matches[0].start() != 0:
        raise DataError(f"transcript {text[:60]!r}: expected it to start with '\\n\\nHuman:' or '\\n\\nAssistant:'")
    roles = {"Human": "user", "Assistant": "assistant", "System": "system"}
    messages = []
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        content = text[match.end():end]
        messages.append({"role": roles[match.group(1)], "content": content[1:] if content.startswith(" ") else content})
    return messages
