"""``polyfleet serve``: an OpenAI- and Anthropic-compatible gateway that runs a plan live.

It spreads each model's requests over the backends a plan bought in the planned
proportions, fails over when one fails or runs out of capacity, and records what every
request cost.  See ``docs/gateway.md``.
"""

from polyfleet.gateway.app import Gateway
from polyfleet.gateway.auth import hash_key
from polyfleet.gateway.config import Routes, build_routes, load_routes
from polyfleet.gateway.routes import routes_from_plan, routes_yaml

__all__ = ["Gateway", "Routes", "build_routes", "hash_key", "load_routes", "routes_from_plan", "routes_yaml"]
