"""The routes file: which backends serve each model, at what price, under which limits.

``load_routes(path)`` reads YAML and validates it; every problem becomes one
``SpecError`` naming ``file:line``, the field path and what was expected.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from polyfleet.errors import SpecError, did_you_mean
from polyfleet.yamlio import Lines, dotted, line_of, read_yaml

Policy = Literal["weighted", "least-cost", "least-loaded", "plan"]
Api = Literal["openai", "anthropic"]
Role = Literal["committed", "overflow", "fallback"]


def _printable(name: str) -> str:
    """A name goes into response headers (``x-polyfleet-backend``), metrics labels and the ledger:
    a line break there is an invalid header value (uvicorn fails the answer), and no control
    character belongs in any of them."""
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValueError("expected a name without control characters (tabs, line breaks)")
    return name


Name = Annotated[str, Field(min_length=1), AfterValidator(_printable)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Listen(_Strict):
    """Where the gateway accepts connections."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)


class Key(_Strict):
    """A gateway key: stored as the SHA-256 of the secret, never the secret itself."""

    name: Name
    key_sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    budget_usd_per_day: float | None = Field(None, ge=0)
    models: list[str] | None = None


class BackendTimeouts(_Strict):
    """Per-backend upstream limits; a field left out takes the routes file's ``timeouts``."""

    connect_s: float | None = Field(None, gt=0)
    first_byte_s: float | None = Field(None, gt=0)
    inter_chunk_s: float | None = Field(None, gt=0)
    total_s: float | None = Field(None, gt=0)


class Backend(_Strict):
    """One upstream serving a model: an OpenAI- or Anthropic-compatible base URL."""

    name: Name
    url: str = Field(pattern=r"^https?://")
    weight: float = Field(1.0, ge=0)
    provider: str = ""
    api: Api = "openai"
    model: str | None = Field(None, description="model name upstream, when it differs")
    usd_per_mtok_in: float = Field(0.0, ge=0)
    usd_per_mtok_out: float = Field(0.0, ge=0)
    max_concurrency: int | None = Field(None, gt=0)
    max_requests_per_minute: float | None = Field(None, gt=0)
    max_tokens_per_minute: float | None = Field(None, gt=0)
    api_key_env: str | None = None
    role: Role | None = Field(None, description="what the plan bought it for (policy: plan)")
    planned_requests_per_s: float | None = Field(None, ge=0, description="committed: fill up to this rate")
    planned_share: float | None = Field(
        None, ge=0, le=1, description="the plan's share of the model's demand"
    )
    timeouts: BackendTimeouts | None = None
    probe_path: str | None = Field(None, pattern=r"^/", description="health probe, after the base URL")

    def cost_usd(self, tokens_in: int, tokens_out: int) -> float:
        """Price of one request on this backend."""
        return (tokens_in * self.usd_per_mtok_in + tokens_out * self.usd_per_mtok_out) / 1e6


class ModelRoute(_Strict):
    """A model clients may ask for, and the backends that serve it."""

    name: Name
    policy: Policy = "weighted"
    backends: list[Backend] = Field(min_length=1)

    @model_validator(mode="after")
    def _some_weight(self) -> ModelRoute:
        if self.policy == "weighted" and not any(b.weight > 0 for b in self.backends):
            raise ValueError("policy 'weighted' needs at least one backend with weight > 0")
        if self.policy == "plan" and any(b.role is None for b in self.backends):
            raise ValueError("policy 'plan' needs a role (committed, overflow or fallback) on every backend")
        return self


def _positive(default: float) -> Any:
    """A field that must be above zero (a count, a size, a duration in seconds), with its default."""
    return Field(default, gt=0)


class Breaker(_Strict):
    """Circuit breaker: open after ``failures`` in a row, probe again after ``cooldown_s``."""

    failures: int = _positive(5)
    cooldown_s: float = _positive(10.0)


class Timeouts(_Strict):
    """Upstream limits per attempt (every backend's default); bound on draining at shutdown."""

    connect_s: float = _positive(2.0)
    first_byte_s: float = _positive(60.0)
    inter_chunk_s: float = _positive(60.0)
    total_s: float = _positive(600.0)
    shutdown_s: float = _positive(20.0)


class ClientLimits(_Strict):
    """What one client connection may hold: header size, read timeouts, idle keep-alive, connections."""

    max_header_bytes: int = Field(16384, ge=1024)
    header_timeout_s: float = _positive(10.0)
    body_timeout_s: float = _positive(30.0)
    keepalive_timeout_s: float = _positive(5.0)
    max_connections: int = _positive(1024)


class Probe(_Strict):
    """Active health check of a backend whose breaker is open: a request every ``interval_s``."""

    interval_s: float = _positive(1.0)
    timeout_s: float = _positive(2.0)
    method: Literal["GET", "POST", "HEAD"] = "GET"
    path: str = Field("/models", pattern=r"^/")


