"""Can another machine reach it? (`reach.interfaces`), and over IPv6? (`reach.ipv6`)

The lab's question ("copy the server to your VM, run it remotely... what do you have to
change?") has one usual answer: the server binds ``localhost``/``127.0.0.1``, which only
clients on the same machine can reach. The kernel's socket table says what a socket is bound
to (`netlab.check.procnet`):

==================  ===================================================================
``127.0.0.1``/``::1``  loopback only: no other machine can reach it
``0.0.0.0``/``::``     every interface: other machines can (a firewall permitting)
one address         only at that address; a hard-coded address fails on any other machine
a unix socket       only this machine, by design
==================  ===================================================================

Checked for real where the program runs isolated (`netlab.check.isolate`: with ``--run``, as
root or in a user namespace): the program already has a network namespace of its own;
netlab makes a second one (`netlab.netns`), links the two with a veth pair (10.199.0.1 and .2,
fd00:199::1 and ::2: addresses that exist only inside those two namespaces), and connects
from the second as a client on another machine would. The program runs once; nothing outside
the check's namespaces is touched, and they vanish with it. Otherwise the answer comes from
the bound address, and says so.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import shutil
import subprocess
import sys
import time

import trio

from .. import netns
from ..errors import NetlabError
from ..transports import Address, get_transport, parse_address
from .context import CaseContext
from .conversation import converse, open_connection
from .isolate import isolation
from .procnet import ListeningSocket
from .settings import Verdict

SERVER_IP, CLIENT_IP = "10.199.0.1", "10.199.0.2"
SERVER_IP6, CLIENT_IP6 = "fd00:199::1", "fd00:199::2"
TOOLS = ("unshare", "nsenter", "ip")
#: a namespace holder: lives until its stdin closes (netlab stopped it, or netlab died)
_HOLDER = "import sys; sys.stdin.read()"
_PROBE = """
import socket, sys
host, port, kind, payload, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], bytes.fromhex(sys.argv[4]), float(sys.argv[5])
family = socket.AF_INET6 if ":" in host else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM if kind == "stream" else socket.SOCK_DGRAM)
s.settimeout(timeout)
try:
    s.connect((host, port))
    if kind != "stream":
        s.send(payload)
        s.recv(65535)
except socket.timeout:
    print("no answer within %g s" % timeout)
    sys.exit(2)
except OSError as e:
    print((e.strerror or str(e)).lower())
    sys.exit(1)
