"""Token counts for answers that came without ``usage``: billed by counting, marked estimated.

OpenAI-family models (``gpt-*``, ``o1``/``o3``/``o4``, ``chatgpt-*``, ``text-embedding-*``)
are counted with tiktoken, with the encoding tiktoken names for the model (``o200k_base``
or ``cl100k_base``).  tiktoken downloads its BPE files at run time, which a gateway must
not depend on, so the files come from the ``bpe-openai`` wheel, which bundles them; they
are checked against the SHA-256 tiktoken expects before use.  Chat requests add
OpenAI's per-message overhead (3 tokens per message, 3 to prime the reply).

Other families are estimated at a stated number of characters per token, per family
(``FAMILIES``): Claude 3.5 (Anthropic's glossary: a token is about 3.5 English
characters), Gemini and Gemma 4 (Google's token docs: about 4 characters; Gemma uses
Gemini's SentencePiece tokenizer), and ``CHARS_PER_TOKEN`` = 4 for the rest (Llama,
Mistral, Qwen, DeepSeek…: the usual rule of thumb for English, with no published
per-family figure; it can be off by 20-30 % on code or other languages).  None of them
has a tokenizer to use here: Anthropic publishes none for Claude 3 and later; Llama's,
Qwen's and Gemma's come from model hubs (a download at run time); Mistral's
``mistral-common`` bundles its files but requires ``numpy<2.4`` on Python <= 3.12, and
the project runs numpy 2.4.  Either way the ledger row says ``estimated``.

Loading an encoding takes seconds: ``Counter.count`` is synchronous and meant to run in a
worker thread (``asyncio.to_thread``), never on the event loop.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import math
import threading
from importlib import resources
from typing import Any

CHARS_PER_TOKEN = 4.0
# (name prefixes, characters per token, basis): the first family whose prefix starts the model name
FAMILIES: tuple[tuple[tuple[str, ...], float, str], ...] = (
    (("claude",), 3.5, "Anthropic glossary: a token is about 3.5 English characters"),
    (("gemini", "gemma"), 4.0, "Google Gemini API token docs: a token is about 4 characters"),
)
_OPENAI_PREFIXES = ("gpt-", "o1", "o3", "o4", "chatgpt-", "text-embedding-", "ft:gpt-")
# tiktoken's expected_hash for each file (tiktoken_ext/openai_public.py)
_SHA256 = {
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
}
_PER_MESSAGE = 3
_REPLY_PRIMING = 3


def _texts(content: Any) -> list[str]:
    """The text of a message's content: a string, or text blocks (other blocks are not counted)."""
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text"]
    return []


def request_texts(payload: dict[str, Any]) -> tuple[list[str], int]:
    """Every text a request sends, and how many chat messages carry it (for the per-message overhead)."""
    texts: list[str] = []
    messages = payload.get("messages")
    count = 0
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                count += 1
                texts += [str(message.get("role", "")), *_texts(message.get("content"))]
    texts += _texts(payload.get("system"))
    for field in ("prompt", "input"):
        value = payload.get(field)
        if isinstance(value, str):
            texts.append(value)
        elif isinstance(value, list):
            texts += [v for v in value if isinstance(v, str)]
    return texts, count


def max_input_tokens(payload: dict[str, Any]) -> int:
    """An upper bound on a request's input tokens, for a budget reservation.

    Every token of a byte-level BPE tokenizer (tiktoken's, Llama 3's) is at least one byte,
    so the UTF-8 bytes of the texts bound the count; 4 tokens per message and 3 more cover
    chat-template markers.  Other request fields (tools, images) are not counted.
    """
    texts, messages = request_texts(payload)
    return sum(len(t.encode("utf-8")) for t in texts) + 4 * messages + 3


