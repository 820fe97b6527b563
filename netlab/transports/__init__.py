"""The transport registry: one line per scheme. A new transport is one module plus one line.

`TRANSPORTS` maps every scheme of the address grammar to the transport that serves it;
`COMPARE_SCHEMES` are the socket variants `netlab compare` puts side by side.
"""

from __future__ import annotations

import socket

from ..errors import UnknownNameError
from .addresses import Address, parse_address
from .base import (
    ByteStream, ConnectedDatagram, Connection, DatagramEndpoint, DatagramTransport, Kind, Listeners, Listening,
    Message, MessageChannel, MessageStream, MessageTransport, Pair, SeqpacketTransport, StreamTransport, Transport,
    connect_channel, listen_connections, listen_datagrams, open_pair, peer_identity, plain_socket, receive_data, receive_message, send_data, send_eof, socket_of,
)
from .tcp import TcpTransport
from .tls import TlsTransport
from .udp import UdpTransport
from .unix import UnixStreamTransport
from .unix_dgram import UnixDatagramTransport
from .unix_seq import UnixSeqpacketTransport

TRANSPORTS: dict[str, Transport] = {
    "tcp": TcpTransport("tcp", None),
    "tcp4": TcpTransport("tcp4", socket.AF_INET),
    "tcp6": TcpTransport("tcp6", socket.AF_INET6),
    "tls": TlsTransport(),
    "udp": UdpTransport("udp", None),
    "udp4": UdpTransport("udp4", socket.AF_INET),
    "udp6": UdpTransport("udp6", socket.AF_INET6),
    "unix": UnixStreamTransport(),
    "unix-dgram": UnixDatagramTransport(),
    "unix-seq": UnixSeqpacketTransport(),
}

#: one of each socket variant: (name shown, address template; {dir} is a private temp dir)
COMPARE_SCHEMES: dict[str, str] = {
    "tcp": "tcp:127.0.0.1:0",
    "tcp6": "tcp6:[::1]:0",
    "tls": "tls:127.0.0.1:0",
    "udp": "udp:127.0.0.1:0",
    "udp6": "udp6:[::1]:0",
    "unix": "unix:{dir}/s.sock",
    "unix-dgram": "unix-dgram:{dir}/d.sock",
    "unix-seq": "unix-seq:{dir}/q.sock",
}


def get_transport(scheme: str) -> Transport:
    try:
        return TRANSPORTS[scheme]
    except KeyError:
        raise UnknownNameError(f"unknown transport {scheme!r} (known: {', '.join(TRANSPORTS)})") from None


__all__ = [
    "TRANSPORTS", "COMPARE_SCHEMES", "Address", "ByteStream", "ConnectedDatagram", "Connection", "DatagramEndpoint",
    "DatagramTransport", "Kind", "Listeners", "Listening", "Message", "MessageChannel", "MessageStream",
    "MessageTransport", "Pair", "SeqpacketTransport", "StreamTransport", "Transport", "connect_channel", "get_transport", "listen_connections", "listen_datagrams", "open_pair",
    "parse_address", "peer_identity", "plain_socket", "receive_data", "receive_message", "send_data", "send_eof", "socket_of",
]
