"""The service registry: one line per service. A new service is one module plus one line."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from ..errors import ServiceOptionError, UnknownNameError
from .base import ReplyReader, Service, Session
from .discard import DiscardService
from .echo import EchoService
from .framing import Framing
from .sum import SumService

#: makes a fresh Service: ``factory(max_line=N)``, plus the keyword options in ``factory.options``
ServiceFactory = type[Service]

#: name -> factory; the factory takes an optional ``max_line`` (and the keyword options it
#: lists in ``options``) and returns a fresh Service
SERVICES: dict[str, ServiceFactory] = {
    "echo": EchoService,
    "sum": SumService,
    "discard": DiscardService,
}


def get_service(name: str | Service, *, max_line: int | None = None, **options: Any) -> Service:
    """A new service by registry name (or the service itself, passed through).

    `max_line` bounds what a line service buffers for one request; `options` (``framing``,
    ``accept``; None means the default) go to the services that take them.

    Raises:
        UnknownNameError: no such service. ServiceOptionError: an option the service does not
        take, or a value it refuses.
    """
    if isinstance(name, Service):
        return name
    try:
        factory = SERVICES[name]
    except KeyError:
        raise UnknownNameError(f"unknown service {name!r} (known: {', '.join(SERVICES)})") from None
    given = {key: value for key, value in options.items() if value is not None}
    refused = [key for key in given if key not in factory.options]
    if refused:
        option = refused[0]
        takers = [other for other, made in SERVICES.items() if option in made.options]
        who = f"only {', '.join(takers)} does" if takers else "no service does"
        raise ServiceOptionError(f"{name} takes no --{option}, {who} ({name}: {factory.summary})")
    if max_line is not None:
        given["max_line"] = max_line
    make = cast(Callable[..., Service], factory)  # the keywords were checked against factory.options above
    return make(**given)


__all__ = ["SERVICES", "Framing", "ReplyReader", "Service", "ServiceFactory", "Session", "get_service"]
