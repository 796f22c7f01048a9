"""Which requests may be answered from the cache, and the key their answer is stored under.

The key covers everything that decides an engine's deterministic answer: the tenant, the
endpoint, the client's body, the engine model behind its public name, the prompt template
the gateway wraps passages in, and each retrieved passage as the model saw it. A document
re-ingested or deleted changes what retrieval returns, so the key changes with it and a
cached answer never outlives its sources.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from gateway.rag.prompt import Passage, with_context, with_context_prompt

# The endpoints whose answers are kept (a Responses request may store its answer
# engine-side, which a replay would skip).
CACHED_PATHS = frozenset({"/v1/chat/completions", "/v1/completions"})
# Bump when the meaning of a key's parts changes; old entries then simply stop matching.
KEY_FORMAT = 1


def cacheable(raw: dict[str, Any]) -> bool:
    """A request whose answer is deterministic: ``temperature`` sent as 0, or an integer
    ``seed``. Nothing else is cacheable: vLLM's default temperature is the model's, which
    usually samples.

    ``n`` > 1 is fine (n equal answers at temperature 0, n reproducible ones with a seed), so
    are ``logprobs`` and tools. Only chat and completion bodies are meant here: a Responses
    request may store its answer engine-side (``store``), which a replay would skip.
    """
    temperature = raw.get("temperature")
    seed = raw.get("seed")
    zero = _is_number(temperature) and temperature == 0
    return zero or (isinstance(seed, int) and not isinstance(seed, bool))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def passage_fingerprints(sources: Sequence[dict[str, Any]]) -> list[tuple[str, str]]:
    """(chunk id, content hash) of each retrieved passage, in retrieval order.

    The hash covers what the prompt shows of a passage (title, source, page, text), so a
    document renamed or re-paginated without a changed text still changes the key.
    """
    return [(str(source["chunk_id"]), _content_hash(source)) for source in sources]


def _content_hash(source: dict[str, Any]) -> str:
    shown = [source.get("title"), source.get("source"), source.get("page"), source["text"]]
    return hashlib.sha256(_canonical(shown)).hexdigest()


def answer_key(
    *,
    tenant: str,
    path: str,
    raw: dict[str, Any],
    passages: Sequence[tuple[str, str]],
    engine_model: str = "",
) -> str:
    """The sha256 (hex) an answer is stored under.

    ``raw`` is the client's body as sent (JSON key order does not matter). ``engine_model``
    is the model behind the body's public name: an alias may point elsewhere after a
    restart, and a Redis cache outlives restarts.
    """
    material = [
        KEY_FORMAT,
        _prompt_template_hash(),
        tenant,
        path,
        engine_model,
        raw,
        [[chunk_id, digest] for chunk_id, digest in passages],
    ]
    return hashlib.sha256(_canonical(material)).hexdigest()


def _canonical(value: Any) -> bytes:
    # ASCII escapes: a lone surrogate from a client's JSON still encodes.
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


@functools.cache
def _prompt_template_hash() -> str:
    """The gateway's prompt wrapping, rendered once for a fixed passage: a deploy that
    changes the template or the grounding system prompt stops matching older answers."""
    sample = [Passage(number=1, title="t", source="s", page=1, text="x")]
    chat = with_context([{"role": "user", "content": "q"}], sample, "n")
    return hashlib.sha256(_canonical([chat, with_context_prompt("q", sample, "n")])).hexdigest()
