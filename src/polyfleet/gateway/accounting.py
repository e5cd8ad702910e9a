"""Accounting for a finished request: its budget settled, its ledger row, its metrics.

Requests never wait on the ledger or on metrics export: a finished request appends a
record to the ledger writer's queue and bumps in-memory counters.  When the upstream sent
no usage, the tokens are counted in a worker thread first and the row marked estimated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import orjson

from polyfleet.gateway.auth import Keys
from polyfleet.gateway.budgets import SharedBudgets
from polyfleet.gateway.ledger import LedgerWriter, Record
from polyfleet.gateway.metrics import Metrics
from polyfleet.gateway.relay import Outcome, Request
from polyfleet.gateway.tokens import Counter, answer_texts, request_texts, stream_texts
from polyfleet.gateway.usage import Usage

log = logging.getLogger("polyfleet.gateway")


def count_usage(
    counter: Counter, model: str, payload: dict[str, Any], chunks: list[bytes], stream: bool
) -> Usage:
    """Tokens of a request and its answer (chunks as received), for an upstream that sent no usage."""
    texts: list[str] = []
    if stream:
        for line in b"".join(chunks).split(b"\n"):
            if line.startswith(b"data:"):
                with contextlib.suppress(orjson.JSONDecodeError):
                    texts += stream_texts(orjson.loads(line[5:]))
    else:
        with contextlib.suppress(orjson.JSONDecodeError):
            texts = answer_texts(orjson.loads(b"".join(chunks)))
    return counter.usage(model, request_texts(payload), texts)


class Accountant:
    """Settles budgets, writes ledger rows and counts metrics for finished requests."""

    def __init__(self, keys: Keys, ledger: LedgerWriter, metrics: Metrics):
        self.keys = keys
        self.ledger = ledger
        self.metrics = metrics
        self.budgets: SharedBudgets | None = None  # key budgets in Redis, with shared state
        self.counter = Counter()
        self._counting: set[asyncio.Task[None]] = set()

    def finish(self, req: Request, out: Outcome) -> None:
        """Account for the request now, or once its tokens are counted when upstream sent no usage."""
        if out.usage is None and out.backend is not None and out.chunks:
            task = asyncio.create_task(self._account_counted(req, out))
            self._counting.add(task)
            task.add_done_callback(self._counting.discard)
            return
        self._account(req, out)

    async def drain(self) -> None:
        """Wait for rows still waiting for a token count, then for budget settlements (at shutdown)."""
        if self._counting:
            await asyncio.wait(set(self._counting), timeout=30)
        if self.budgets is not None:
            await self.budgets.drain()

    async def _account_counted(self, req: Request, out: Outcome) -> None:
        """Count the tokens of a request and its answer in a worker thread, then account."""
        assert out.backend is not None
        name = out.backend.config.model or req.model
        try:
            tokens_in, tokens_out = await asyncio.to_thread(
                count_usage, self.counter, name, req.payload, out.chunks, req.stream
            )
            out.usage = (tokens_in if out.tokens_in is None else out.tokens_in, tokens_out)
            out.estimated = True
        except Exception as exc:  # never lose the ledger row over a tokenizer
            log.warning("polyfleet: could not count tokens for %s: %s", req.model, exc)
        self._account(req, out)

    def _account(self, req: Request, out: Outcome) -> None:
        tokens_in, tokens_out = out.usage or (0, 0)
        model, backend, status = req.model, out.backend, out.status
        if backend is None:
            name, provider, cost = "", "", 0.0
        else:
            name, provider = backend.name, backend.config.provider
            cost = backend.config.cost_usd(tokens_in, tokens_out)
        elapsed = time.perf_counter() - req.started
        if self.budgets is not None:
            self.budgets.settle(req.key, req.day, req.reserved, cost)
        else:
            self.keys.settle(req.key, req.day, req.reserved, cost)
        self.ledger.add(
            Record(
                time.time(),
                req.day,
                req.key.name,
                model,
                name,
                provider,
                req.endpoint,
                status,
                round(elapsed * 1000, 3),
                tokens_in,
                tokens_out,
                cost,
                out.attempts,
                req.stream,
                out.partial,
                out.estimated,
            )
        )
        self.metrics.answered.add(model, name, status, provider, tokens_in, tokens_out, cost, elapsed)
