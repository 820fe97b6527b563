"""size-limits: how large can one datagram be, and what happens to one that does not fit?

Three parts.

1. **The largest datagram each message transport accepts**, found with real sends: the
   size doubles from 1 KiB until a send fails with EMSGSIZE, then a binary search pins the
   limit to the byte. The sends go through the socket itself, not through netlab's own
   up-front size check, and every accepted datagram is read back to see it arrived whole.
   UDP's limits come from its headers (65535 - 20 - 8 = 65507 over IPv4; 65535 - 8 = 65527
   over IPv6, whose length field excludes its own header); unix-dgram's and unix-seq's from
   the sender's send buffer: SO_SNDBUF less 32 bytes of kernel bookkeeping.
2. **Truncation**: a ``--size``-byte message (8192 by default) is read into a 512-byte
   buffer with ``recvmsg``. A datagram socket keeps the first 512 bytes, sets MSG_TRUNC,
   and throws the tail away (the next read returns the next message); a ``MSG_PEEK |
   MSG_TRUNC`` read beforehand tells the real size. TCP is shown for contrast: it keeps the
   rest for the next read.
3. **Fragmentation, only with --kernel**: in a private network namespace (lo up, MTU 1500),
   an nftables rule at the *prerouting* hook drops each UDP packet with probability
   ``--loss``. Prerouting comes before IP reassembly, so the rule drops fragments, not
   datagrams (a rule at the input hook would see only reassembled datagrams). ``--messages``
   small datagrams (one packet each) and ``--messages`` datagrams of ``--size`` bytes are
   sent, and the loss of each is set beside the prediction ``1 - (1 - p) ** fragments``:
   one lost fragment loses the whole datagram. The namespace and its rule vanish when its
   one process exits. The nft and /proc parsing helpers come from
   `netlab.impair.kernel`; the namespace runs this module's own child (`child_main`).
"""

from __future__ import annotations

import errno
import json
import math
import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from .. import netns
from ..errors import MessageTooLargeError, NetlabError
from ..results import ResultTable
from ..transports import (
    get_transport, open_pair, parse_address, receive_data, receive_message, send_data, send_eof, socket_of,
    translate_os_errors,
)
from .base import Experiment, ExperimentOptions, ExperimentResult

DEFAULT_SIZE = 8192
TRUNC_BUFFER = 512
START = 1024  # the search doubles from here until a send is refused
CEILING = 1 << 26  # give up doubling here (64 MiB): no socket here takes that
ARRIVAL = 2.0  # how long an accepted datagram may take to be read back on loopback
SMALL = 64  # the one-packet datagram of the fragmentation part
MTU = 1500
IPV4_HEADER, UDP_HEADER = 20, 8
NS_TIMEOUT = 120.0
HIGH_THRESH = "/proc/sys/net/ipv4/ipfrag_high_thresh"  # per network namespace
RAISED_HIGH_THRESH = 256 << 20
LIMITS = {  # what each transport is expected to accept, for the finding (None: from SO_SNDBUF)
    "udp": 65535 - IPV4_HEADER - UDP_HEADER,
    "udp6": 65535 - UDP_HEADER,
    "unix-dgram": None,
    "unix-seq": None,
}
ADDRESSES = {"udp": "udp4:127.0.0.1:0", "udp6": "udp6:[::1]:0", "unix-dgram": "unix-dgram:{dir}/d.sock",
             "unix-seq": "unix-seq:{dir}/q.sock", "tcp": "tcp4:127.0.0.1:0"}
UNIX_OVERHEAD = 32
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # root may go past net.core.rmem_max


# -- 1. the largest datagram --------------------------------------------------------------


async def _search(send: Callable[[int], Awaitable[bool]]) -> dict[str, Any]:
    """Double from START until a send is refused, then bisect. ``send(n)`` is True if accepted."""
    sizes: list[tuple[int, bool]] = []

    async def attempt(n: int) -> bool:
        ok = await send(n)
        sizes.append((n, ok))
        return ok

    low, high = 0, None
    n = START
    while n <= CEILING:
        if await attempt(n):
            low, n = n, n * 2
        else:
            high = n
            break
    if high is None:
        return {"largest": None, "first_refused": None, "sends": len(sizes)}
    if low == 0:
        low = 1 if await attempt(1) else 0
        if low == 0:
            return {"largest": None, "first_refused": 1, "sends": len(sizes)}
    while high - low > 1:
        mid = (low + high) // 2
        if await attempt(mid):
            low = mid
        else:
            high = mid
    return {"largest": low, "first_refused": high, "sends": len(sizes)}


