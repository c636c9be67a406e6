"""The scoring-text rule: the user's own words, never a system prompt or a template."""

import pytest

from pars.scoring.text import CHAT_COMPLETIONS, COMPLETIONS, UnreadableRequest, user_text


def test_completion_prompt_is_read_as_is():
    assert user_text(COMPLETIONS, {"prompt": "Write a poem"}) == "Write a poem"
    assert user_text(COMPLETIONS, {"prompt": ["Only one"]}) == "Only one"


def test_chat_reads_the_last_user_turn_not_the_system_prompt_or_earlier_turns():
    messages = [{"role": "system", "content": "You are helpful. " * 50},
                {"role": "user", "content": "first question"},
                {"role": "assistant", "content": "an answer"},
                {"role": "user", "content": "Write a 2000-word essay on Rome"}]
    assert user_text(CHAT_COMPLETIONS, {"messages": messages}) == "Write a 2000-word essay on Rome"


def test_chat_content_parts_join_their_text_and_skip_images():
    content = [{"type": "text", "text": "Describe this"}, {"type": "image_url", "image_url": {"url": "x"}},
               {"type": "text", "text": "in detail"}]
    assert user_text(CHAT_COMPLETIONS, {"messages": [{"role": "user", "content": content}]}) == "Describe this\nin detail"


@pytest.mark.parametrize(("endpoint", "body", "reason"), [
    (COMPLETIONS, {"prompt": [1, 2, 3]}, "token_prompt"),
    (COMPLETIONS, {"prompt": ["a", "b"]}, "several_prompts"),
    (COMPLETIONS, {"prompt": "   "}, "empty_prompt"),
    (COMPLETIONS, {}, "no_user_text"),
    (CHAT_COMPLETIONS, {"messages": [{"role": "system", "content": "hi"}]}, "no_user_text"),
    (CHAT_COMPLETIONS, {"messages": "not a list"}, "no_user_text"),
    (CHAT_COMPLETIONS, {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}, "empty_prompt"),
])
def test_requests_without_readable_user_text_say_why(endpoint, body, reason):
    with pytest.raises(UnreadableRequest) as info:
        user_text(endpoint, body)
    assert info.value.reason == reason
