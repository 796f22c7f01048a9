"""Build the retrieval query from a conversation.

Strategy: the last user turn is the query. A follow-up is often too short to stand alone
("and in 2023?", "who made it?"), so while the query is under ``min_words`` words the
previous user turns are prepended, most recent first, up to ``max_turns`` turns. Assistant
turns are left out: they are the model's words, and retrieving on them amplifies its
mistakes. System prompts are instructions, never queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

FOLLOW_UP_MIN_WORDS = 12
FOLLOW_UP_MAX_TURNS = 2


def retrieval_query(
    messages: Sequence[dict[str, Any]],
    *,
    min_words: int = FOLLOW_UP_MIN_WORDS,
    max_turns: int = FOLLOW_UP_MAX_TURNS,
) -> str:
    user_turns = [message_text(m).strip() for m in messages if m.get("role") == "user"]
    user_turns = [turn for turn in user_turns if turn]
    if not user_turns:
        return ""
    parts = [user_turns[-1]]
    for earlier in reversed(user_turns[:-1][-max_turns:]):
        if sum(len(part.split()) for part in parts) >= min_words:
            break
        parts.insert(0, earlier)
    return "\n".join(parts)


def message_text(message: dict[str, Any]) -> str:
    """The text of a message: its string content, or its text parts joined."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text") or "") for p in content if isinstance(p, dict))
    return ""


def input_items(value: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A Responses API ``input`` as a list of items (a string is one user message)."""
    return [{"role": "user", "content": value}] if isinstance(value, str) else value


def input_as_chat(instructions: str | None, value: object) -> list[dict[str, Any]]:
    """A Responses API input as chat messages: to count its tokens with the chat template."""
    messages = [{"role": "system", "content": instructions}] if instructions else []
    items = input_items(value) if isinstance(value, (str, list)) else []
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("role"), str):
            messages.append({"role": item["role"], "content": message_text(item)})
    return messages