async def _limit(template: str, tmp: str) -> dict[str, Any]:
    """The largest message one real send takes, on a connected pair of a message transport."""
    async with open_pair(parse_address(template.format(dir=tmp))) as pair:
        sender = socket_of(pair.client)  # a real send: no up-front size check
        state: dict[str, Any] = {"errno": None, "whole": True}

        async def send(n: int) -> bool:
            try:
                with translate_os_errors(pair.address, "send to"):
                    await sender.send(bytes(n))
            except MessageTooLargeError as exc:
                state["errno"] = exc.errno
                return False
            with trio.move_on_after(ARRIVAL) as waiting:
                got = await receive_message(pair.server)
                state["whole"] = state["whole"] and got is not None and len(got.data) == n and not got.truncated
            if waiting.cancelled_caught:
                state["whole"] = False
            return True

        found = await _search(send)
        found["sndbuf"] = sender.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    return {**found, "refused_with": _errno_name(state["errno"]), "arrived_whole": state["whole"]}


def _errno_name(number: int | None) -> str | None:
    return None if number is None else errno.errorcode.get(number, str(number))


# -- 2. truncation ------------------------------------------------------------------------


async def _truncate(template: str, tmp: str, size: int) -> dict[str, Any]:
    """A message of `size` bytes, then a short one, read into a small buffer (a message transport)."""
    async with open_pair(parse_address(template.format(dir=tmp))) as pair:
        sender = socket_of(pair.client)  # a real send: no up-front size check
        try:
            with translate_os_errors(pair.address, "send to"):
                await sender.send(b"x" * size)
                await sender.send(b"next")
        except MessageTooLargeError as exc:
            return {"sent": size, "refused": str(exc)}
        return await _read_truncated(socket_of(pair.server), size, pair.address)


async def _read_truncated(sock: trio.socket.SocketType, size: int, where: object) -> dict[str, Any]:
    buffer = bytearray(TRUNC_BUFFER)
    with trio.fail_after(ARRIVAL), translate_os_errors(where, "receive from"):
        peeked, _anc, _flags, _peer = await sock.recvmsg_into([buffer], 0, socket.MSG_PEEK | socket.MSG_TRUNC)
        kept, _anc, flags, _peer = await sock.recvmsg_into([buffer])
        following = await sock.recv(1 << 16)
    return {"sent": size, "buffer": TRUNC_BUFFER, "peek_size": peeked, "kept": kept,
            "msg_trunc": bool(flags & socket.MSG_TRUNC), "lost_tail": size - kept,
            "next_read": len(following), "next_read_is_next_message": following == b"next"}


async def _truncate_stream(size: int) -> dict[str, Any]:
    address = parse_address(ADDRESSES["tcp"])
    async with open_pair(address) as pair:
        await send_data(pair.client, b"x" * size + b"next")
        await send_eof(pair.client)
        buffer = bytearray(TRUNC_BUFFER)
        with trio.fail_after(ARRIVAL), translate_os_errors(address, "receive from"):
            await trio.sleep(0.02)  # let it all arrive, so one read could take everything
            kept, _anc, flags, _peer = await socket_of(pair.server).recvmsg_into([buffer])
            rest = b""
            while chunk := await receive_data(pair.server, 1 << 16):
                rest += chunk
    return {"sent": size, "buffer": TRUNC_BUFFER, "peek_size": None, "kept": kept,
            "msg_trunc": bool(flags & socket.MSG_TRUNC), "lost_tail": size + 4 - kept - len(rest),
            "next_read": len(rest), "next_read_is_next_message": False}


# -- 3. fragmentation (kernel mode) ---------------------------------------------------------


def _kernel_error(message: str) -> NetlabError:
    from ..errors import KernelModeError  # only kernel mode, which brings it, gets here

    return KernelModeError(message)


def fragments(size: int, mtu: int = MTU) -> int:
    """How many IPv4 fragments a UDP datagram of `size` payload bytes becomes on a link of `mtu`."""
    per_fragment = (mtu - IPV4_HEADER) // 8 * 8
    return max(1, math.ceil((size + UDP_HEADER) / per_fragment))


def predicted_loss(p: float, pieces: int) -> float:
    """A datagram is lost when any of its fragments is: 1 - (1 - p) ** fragments."""
    return 1 - (1 - p) ** pieces


CHILD = "import sys; from netlab.experiments.size_limits import child_main; sys.exit(child_main())"