"""


def scope_family(host: str) -> int:
    """4 or 6: the IP version a client uses to reach a socket bound to `host` (an IPv4-mapped
    IPv6 address is reached over IPv4)."""
    ip = ipaddress.ip_address(host)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return 6
    return 4


def scope(sock: ListeningSocket) -> str:
    """``all``, ``loopback``, ``one`` (a specific address) or ``unix``."""
    if sock.host is None:
        return "unix"
    ip = ipaddress.ip_address(sock.host)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified:
        return "all"
    if ip.is_loopback:
        return "loopback"
    return "one"


def describe(sock: ListeningSocket) -> str:
    """One sentence: what it is bound to, and whether a client on another machine can reach it."""
    if not sock.inet:
        return (f"a unix socket ({sock.path}): only programs on this machine can connect; another machine "
                f"cannot reach it")
    where = scope(sock)
    if where == "all":
        family = "every IPv6 interface (and IPv4 too, unless IPV6_V6ONLY is set)" if ":" in str(sock.host) \
            else "every IPv4 interface"
        return (f"bound to {sock.bound_text} ({family}): a client on another machine can reach it at this "
                f"machine's address, port {sock.port} (a firewall permitting)")
    if where == "loopback":
        return (f"bound to {sock.bound_text} (loopback only): a client on another machine cannot reach it, only "
                f"clients on this machine; bind to 0.0.0.0 (or '') instead of 'localhost'/127.0.0.1 to accept "
                f"clients from other machines")
    return (f"bound to {sock.bound_text} only: other machines reach it at that address alone, this machine's "
            f"clients cannot use 127.0.0.1, and a hard-coded address makes the program fail on any other "
            f"machine; bind to 0.0.0.0 (or '')")


def namespace_problem(ctx: CaseContext) -> str | None:
    """Why netlab cannot test from a second network namespace here, or None if it can."""
    if ctx.program is None:
        return "netlab did not start the server, so it cannot test it from a second network namespace (--run can)"
    if not ctx.settings.namespaces:
        return "the namespace check is off"
    if not ctx.isolated:
        return isolation().describe()
    missing = [name for name in TOOLS if shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""),
                                                                                 *netns.SBIN])) is None]
    if missing:
        return f"{', '.join(missing)} missing (util-linux, iproute2): cannot check from a second network namespace"
    return None


async def reach_verdict(ctx: CaseContext) -> Verdict:
    """reach.interfaces, where netlab sees the listening socket (the case's declaration)."""
    sock = ctx.listener
    assert sock is not None
    sentence = describe(sock)
    if not sock.inet:
        return ("pass" if ctx.netlab else "warn"), sentence
    where = scope(sock)
    real: bool | None = None
    how = "judged from the bound address"
    problem = namespace_problem(ctx)
    if problem is None:
        real, how = await probe_from_namespace(ctx, sock)
    else:
        how += f": {problem}"
    reachable = real if real is not None else where in ("all", "one")
    text = f"{sentence} — {how}"
    if reachable and real is not None and where == "loopback":
        text = f"{how}, although the program here is {sentence}"
    if reachable:
        return ("warn" if where == "one" and not ctx.netlab else "pass"), text
    return ("warn" if ctx.netlab else "fail"), text


async def probe_from_namespace(ctx: CaseContext, sock: ListeningSocket) -> tuple[bool | None, str]:
    """From a second network namespace, linked to the program's by a veth pair, connect to the
    program as a client on another machine would. (True/False: reached or not; None: the check
    could not run.) Runs inside the check's own namespace (`netlab.check.isolate`): the link,
    its addresses and the second namespace exist only there, and vanish with it."""
    program = ctx.program
    assert program is not None and sock.host is not None and sock.port is not None
    holder: subprocess.Popen[bytes] | None = None
    try:
        holder = subprocess.Popen(netns.unshare_command(netns.python_command(_HOLDER)), stdin=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        program.exclude.add(holder.pid)
        failed = await trio.to_thread.run_sync(_link, holder.pid)
        if failed:
            return None, f"judged from the bound address (could not make the test namespace: {failed})"
        target = SERVER_IP if scope_family(sock.host) == 4 else SERVER_IP6
        kind = get_transport(sock.kind).kind  # the probe's socket: stream (tcp) or datagram (udp)
        payload = ctx.request("2", "3") if ctx.settings.service == "sum" else b"hello\n"
        wait = max(0.5, min(ctx.timeout, 3.0))
        shown = f"[{target}]:{sock.port}" if ":" in target else f"{target}:{sock.port}"
        result = await trio.to_thread.run_sync(_probe, holder.pid, target, sock.port, kind, payload, wait)
        how = ("checked for real: from a second network namespace, linked to the program's by a veth pair "
               "(as another machine on a network), a client")
        if result is None:
            return True, f"{how} reached {shown}"
        return False, f"{how} could not reach {shown} ({result})"
    except NetlabError as exc:
        return None, f"judged from the bound address (could not make the test namespace: {exc})"
    finally:
        if holder is not None:
            with trio.CancelScope(shield=True):
                assert holder.stdin is not None
                holder.stdin.close()
                holder.kill()
                await trio.to_thread.run_sync(holder.wait)
                if holder.stderr is not None:
                    holder.stderr.close()
                program.exclude.discard(holder.pid)


def _in(ns: int, *command: str) -> list[str]:
    return ["nsenter", "-t", str(ns), "-n", "--", *command]


def _run(command: list[str]) -> str | None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    return None if done.returncode == 0 else (done.stderr.strip() or f"{' '.join(command)} failed")


def _link(client_ns: int) -> str | None:
    """Wait for the holder to be in its namespace, then link it to ours with a veth pair."""
    ours = netns.current_netns()
    for _ in range(500):
        try:
            if os.readlink(f"/proc/{client_ns}/ns/net") != ours:
                break
        except OSError:
            return "the namespace holder exited"
        time.sleep(0.01)
    else:
        return "the namespace was not made"
    steps = [
        _in(client_ns, "ip", "link", "set", "lo", "up"),
        ["ip", "link", "add", "nlcheck-s", "type", "veth", "peer", "name", "nlcheck-c", "netns", str(client_ns)],
        ["ip", "addr", "add", f"{SERVER_IP}/24", "dev", "nlcheck-s"],
        ["ip", "-6", "addr", "add", f"{SERVER_IP6}/64", "dev", "nlcheck-s", "nodad"],
        ["ip", "link", "set", "nlcheck-s", "up"],
        _in(client_ns, "ip", "addr", "add", f"{CLIENT_IP}/24", "dev", "nlcheck-c"),
        _in(client_ns, "ip", "-6", "addr", "add", f"{CLIENT_IP6}/64", "dev", "nlcheck-c", "nodad"),
        _in(client_ns, "ip", "link", "set", "nlcheck-c", "up"),
    ]
    for step in steps:
        failed = _run(step)
        if failed:
            return failed
    return None


def _probe(client_ns: int, host: str, port: int, kind: str, payload: bytes, wait: float) -> str | None:
    """Connect (or, for datagrams, ask and wait for an answer) from the client namespace;
    None if it worked, else what went wrong."""
    done = subprocess.run(_in(client_ns, sys.executable, "-c", _PROBE, host, str(port), kind, payload.hex(),
                              str(wait)), capture_output=True, text=True, timeout=wait + 10)
    return None if done.returncode == 0 else (done.stdout.strip() or done.stderr.strip() or "failed")


def _on(address: Address, host: str) -> Address:
    """`address` with another host, the scheme following the host's IP version."""
    six = ":" in host
    scheme = {"tcp4": "tcp6", "udp4": "udp6"}.get(address.scheme, address.scheme) if six else \
        {"tcp6": "tcp4", "udp6": "udp4"}.get(address.scheme, address.scheme)
    return parse_address(str(dataclasses.replace(address, scheme=scheme, host=host)))


async def ipv6_verdict(ctx: CaseContext) -> Verdict:
    """reach.ipv6, at an IP address whose socket is not bound to one address only (the case's
    declaration)."""
    works = {}
    for host in ("::1", "127.0.0.1"):
        address = _on(ctx.address, host)
        if ctx.connected:
            opened = await open_connection(ctx, address)
            works[host] = not isinstance(opened, str)
            if not isinstance(opened, str):
                await opened.aclose()
        else:
            payload = ctx.request("2", "3") if ctx.settings.service == "sum" else b"hello\n"
            conv = await converse(ctx, [payload], bool, address=address,
                                  deadline=min(ctx.deadline, trio.current_time() + ctx.timeout / 2))
            works[host] = bool(conv.received)
    if works["::1"] and works["127.0.0.1"]:
        return "pass", "IPv6 clients ([::1]) and IPv4 clients (127.0.0.1) both reach it"
    if works["::1"]:
        return "pass", "IPv6 clients ([::1]) reach it; IPv4 clients (127.0.0.1) do not"
    return "warn", ("IPv4 only: a client connecting to [::1] is refused (a client that resolves 'localhost' to ::1 "
                    "first must fall back); to take both, listen on '::' with IPV6_V6ONLY off "
                    "(socket.create_server(('', port), family=socket.AF_INET6, dualstack_ipv6=True))")


__all__ = ["describe", "ipv6_verdict", "namespace_problem", "probe_from_namespace", "reach_verdict", "scope"]
