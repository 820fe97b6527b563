"""The buffer options every transport takes (``?rcvbuf=``, ``?sndbuf=``): set them, and say them.

`buffer_calls` is what `apply_buffer_options` does, in its order, as `Transport.plan` lists it.
"""

from __future__ import annotations

import socket

import trio

from .addresses import Address

_BUFFERS = (("rcvbuf", "SO_RCVBUF", socket.SO_RCVBUF), ("sndbuf", "SO_SNDBUF", socket.SO_SNDBUF))


def apply_buffer_options(sock: trio.socket.SocketType | socket.socket, address: Address) -> None:
    """Set SO_RCVBUF / SO_SNDBUF from ``?rcvbuf=`` / ``?sndbuf=``."""
    for name, _, option in _BUFFERS:
        value = address.int_option(name)
        if value is not None:
            sock.setsockopt(socket.SOL_SOCKET, option, value)


def buffer_calls(address: Address) -> list[str]:
    """The setsockopt calls `apply_buffer_options` makes for `address`."""
    calls: list[str] = []
    for name, option_name, _ in _BUFFERS:
        value = address.int_option(name)
        if value is not None:
            calls.append(f"setsockopt(SOL_SOCKET, {option_name}, {value})")
    return calls


__all__ = ["apply_buffer_options", "buffer_calls"]