def answer_texts(body: Any) -> list[str]:
    """The generated text of a complete answer (OpenAI chat/completions or Anthropic message)."""
    if not isinstance(body, dict):
        return []
    texts: list[str] = []
    for choice in body.get("choices") or []:
        if isinstance(choice, dict):
            message = choice.get("message") or {}
            texts += _texts(message.get("content") if isinstance(message, dict) else None)
            if isinstance(choice.get("text"), str):
                texts.append(choice["text"])
    texts += _texts(body.get("content"))
    return texts


def stream_texts(event: Any) -> list[str]:
    """The generated text in one streamed event (OpenAI chunk or Anthropic content_block_delta)."""
    if not isinstance(event, dict):
        return []
    texts: list[str] = []
    for choice in event.get("choices") or []:
        if isinstance(choice, dict):
            delta = choice.get("delta") or {}
            if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                texts.append(delta["content"])
            if isinstance(choice.get("text"), str):
                texts.append(choice["text"])
    delta = event.get("delta")
    if (
        event.get("type") == "content_block_delta"
        and isinstance(delta, dict)
        and isinstance(delta.get("text"), str)
    ):
        texts.append(delta["text"])
    return texts


def chars_per_token(model: str) -> tuple[float, str]:
    """The characters per token a model without a bundled tokenizer is estimated at, and why."""
    name = model.lower().rsplit("/", 1)[-1]
    for prefixes, chars, basis in FAMILIES:
        if name.startswith(prefixes):
            return chars, basis
    return CHARS_PER_TOKEN, "rule of thumb for English text (no published figure for the family)"


def encoding_name(model: str) -> str | None:
    """tiktoken's encoding for an OpenAI-family model name, else None."""
    name = model.lower().rsplit("/", 1)[-1]
    if not name.startswith(_OPENAI_PREFIXES):
        return None
    from tiktoken.model import encoding_name_for_model

    try:
        found = encoding_name_for_model(name)
    except KeyError:
        found = "o200k_base"  # the encoding of every OpenAI model since gpt-4o
    return found if found in _SHA256 else None


def _load(name: str) -> Any:
    """A tiktoken ``Encoding`` built from the BPE file bundled in bpe-openai (no network)."""
    import tiktoken
    from tiktoken_ext import openai_public

    data = gzip.decompress((resources.files("bpe_openai.data") / f"{name}.tiktoken.gz").read_bytes())
    if hashlib.sha256(data).hexdigest() != _SHA256[name]:
        raise RuntimeError(f"{name}: the bundled BPE file is not the one tiktoken expects")
    ranks = {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in data.splitlines() if line)
    }
    # tiktoken's own constructor (pattern, special tokens), with the ranks we loaded instead of a download
    original = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = lambda *_a, **_k: ranks
    try:
        spec = getattr(openai_public, name)()
    finally:
        openai_public.load_tiktoken_bpe = original
    return tiktoken.Encoding(**spec)


class Counter:
    """Counts tokens per model; encodings are loaded once, on first use, thread-safely."""

    def __init__(self) -> None:
        self._encodings: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _encoding(self, name: str) -> Any:
        with self._lock:
            if name not in self._encodings:
                self._encodings[name] = _load(name)
            return self._encodings[name]

    def tokens(self, model: str, texts: list[str]) -> int:
        """Tokens in ``texts`` for ``model``: tiktoken for OpenAI models, else characters / the
        family's characters per token, rounded up."""
        name = encoding_name(model)
        if name is None:
            chars = sum(len(t) for t in texts)
            return math.ceil(chars / chars_per_token(model)[0])
        encoding = self._encoding(name)
        return sum(len(encoding.encode_ordinary(t)) for t in texts)

    def usage(self, model: str, request: tuple[list[str], int], answer: list[str]) -> tuple[int, int]:
        """``(tokens_in, tokens_out)`` of a request and its answer's text."""
        texts, messages = request
        tokens_in = self.tokens(model, texts)
        if messages and encoding_name(model) is not None:
            tokens_in += _PER_MESSAGE * messages + _REPLY_PRIMING
        return tokens_in, self.tokens(model, ["".join(answer)])  # streamed deltas: one text
