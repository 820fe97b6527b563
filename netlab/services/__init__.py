"""The service registry: one line per service. A new service is one module plus one line."""

from __future__ import annotations

from typing import Protocol

from ..errors import UnknownNameError
from .base import ReplyReader, Service, Session
from .discard import DiscardService
from .echo import EchoService
from .sum import SumService


class ServiceFactory(Protocol):
    """Makes a fresh Service; `max_line` bounds what a line service buffers for one request."""

    def __call__(self, max_line: int = ...) -> Service: ...


#: name -> factory; the factory takes an optional ``max_line`` and returns a fresh Service
SERVICES: dict[str, ServiceFactory] = {
    "echo": EchoService,
    "sum": SumService,
    "discard": DiscardService,
}


def get_service(name: str | Service, *, max_line: int | None = None) -> Service:
    """A new service by registry name (or the service itself, passed through).

    `max_line` bounds what a line service buffers for one request."""
    if isinstance(name, Service):
        return name
    try:
        factory = SERVICES[name]
    except KeyError:
        raise UnknownNameError(f"unknown service {name!r} (known: {', '.join(SERVICES)})") from None
    return factory() if max_line is None else factory(max_line=max_line)


__all__ = ["SERVICES", "ReplyReader", "Service", "ServiceFactory", "Session", "get_service"]
