"""What the machine says about a process and its sockets: CPU time, resident memory, the
kernel's UDP counters, the open-file limit. Plain reads of ``/proc`` and `resource`, shared
by the load generator (which imports nothing heavy) and `netlab bench` itself."""

from __future__ import annotations

import contextlib
import os
import resource
import socket


def read_text(path: str) -> str | None:
    """A /proc or /sys file's text, stripped; None when it cannot be read."""
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def usable_cpus() -> list[int]:
    """The cores this process may run on."""
    return sorted(os.sched_getaffinity(0))


def raise_nofile() -> tuple[int, int]:
    """Raise this process's soft RLIMIT_NOFILE to the hard limit (children inherit it);
    return (soft, hard) now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def process_cpu(pid: int | None) -> float | None:
    """utime + stime of a process (all its threads, living and dead), in seconds."""
    parts = process_cpu_parts(pid)
    return None if parts is None else parts[0] + parts[1]


def process_cpu_parts(pid: int | None) -> tuple[float, float] | None:
    """(utime, stime) of a process (all its threads, living and dead), in seconds."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def process_rss(pid: int | None) -> int | None:
    """Resident memory of a process in bytes (VmRSS)."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def own_cpu() -> float:
    """This process's CPU time (user + system), in seconds."""
    return sum(own_cpu_parts())


def own_cpu_parts() -> tuple[float, float]:
    """This process's CPU time as (user, system), in seconds."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def snmp(protocol: str) -> dict[str, int]:
    """The counters of one protocol line pair in /proc/net/snmp (e.g. "Udp")."""
    try:
        with open("/proc/net/snmp") as f:
            lines = [line.split() for line in f if line.startswith(protocol + ":")]
    except OSError:
        return {}
    if len(lines) < 2:
        return {}
    return {name: int(value) for name, value in zip(lines[0][1:], lines[1][1:])}


def _proc_hex_address(family: int, host: str) -> str:
    packed = socket.inet_pton(family, host)
    # /proc/net/udp{,6} prints each 32-bit word in host (little-endian) byte order
    return "".join(packed[i:i + 4][::-1].hex().upper() for i in range(0, len(packed), 4))


def udp_socket_state(family: int, sockaddr: tuple[str, int]) -> tuple[int, int] | None:
    """(receive queue bytes, drops) of the UDP socket bound to `sockaddr`, from /proc/net/udp."""
    path = "/proc/net/udp6" if family == socket.AF_INET6 else "/proc/net/udp"
    want = f"{_proc_hex_address(family, sockaddr[0])}:{sockaddr[1]:04X}"
    try:
        with open(path) as f:
            next(f)
            for line in f:
                fields = line.split()
                if fields[1] == want:
                    rx_queue = int(fields[4].split(":")[1], 16)
                    return rx_queue, int(fields[-1])
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    return None


__all__ = ["own_cpu", "own_cpu_parts", "process_cpu", "process_cpu_parts", "process_rss", "raise_nofile", "read_text", "snmp", "udp_socket_state",
           "usable_cpus"]
