"""The lecture's socket exploration, as a library: host, resolve, constants, raw, addr explain.

Each module returns plain dataclasses (with ``as_dict()`` for JSON) that the CLI renders;
nothing here prints. Name lookups and sockets go through `netlab.transports` and
`netlab.errors` like everywhere else.

* `host.host_info`: host name, gethostbyname(_ex) of it, interfaces and their addresses;
* `resolve.resolve` (async): getaddrinfo rows, each as a netlab address that pastes back;
* `constants.constants`: the socket module's constants by prefix, shared values kept;
* `raw.raw_client` / `raw.raw_listen` (async): netcat over any netlab transport;
* `explain.explain` (async): how netlab reads an address, what it does, what the kernel applies.
"""

from .constants import ConstantRow, ConstantsTable, constants, prefixes
from .explain import Explanation, explain
from .host import HostInfo, host_info
from .raw import ListenResult, RawEvent, RawResult, decode_escapes, hexdump, raw_client, raw_listen
from .resolve import Resolution, ResolveRow, resolve

__all__ = [
    "ConstantRow", "ConstantsTable", "Explanation", "HostInfo", "ListenResult", "RawEvent", "RawResult",
    "Resolution", "ResolveRow", "constants", "decode_escapes", "explain", "hexdump", "host_info", "prefixes",
    "raw_client", "raw_listen", "resolve",
]