async def _kernel(options: ExperimentOptions, size: int) -> dict[str, Any]:
    """Run the fragmentation measurement in a fresh network namespace; its JSON result."""
    from ..impair.kernel import check_kernel_mode  # raises PrivilegeError / MissingToolError

    tools = check_kernel_mode()
    job = {"size": size, "small": SMALL, "messages": options.messages, "loss": options.loss, "mtu": MTU,
           "tools": tools, "parent": {"pid": os.getpid(), "netns": os.readlink("/proc/self/ns/net")}}
    with trio.move_on_after(NS_TIMEOUT) as guard:
        done = await trio.run_process(netns.unshare_command([sys.executable, "-c", CHILD]),
                                      stdin=json.dumps(job).encode(), capture_stdout=True, capture_stderr=True,
                                      check=False)
    if guard.cancelled_caught:
        raise _kernel_error(f"the fragmentation run in its namespace took longer than {NS_TIMEOUT:.0f} s")
    lines = [line for line in done.stdout.decode(errors="replace").splitlines() if line.startswith("{")]
    event = json.loads(lines[-1]) if lines else {}
    if event.get("event") == "error":
        raise _kernel_error(event["message"])
    if event.get("event") != "result":
        last = (done.stderr.decode(errors="replace").strip().splitlines() or ["no output"])[-1]
        raise _kernel_error(f"the fragmentation run ended without a result (exit {done.returncode}): {last}")
    measured: dict[str, Any] = event["result"]
    return measured


def _ns_run(tool: str, *args: str, stdin: str | None = None, what: str) -> str:
    done = subprocess.run([tool, *args], input=stdin, capture_output=True, text=True)
    if done.returncode != 0:
        reason = (done.stderr or done.stdout).strip().splitlines()
        raise _kernel_error(f"{what} failed: {reason[-1] if reason else f'exit {done.returncode}'}")
    return done.stdout


def _ns_ruleset(loss: float) -> str:
    from ..impair.kernel import numgen_fraction

    lines = ["table ip netlab_frag {", "  chain pre {",
             # prerouting at -300: before reassembly, which happens on the way to the input hook
             "    type filter hook prerouting priority -300; policy accept;",
             '    ip protocol udp counter comment "seen"']
    if loss > 0:
        threshold, modulus = numgen_fraction(loss)
        lines.append(f'    ip protocol udp numgen random mod {modulus} < {threshold} counter drop comment "dropped"')
    return "\n".join([*lines, "  }", "}", ""])


def _ns_phase(job: dict[str, Any], size: int, tag: bytes) -> dict[str, Any]:
    """Send job["messages"] datagrams of `size` bytes to a local receiver; count and read counters."""
    from ..impair.kernel import parse_nft_counters, parse_snmp

    def snapshot() -> tuple[dict[str, int], dict[str, int]]:
        texts = []
        for path in ("/proc/net/snmp", "/proc/net/netstat"):
            with open(path) as f:
                texts.append(f.read())
        rules = parse_nft_counters(_ns_run(job["tools"]["nft"], "-j", "list", "ruleset", what="reading counters"))
        return parse_snmp(texts[0], "", texts[1]), rules

    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 << 20)  # no receive-buffer loss here
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sender.connect(receiver.getsockname())
    seen: set[int] = set()

    def drain() -> None:
        while True:
            try:
                data = receiver.recv(1 << 16)
            except BlockingIOError:
                return
            if data[:1] == tag and len(data) == size:
                seen.add(int.from_bytes(data[1:5], "big"))

    snmp_before, rules_before = snapshot()
    filler = bytes(size - 5)
    for i in range(job["messages"]):
        sender.send(tag + i.to_bytes(4, "big") + filler)
        drain()
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline and len(seen) < job["messages"]:
        select.select([receiver], [], [], 0.05)
        drain()
    snmp_after, rules_after = snapshot()
    frag_memory = _frag_memory()
    sender.close()
    receiver.close()
    keys = ("Ip.FragCreates", "Ip.FragOKs", "Ip.ReasmReqds", "Ip.ReasmOKs", "Ip.ReasmFails", "Udp.InDatagrams",
            "Udp.RcvbufErrors", "Udp.InErrors")
    return {
        "size": size, "sent": job["messages"], "delivered": len(seen), "lost": job["messages"] - len(seen),
        "rule_seen": rules_after.get("seen", 0) - rules_before.get("seen", 0),
        "rule_dropped": rules_after.get("dropped", 0) - rules_before.get("dropped", 0),
        "snmp": {key: snmp_after.get(key, 0) - snmp_before.get(key, 0) for key in keys},
        "frag_memory": frag_memory,
    }


