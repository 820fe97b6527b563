"""The service registry: one line per service. A new service is one module plus one line."""

from __future__ import annotations

from collections.abc import Callable

from ..errors import UnknownNameError
from .base import ReplyReader, Service, Session
from .echo import EchoService
from .sum import SumService

#: name -> factory; the factory takes no arguments and returns a fresh Service
SERVICES: dict[str, Callable[[], Service]] = {
    "echo": EchoService,
    "sum": SumService,
}


def get_service(name: str | Service) -> Service:
    """A new service by registry name (or the service itself, passed through)."""
    if isinstance(name, Service):
        return name
    try:
        return SERVICES[name]()
    except KeyError:
        known = ", ".join(SERVICES)
        raise UnknownNameError(f"unknown service {name!r} (known: {known})") from None


__all__ = ["SERVICES", "ReplyReader", "Service", "Session", "get_service"]
