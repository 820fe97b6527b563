"""netlab: a socket lab. The library's front door::

    from netlab import Limits, open_client, serve

`serve`, `Server`, `Limits` and `ServerStats` come from `netlab.server`; `open_client`,
`Client` and `run_chat` from `netlab.client`; `NetlabError` is the root of every error
netlab raises (`netlab.errors`). They are imported when first asked for, not with the
package, so that a process that needs none of them starts without trio (the load
generator, which bench starts once per run, imports only the standard library).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .client import Client, open_client, run_chat
    from .errors import NetlabError
    from .server import Limits, Server, ServerStats, serve

#: each public name, and the module it comes from
_EXPORTS = {
    "Client": "netlab.client", "open_client": "netlab.client", "run_chat": "netlab.client",
    "NetlabError": "netlab.errors",
    "Limits": "netlab.server", "Server": "netlab.server", "ServerStats": "netlab.server", "serve": "netlab.server",
}


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'netlab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once: the next lookup finds it without calling here
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = ["Client", "Limits", "NetlabError", "Server", "ServerStats", "open_client", "run_chat", "serve"]
