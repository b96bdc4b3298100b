"""Rendering conversations to text: hh-rlhf's plain format, the prompt/reply split, chat templates."""

import logging

import pytest

from rewardsoup.data import render
from rewardsoup.data.render import parse_hh_transcript, render_conversation, render_prompt_and_reply
from rewardsoup.core.errors import ConfigError, DataError


def test_plain_matches_hh_rlhf_format():
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert render_conversation(messages) == "\n\nHuman: hi\n\nAssistant: hello"


def test_role_aliases_and_sharegpt_keys():
    messages = [
        {"from": "system", "value": "be nice"},
        {"from": "human", "value": "a"},
        {"from": "gpt", "value": "b"},
        {"role": "bot", "content": "c"},
    ]
    assert render_conversation(messages) == "\n\nSystem: be nice\n\nHuman: a\n\nAssistant: b\n\nAssistant: c"


def test_named_message_renders_name():
    messages = [{"role": "user", "content": "hey"}, {"role": "assistant", "name": "Luna", "content": "hi there"}]
    assert render_conversation(messages) == "\n\nHuman: hey\n\nLuna: hi there"


def test_unknown_role_is_data_error():
    with pytest.raises(DataError, match="'narrator'"):
        render_conversation([{"role": "narrator", "content": "x"}])


def test_unknown_style_is_config_error():
    with pytest.raises(ConfigError, match="render_style='fancy'"):
        render_conversation([{"role": "user", "content": "x"}], style="fancy")


def test_prompt_and_reply_invariant_plain():
    messages = [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"}, {"role": "user", "content": "q2"}]
    reply = {"role": "assistant", "content": "a2"}
    prompt, text = render_prompt_and_reply(messages, reply)
    assert prompt == "\n\nHuman: q1\n\nAssistant: a1\n\nHuman: q2\n\nAssistant:"
    assert text == " a2"
    assert prompt + text == render_conversation(messages + [reply])


class TemplateTokenizer:
    """A stand-in tokenizer with a chat template: `<|role|>content` blocks."""

    chat_template = "fake"

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
        assert tokenize is False
        text = "".join(f"<|{m['role']}|>{m['content']}<|end|>" for m in messages)
        return text + ("<|assistant|>" if add_generation_prompt else "")


def test_chat_template_style_uses_tokenizer():
    messages = [{"from": "human", "value": "hi"}]
    reply = {"from": "gpt", "value": "yo"}
    tok = TemplateTokenizer()
    assert render_conversation(messages, "chat_template", tok) == "<|user|>hi<|end|>"
    prompt, text = render_prompt_and_reply(messages, reply, "chat_template", tok)
    assert prompt == "<|user|>hi<|end|><|assistant|>"
    assert prompt + text == render_conversation(messages + [reply], "chat_template", tok)


def test_chat_template_without_template_warns_once_and_falls_back(monkeypatch, caplog):
    monkeypatch.setattr(render, "_warned_no_template", False)

    class NoTemplate:
        chat_template = None

    messages = [{"role": "user", "content": "hi"}]
    with caplog.at_level(logging.WARNING, logger="rewardsoup.data.render"):
        first = render_conversation(messages, "chat_template", NoTemplate())
        render_conversation(messages, "chat_template", None)
    assert first == "\n\nHuman: hi"
    warnings = [r for r in caplog.records if "no chat template" in r.getMessage()]
    assert len(warnings) == 1


def test_parse_hh_transcript_round_trip():
    text = "\n\nHuman: what is 2+2?\n\nAssistant: 4\n\nHuman: sure?\n\nAssistant: Yes.\nReally."
    messages = parse_hh_transcript(text)
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[3]["content"] == "Yes.\nReally."
    assert render_conversation(messages) == text


def test_parse_hh_transcript_rejects_text_before_marker():
    with pytest.raises(DataError, match="expected it to start with"):
        parse_hh_transcript("hello\n\nHuman: hi")
