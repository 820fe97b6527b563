"""Transports: the address grammar, one module per socket kind, and the registry.

::

    addresses.py   Address (plain data), the grammar, OPTIONS
    base.py        the contracts: ByteStream, MessageChannel, Listeners[C], DatagramEndpoint,
                   Transport and its kinds; nothing that runs
    registry.py    TRANSPORTS, the one list (one line per scheme), get_transport, parse_address
    oserrors.py    OS errors -> netlab errors, worded from the transport
    batch.py       batched receives (one trip through trio's scheduler per batch)
    datagram.py    the datagram endpoint and connected datagram channel (udp, unix-dgram)
    seqpacket.py   the seqpacket message stream (unix-seq)
    connections.py working with either contract: open_pair, receive_data, send_data, ...
    tcp.py udp.py tls.py unix.py unix_dgram.py unix_seq.py   one module per socket kind
    certificates.py  TLS's certificates and contexts; _inet.py, _sockopts.py  shared socket set-up

Everything above is re-exported here; import from ``netlab.transports``.
"""

from __future__ import annotations

from .addresses import Address
from .base import (
    ByteStream, Connection, DatagramEndpoint, DatagramTransport, Kind, Listeners, Listening, Message, MessageChannel,
    MessageTransport, Plan, SeqpacketTransport, StreamTransport, Transport,
)
from .connections import (
    Pair, connect_channel, listen_connections, listen_datagrams, open_pair, peer_identity, plain_socket, receive_data,
    receive_message, send_data, send_eof, socket_of,
)
from .datagram import ConnectedDatagram
from .registry import (
    COMPARE_SCHEMES, TRANSPORTS, describe_os_error, get_transport, kernel_scheme, parse_address, translate_os_errors,
)
from .seqpacket import MessageStream

__all__ = [
    "TRANSPORTS", "COMPARE_SCHEMES", "Address", "ByteStream", "ConnectedDatagram", "Connection", "DatagramEndpoint",
    "DatagramTransport", "Kind", "Listeners", "Listening", "Message", "MessageChannel", "MessageStream",
    "MessageTransport", "Pair", "Plan", "SeqpacketTransport", "StreamTransport", "Transport", "connect_channel",
    "describe_os_error", "get_transport", "kernel_scheme", "listen_connections", "listen_datagrams", "open_pair",
    "parse_address", "peer_identity", "plain_socket", "receive_data", "receive_message", "send_data", "send_eof",
    "socket_of", "translate_os_errors",
]