def _frag_memory() -> int | None:
    """Bytes held by incomplete IPv4 reassemblies (/proc/net/sockstat FRAG memory)."""
    try:
        with open("/proc/net/sockstat") as f:
            for line in f:
                if line.startswith("FRAG:"):
                    parts = line.split()
                    return int(parts[parts.index("memory") + 1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def _watch_parent(parent_pid: int) -> None:
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, name="netlab-parent-watch", daemon=True).start()


def child_main() -> int:
    """Inside the namespace: the job as JSON on stdin, one JSON line out."""
    def emit(event: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()

    job = json.loads(sys.stdin.read())
    _watch_parent(job["parent"]["pid"])
    try:
        netns.refuse_host(job["parent"]["netns"])
        tools = job["tools"]
        _ns_run(tools["ip"], "link", "set", "lo", "up", what="bringing lo up")
        _ns_run(tools["ip"], "link", "set", "lo", "mtu", str(job["mtu"]), what="setting lo's MTU")
        # incomplete datagrams wait ipfrag_time (30 s) for their missing fragments; past
        # ipfrag_high_thresh the kernel drops every new fragment, which would add a loss of
        # its own. This namespace's limit is raised so that only the rule loses fragments.
        with open(HIGH_THRESH) as f:
            default_high = int(f.read())
        with open(HIGH_THRESH, "w") as f:
            f.write(str(RAISED_HIGH_THRESH))
        ruleset = _ns_ruleset(job["loss"])
        _ns_run(tools["nft"], "-f", "-", stdin=ruleset, what="installing the loss rule")
        small = _ns_phase(job, job["small"], b"S")
        large = _ns_phase(job, job["size"], b"L")
    except (NetlabError, OSError) as exc:
        emit({"event": "error", "message": str(exc)})
        return 1
    emit({"event": "result", "result": {"small": small, "large": large, "ruleset": ruleset, "mtu": job["mtu"],
                                        "netns": os.readlink("/proc/self/ns/net"),
                                        "ipfrag_high_thresh_default": default_high,
                                        "ipfrag_high_thresh": RAISED_HIGH_THRESH}})
    return 0


# -- the experiment -----------------------------------------------------------------------


async def run(options: ExperimentOptions) -> ExperimentResult:
    size = options.size or DEFAULT_SIZE
    result = ExperimentResult(name="size-limits", question=EXPERIMENT.question,
                              mode="kernel" if options.kernel else "loopback",
                              options={"size": size, "buffer": TRUNC_BUFFER, "kernel": options.kernel})
    kernel_missing = None
    if options.kernel:
        try:
            from ..impair.kernel import check_kernel_mode
        except ImportError as exc:
            kernel_missing = str(exc)
        else:
            check_kernel_mode()  # fail before measuring anything, not after
    tmp = tempfile.mkdtemp(prefix="nl-", dir="/tmp")
    try:
        limits: dict[str, Any] = {}
        for name in LIMITS:
            template = ADDRESSES[name]
            limits[name] = await _limit(template, tmp)
            expected = LIMITS[name]
            limits[name]["expected"] = expected if expected is not None else limits[name]["sndbuf"] - UNIX_OVERHEAD
        truncation: dict[str, Any] = {}
        for name in LIMITS:
            sub = os.path.join(tmp, "t-" + name)
            os.mkdir(sub)
            truncation[name] = await _truncate(ADDRESSES[name], sub, size)
        truncation["tcp"] = await _truncate_stream(size)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result.facts["limits"] = limits
    result.facts["truncation"] = truncation
    if options.kernel and kernel_missing is not None:
        pieces = fragments(size)
        result.mode = "loopback"
        result.facts["fragmentation"] = {
            "measured": False, "reason": f"kernel mode is not available in this build ({kernel_missing})",
            "fragments_expected": pieces, "loss": options.loss,
            "predicted_loss_small": options.loss, "predicted_loss_large": predicted_loss(options.loss, pieces)}
    elif options.kernel:
        measured = await _kernel(options, size)
        measured["measured"] = True
        pieces = fragments(size)
        measured["fragments_expected"] = pieces
        measured["predicted_loss_small"] = options.loss
        measured["predicted_loss_large"] = predicted_loss(options.loss, pieces)
        measured["loss"] = options.loss
        result.facts["fragmentation"] = measured
    _report(result, size, options)
    return result


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.2f}%" if whole else "-"


def _report(result: ExperimentResult, size: int, options: ExperimentOptions) -> None:
    limits, truncation = result.facts["limits"], result.facts["truncation"]
    findings = result.findings
    table = ResultTable("Largest datagram a real send accepts (found by doubling, then binary search)",
                        ["transport", "largest accepted", "first refused", "refused with", "sends", "SO_SNDBUF",
                         "expected", "read back whole"], [])
    for name, f in limits.items():
        table.rows.append([name, f["largest"], f["first_refused"], f["refused_with"] or "-", f["sends"], f["sndbuf"],
                           f["expected"], "yes" if f["arrived_whole"] else "no"])
    result.tables.append(table)
    for name, f in limits.items():
        if f["largest"] is None:
            findings.append(f"{name}: no limit found up to {CEILING} bytes.")
            continue
        why = {"udp": "65535 less the 20-byte IPv4 header and the 8-byte UDP header",
               "udp6": "65535 less the 8-byte UDP header: IPv6's payload length does not count its own header"}
        if name in why:
            reason = why[name] if f["largest"] == f["expected"] else f"not the {f['expected']} that headers allow"
        else:
            reason = (f"= SO_SNDBUF {f['sndbuf']} - {UNIX_OVERHEAD}: the sender's send buffer sets it"
                      if f["largest"] == f["expected"] else f"SO_SNDBUF is {f['sndbuf']}")
        findings.append(f"{name}: the largest datagram is {f['largest']} bytes ({reason}); {f['first_refused']} "
                        f"fails with {f['refused_with']}, found in {f['sends']} sends."
                        + ("" if f["arrived_whole"] else " Not every accepted datagram was read back whole."))

    trunc = ResultTable(f"A {size}-byte message read into a {TRUNC_BUFFER}-byte buffer (recvmsg)",
                        ["transport", "sent", "MSG_PEEK|MSG_TRUNC says", "kept", "MSG_TRUNC", "tail lost",
                         "next read"], [])
    for name, t in truncation.items():
        if "refused" in t:
            trunc.rows.append([name, t["sent"], "-", "-", "-", "-", "send refused: EMSGSIZE"])
            continue
        stream = not get_transport(name).boundaries  # a read takes what is there, across messages
        following = ("the next message" if t["next_read_is_next_message"] else
                     f"{t['next_read']} bytes: the rest, then the next message" if stream else
                     f"{t['next_read']} bytes")
        trunc.rows.append([name, t["sent"], t["peek_size"] if t["peek_size"] is not None else "-", t["kept"],
                           "set" if t["msg_trunc"] else "not set", t["lost_tail"], following])
    result.tables.append(trunc)
    cut = [n for n, t in truncation.items() if "refused" not in t and t["msg_trunc"] and t["lost_tail"] > 0]
    if cut:
        t = truncation[cut[0]]
        findings.append(f"{', '.join(cut)}: a datagram of {size} bytes read into {TRUNC_BUFFER} bytes kept "
                        f"{t['kept']}, with MSG_TRUNC set; the other {t['lost_tail']} bytes are gone: the next read "
                        + ("returned the next message." if all(truncation[n]["next_read_is_next_message"] for n in cut)
                           else "did not return them.")
                        + (f" A MSG_PEEK|MSG_TRUNC read first reports the real size ({t['peek_size']}), so a "
                           f"receiver can size its buffer." if t["peek_size"] == size else ""))
    whole = [n for n, t in truncation.items() if "refused" not in t and not t["msg_trunc"] and t["kept"] >= size]
    if whole:
        findings.append(f"{', '.join(whole)}: a message of {size} bytes fits the {TRUNC_BUFFER}-byte buffer, so "
                        f"nothing was cut (use --size above {TRUNC_BUFFER} to see truncation).")
    refused = [n for n, t in truncation.items() if "refused" in t]
    if refused:
        findings.append(f"{', '.join(refused)}: a {size}-byte message could not be sent at all (over the limit above).")
    tcp = truncation.get("tcp")
    if tcp and not tcp["msg_trunc"] and size > TRUNC_BUFFER:
        rest = tcp["next_read"] - len(b"next")
        findings.append(f"tcp, for contrast: the {TRUNC_BUFFER}-byte read took {tcp['kept']} bytes, and the reads "
                        f"after it returned the other {rest} followed by the 4-byte next message: a byte stream "
                        f"loses nothing to a small buffer"
                        + (f" ({tcp['lost_tail']} bytes unaccounted for)." if tcp["lost_tail"] else "."))

    if options.kernel:
        _report_fragmentation(result, size)


def _report_fragmentation(result: ExperimentResult, size: int) -> None:
    frag = result.facts["fragmentation"]
    p = frag["loss"]
    if not frag["measured"]:
        k = frag["fragments_expected"]
        result.findings.append(
            f"fragmentation: not measured: {frag['reason']}. PREDICTION only, not a measurement: at MTU {MTU} a "
            f"datagram of {size} bytes travels as {k} fragments, so with each packet lost at p = {p:g} it would be "
            f"lost with probability 1-(1-p)^{k} = {100 * frag['predicted_loss_large']:.2f}%, against "
            f"{100 * p:.2f}% for a datagram that fits one packet.")
        return
    table = ResultTable(
        f"UDP over lo with MTU {frag['mtu']} in a private namespace; nftables drops each packet with p = {p:g} "
        f"before reassembly (kernel mode)",
        ["datagram", "sent", "packets the rule saw", "per datagram", "rule dropped", "delivered", "lost", "loss",
         "predicted 1-(1-p)^k"], [])
    for key, k in (("small", 1), ("large", frag["fragments_expected"])):
        f = frag[key]
        per = f["rule_seen"] / f["sent"] if f["sent"] else 0
        table.rows.append([f"{f['size']} B", f["sent"], f["rule_seen"], f"{per:.2f}", f["rule_dropped"],
                           f["delivered"], f["lost"], _pct(f["lost"], f["sent"]),
                           f"{100 * predicted_loss(p, k):.2f}% (k={k})"])
    result.tables.append(table)
    small, large = frag["small"], frag["large"]
    k = frag["fragments_expected"]
    per = large["rule_seen"] / large["sent"] if large["sent"] else 0
    text = (f"fragmentation (kernel mode): a datagram of {size} bytes left as {per:.2f} packets on average "
            f"(Ip FragCreates +{large['snmp'].get('Ip.FragCreates', 0)} for {large['sent']} datagrams; "
            f"{k} expected at MTU {frag['mtu']}). With each packet dropped at p = {p:g}, the {SMALL}-byte datagrams "
            f"lost {_pct(small['lost'], small['sent'])} ({small['lost']} of {small['sent']}) and the "
            f"{size}-byte ones {_pct(large['lost'], large['sent'])} ({large['lost']} of {large['sent']}), against a "
            f"prediction of {100 * predicted_loss(p, k):.2f}% = 1-(1-{p:g})^{k}.")
    if small["lost"] and p > 0:
        text += (f" The large ones were lost {large['lost'] / small['lost']:.1f} times as often as the small ones "
                 f"(predicted: {predicted_loss(p, k) / p:.1f} times).")
    if large["rule_dropped"] > large["lost"] > 0:
        text += (f" The rule dropped {large['rule_dropped']} fragments, which cost {large['lost']} datagrams: "
                 f"some datagrams lost more than one fragment.")
    text += " (The kernel draws the drops at random: --seed does not apply.)"
    result.findings.append(text)
    snmp = large["snmp"]
    text = (f"The kernel's view: {snmp.get('Ip.ReasmOKs', 0)} of {large['sent']} large datagrams were reassembled "
            f"(Ip ReasmOKs), Udp RcvbufErrors +{snmp.get('Udp.RcvbufErrors', 0)}, Ip ReasmFails "
            f"+{snmp.get('Ip.ReasmFails', 0)} during the run.")
    memory, default = large.get("frag_memory"), frag.get("ipfrag_high_thresh_default")
    if memory is not None and default is not None:
        text += (f" At the end, incomplete datagrams held {memory} bytes of reassembly memory, waiting out "
                 f"ipfrag_time for fragments that will never come")
        text += (f": more than the default ipfrag_high_thresh ({default}), past which the kernel drops every new "
                 f"fragment. The namespace's limit was raised to {frag['ipfrag_high_thresh']} so that only the "
                 f"rule's drops count here." if memory > default else
                 f" (under the default ipfrag_high_thresh of {default}, past which the kernel would drop every "
                 f"new fragment).")
    result.findings.append(text)


EXPERIMENT = Experiment(
    name="size-limits",
    question="How large can one datagram be, and what happens to one that does not fit? (EMSGSIZE, MSG_TRUNC, "
             "fragments)",
    run=run,
    uses=("size", "kernel", "loss", "messages"),
)
