"""The machine a run measures on: what the figures depend on (versions, cores, pinning,
loopback MTU, socket buffers, sysctls), and the cores the servers and the load generator
are pinned to."""

from __future__ import annotations

import contextlib
import os
import platform
import resource
import shutil
import socket
import subprocess
from collections.abc import Callable
from typing import Any

from ..results import environment as base_environment
from .modes import BenchSettings
from .procfs import read_text as _read
from .procfs import usable_cpus as _usable_cpus


def iperf3_path() -> str | None:
    return shutil.which("iperf3")


def environment(settings: BenchSettings | None = None) -> dict[str, Any]:
    """What the figures depend on: versions, cores, pinning, loopback MTU, socket buffers."""
    env: dict[str, Any] = base_environment()
    model = None
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        if line.startswith("model name"):
            model = line.partition(":")[2].strip()
            break
    sysctl = {name: _read(f"/proc/sys/{name.replace('.', '/')}") for name in (
        "net.core.rmem_default", "net.core.wmem_default", "net.core.rmem_max", "net.core.wmem_max",
        "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem", "net.unix.max_dgram_qlen", "net.core.somaxconn",
        "net.ipv4.ip_local_port_range")}
    probe = {}
    for name, family, kind in (("tcp", socket.AF_INET, socket.SOCK_STREAM), ("udp", socket.AF_INET, socket.SOCK_DGRAM),
                               ("unix", socket.AF_UNIX, socket.SOCK_STREAM),
                               ("unix-dgram", socket.AF_UNIX, socket.SOCK_DGRAM)):
        with socket.socket(family, kind) as s:
            probe[name] = {"SO_RCVBUF": s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
                           "SO_SNDBUF": s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)}
    iperf3 = iperf3_path()
    iperf3_version = None
    if iperf3:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            iperf3_version = subprocess.run([iperf3, "--version"], capture_output=True, text=True,
                                            timeout=5).stdout.splitlines()[0].strip()
    env.update({
        "cpu_model": model, "usable_cpus": _usable_cpus(), "implementation": platform.python_implementation(),
        "loopback_mtu": int(_read("/sys/class/net/lo/mtu") or 0) or None,
        "sysctl": sysctl, "default_socket_buffers": probe,
        "rlimit_nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)),
        "loadavg": _read("/proc/loadavg"), "iperf3": iperf3_version,
    })
    if settings is not None:
        server_cpus, client_cpus = pin_sets(settings.pin)
        env["pin"] = {"mode": settings.pin, "server_cpus": server_cpus, "client_cpus": client_cpus}
    return env


def pin_sets(pin: str) -> tuple[list[int] | None, list[int] | None]:
    """(server cores, load generator cores) for a pin mode; None: not pinned."""
    cpus = _usable_cpus()
    if pin == "same":
        return [cpus[0]], [cpus[0]]
    if pin == "split":
        return [cpus[0]], [cpus[1]]
    return None, None


def pinned(cpus: list[int] | None) -> Callable[[], None] | None:
    """A `preexec_fn` that pins a child to `cpus` before it runs a line (None: not pinned)."""
    if cpus is None:
        return None

    def pin() -> None:
        os.sched_setaffinity(0, cpus)

    return pin


def affinity(pid: int) -> list[int] | None:
    """The cores a process may run on, as the kernel says (None: it is gone)."""
    try:
        return sorted(os.sched_getaffinity(pid))
    except OSError:
        return None


__all__ = ["affinity", "environment", "iperf3_path", "pin_sets", "pinned"]