class Routes(_Strict):
    """The whole routes file."""

    listen: Listen = Listen()
    ledger: str = Field("sqlite:///polyfleet-usage.db", pattern=r"^(sqlite|postgresql|postgres)://")
    state: str = Field(
        "memory",
        pattern=r"^(memory|rediss?://.*)$",
        description="memory (one process) or redis://… (replicas)",
    )
    keys: list[Key] | None = None
    models: list[ModelRoute] = Field(min_length=1)
    max_attempts: int = Field(3, gt=0, le=10)
    max_body_bytes: int = Field(8 * 1024 * 1024, gt=0)
    max_retry_after_s: float = _positive(60.0)
    breaker: Breaker = Breaker()
    timeouts: Timeouts = Timeouts()
    limits: ClientLimits = ClientLimits()
    probe: Probe = Probe()
    metrics_key: str | None = Field(None, min_length=1, description="the key itself (the hash is better)")
    metrics_key_sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$")
    budget_max_tokens: int = Field(4096, gt=0, description="output tokens reserved when max_tokens is absent")

    @field_validator("metrics_key_sha256")
    @classmethod
    def _one_metrics_key(cls, value: str | None, info: ValidationInfo) -> str | None:
        # checked here, after metrics_key: an error names this field, never echoes the secret
        if value is not None and info.data.get("metrics_key") is not None:
            raise ValueError("give metrics_key_sha256 or metrics_key, not both")
        return value

    @property
    def metrics_key_hash(self) -> str | None:
        """The SHA-256 (hex, lower case) of the key /metrics and /healthz detail need, if any."""
        if self.metrics_key is not None:
            return hashlib.sha256(self.metrics_key.encode("utf-8")).hexdigest()
        return None if self.metrics_key_sha256 is None else self.metrics_key_sha256.lower()

    def model(self, name: str) -> ModelRoute | None:
        """The route for ``name``, or None."""
        return next((m for m in self.models if m.name == name), None)


_MODELS: dict[str, type[BaseModel]] = {
    "": Routes,
    "listen": Listen,
    "keys": Key,
    "models": ModelRoute,
    "models.backends": Backend,
    "breaker": Breaker,
    "timeouts": Timeouts,
    "limits": ClientLimits,
    "probe": Probe,
    "models.backends.timeouts": BackendTimeouts,
}


def _translate(exc: ValidationError, data: Any, file: str, lines: Lines) -> SpecError:
    """One line for the most useful error of a pydantic ``ValidationError``."""
    errors = sorted(exc.errors(), key=lambda e: (e["type"] != "extra_forbidden", len(e["loc"])))
    err = errors[0]
    path = tuple(err["loc"])
    if err["type"] == "extra_forbidden":
        model = _MODELS.get(".".join(p for p in path[:-1] if isinstance(p, str)))
        fields = list(model.model_fields) if model else []
        hint = did_you_mean(str(path[-1]), fields)
        expected = f"; expected one of: {', '.join(fields)}" if fields and not hint else ""
        message = f"unknown field {path[-1]!r}{hint}{expected}"
    elif err["type"] == "missing":
        message = "required field is missing"
    else:
        message = err["msg"].replace("Value error, ", "")
        value = err.get("input")
        if value is not None and not isinstance(value, dict | list):
            message += f" (got {value!r})"
    return SpecError(message, file=file, line=line_of(lines, path), path=dotted(path))


def is_loopback(host: str) -> bool:
    """Whether ``host`` is localhost or a loopback IP address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_routes(
    data: Any, *, file: str = "<routes>", lines: Lines | None = None, environ: Mapping[str, str] | None = None
) -> Routes:
    """Validate a parsed routes document and check its cross-references."""
    lines = lines or {}
    if not isinstance(data, dict):
        raise SpecError("expected a mapping with a 'models' list", file=file, line=1)
    try:
        routes = Routes.model_validate(data)
    except ValidationError as exc:
        raise _translate(exc, data, file, lines) from None

    def fail(message: str, *path: Any) -> SpecError:
        return SpecError(message, file=file, line=line_of(lines, path), path=dotted(path))

    names = [m.name for m in routes.models]
    for index, name in enumerate(names):
        if names.index(name) != index:
            raise fail(f"model {name!r} appears twice", "models", index, "name")
    for m, model in enumerate(routes.models):
        seen = [b.name for b in model.backends]
        for b, backend in enumerate(seen):
            if seen.index(backend) != b:
                raise fail(
                    f"backend {backend!r} appears twice in model {model.name!r}", "models", m, "backends", b
                )
    if routes.keys is None and not is_loopback(routes.listen.host):
        raise fail("an open gateway (no 'keys') may only listen on a loopback address", "listen", "host")
    for k, key in enumerate(routes.keys or []):
        for m, model in enumerate(key.models or []):
            if model not in names:
                raise fail(f"unknown model {model!r}{did_you_mean(model, names)}", "keys", k, "models", m)
    if environ is not None:
        _check_environment(routes, environ, fail)
    return routes


def _check_environment(routes: Routes, environ: Mapping[str, str], fail: Any) -> None:
    """Every ``api_key_env`` must name a set variable (the value itself is never shown)."""
    for m, model in enumerate(routes.models):
        for b, backend in enumerate(model.backends):
            if backend.api_key_env and not environ.get(backend.api_key_env):
                raise fail(
                    f"environment variable {backend.api_key_env} is not set",
                    "models",
                    m,
                    "backends",
                    b,
                    "api_key_env",
                )


def load_routes(path: str | Path, environ: Mapping[str, str] | None = None) -> Routes:
    """Read and validate a routes file; raises ``SpecError`` on bad input.

    With ``environ``, also check that every backend's ``api_key_env`` is set in it.
    """
    path = Path(path)
    data, lines = read_yaml(path, what="routes file")
    return build_routes(data, file=str(path), lines=lines, environ=environ)
