"""The gateway's exception tree.

``GatewayError`` is an answer for the client: an HTTP status and an OpenAI-style
``{"error": {...}}`` body.  ``UpstreamError`` is one failed attempt at one backend; every
subclass is retryable on another backend, so "retryable" is a class, not a flag.
"""

from __future__ import annotations

import orjson


class GatewayError(Exception):
    """An error answered to the client with ``status`` and an OpenAI-style body."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        type: str,
        code: str | None = None,
        param: str | None = None,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ):
        super().__init__(message)
        self.message = message
        self.status = status
        self.type = type
        self.code = code
        self.param = param
        self.headers = headers

    def body(self) -> bytes:
        """The JSON body: ``{"error": {"message", "type", "param", "code"}}``."""
        error = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        return orjson.dumps({"error": error})

    def anthropic_body(self) -> bytes:
        """The body for an Anthropic Messages client: ``{"type": "error", "error": {"type",
        "message"}}`` with Anthropic's error type for the status (and our ``code`` and ``param``)."""
        kind = _ANTHROPIC_TYPES.get(
            self.status, "api_error" if self.status >= 500 else "invalid_request_error"
        )
        error = {"type": kind, "message": self.message, "code": self.code, "param": self.param}
        return orjson.dumps({"type": "error", "error": error})


# Anthropic's error types by HTTP status (docs.anthropic.com, "Errors")
_ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    529: "overloaded_error",
}


class UpstreamError(Exception):
    """One attempt at one backend failed in a way another backend may not: try the next."""

    status = 502


class UpstreamUnavailable(UpstreamError):
    """Connection refused, reset or closed before a complete answer."""


class UpstreamTimeout(UpstreamError):
    """No first byte within the time limit."""

    status = 504


class UpstreamStatus(UpstreamError):
    """The backend answered 429 or 5xx."""

    def __init__(self, status: int, body: bytes, retry_after: float | None):
        super().__init__(f"upstream answered {status}")
        self.status = status
        self.body = body
        self.retry_after = retry_after


class UpstreamAuth(UpstreamError):
    """The backend refused the gateway's credentials (401/403): its fault, never shown to the client."""

    def __init__(self, status: int):
        super().__init__(f"upstream refused the gateway's credentials ({status})")
        self.upstream_status = status


class UpstreamMalformed(UpstreamError):
    """A 2xx whose body is not the protocol (HTML, truncated JSON, not an event stream)."""
