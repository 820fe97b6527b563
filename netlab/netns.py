"""Private network (and PID) namespaces: written once, with one privilege rule.

netlab makes namespaces for four things, all through this module::

    netlab check --run / --client   each program start in a namespace of its own, the checker's
                                    probes inside it (`netlab.check.isolate`)
    kernel mode                     loss made by nftables/tc in a private network
                                    (`netlab.experiments.kernel`, `size_limits`)
    reach.interfaces                a second namespace, linked by veth, as "another machine"

A network namespace has its own interfaces (only ``lo``, and down), its own port space and
its own TIME_WAIT table: two namespaces can each listen on 127.0.0.1:50000 at once, and a
server started in a fresh one finds no TIME_WAIT left by an earlier start. A socket opened
inside a namespace stays in it, so a checker that runs inside talks to the program inside.
A PID namespace ends every process in it when its first process exits: nothing a program
forks, ``setsid``s or daemonises outlives it. ``/proc`` is mounted again inside (``--mount-proc``)
so that process ids read there are the namespace's own.

The one privilege rule (`isolation`), decided once per process:

==========  ===================================================================================
``root``     this process has CAP_SYS_ADMIN: ``unshare --net [--pid --fork --mount-proc]``
``user``     otherwise, where the kernel allows unprivileged user namespaces:
             ``unshare --user --map-root-user ...``: "root" inside, your own uid outside, so
             the namespace gives nothing on the host that you did not have
``None``     neither (a container's seccomp profile, ``kernel.unprivileged_userns_clone=0``,
             no ``unshare``): callers run on the host and say so, or refuse with the reason
==========  ===================================================================================

Nothing here is left behind: a namespace lives as long as its processes, and the process
netlab starts in it exits when netlab's end of its stdin closes (`exit_with_parent`).
"""

from __future__ import annotations

import fcntl
import functools
import os
import shutil
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from .errors import MissingToolError, PrivilegeError

Mode = Literal["root", "user"]
CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21
#: where the programs that make namespaces live, beyond PATH (a root shell's PATH may lack sbin)
SBIN = ("/usr/sbin", "/sbin", "/usr/bin", "/bin")
#: how long the one-off probe may take
PROBE_TIMEOUT = 10.0
#: the sysctl that makes the kernel keep no TIME_WAIT sockets in a namespace
TW_BUCKETS = "/proc/sys/net/ipv4/tcp_max_tw_buckets"


@dataclass(frozen=True)
class Isolation:
    """How this process can make namespaces: `mode` root or user, or None with the reason."""

    mode: Mode | None
    detail: str

    @property
    def available(self) -> bool:
        return self.mode is not None

    def describe(self) -> str:
        """One phrase for a report: how programs were isolated, or why not."""
        if self.mode == "root":
            return "isolated: a network and PID namespace of its own (as root)"
        if self.mode == "user":
            return "isolated: a network and PID namespace of its own (in a user namespace, without root)"
        return f"not isolated: {self.detail}"


def effective_capabilities() -> int:
    """CapEff of this process, as a bit mask (0 if /proc says nothing)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        pass
    return 0


def has_capability(bit: int) -> bool:
    return bool(effective_capabilities() >> bit & 1)


def tool(name: str, package: str = "util-linux") -> str:
    """The absolute path of a program namespaces need; MissingToolError names its package."""
    path = os.pathsep.join([os.environ.get("PATH", ""), *SBIN])
    found = shutil.which(name, path=path)
    if found is None:
        raise MissingToolError(f"{name} not found on this machine: install {package} "
                               f"(e.g. `apt-get install {package}`)")
    return found


def _flags(mode: Mode, pid: bool) -> list[str]:
    flags = ["--user", "--map-root-user"] if mode == "user" else []
    flags.append("--net")
    if pid:
        flags += ["--pid", "--fork", "--mount-proc", "--kill-child"]
    return flags


def _probe(unshare: str, mode: Mode) -> str | None:
    """None if `unshare` in `mode` makes a network and PID namespace here, else why not."""
    try:
        done = subprocess.run([unshare, *_flags(mode, pid=True), "--", "true"], capture_output=True, text=True,
                              timeout=PROBE_TIMEOUT, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode == 0:
        return None
    lines = done.stderr.strip().splitlines()
    return lines[-1] if lines else f"unshare exited with status {done.returncode}"


@functools.cache
def isolation() -> Isolation:
    """The one privilege rule: root (CAP_SYS_ADMIN), else a user namespace, else None.
    Probed once per process (each probe starts a real namespace and checks that it works)."""
    try:
        unshare = tool("unshare")
    except MissingToolError as exc:
        return Isolation(None, str(exc))
    if has_capability(CAP_SYS_ADMIN):
        problem = _probe(unshare, "root")
        if problem is None:
            return Isolation("root", "root")
        return Isolation(None, f"this process has CAP_SYS_ADMIN but unshare failed ({problem})")
    problem = _probe(unshare, "user")
    if problem is None:
        return Isolation("user", "user namespaces")
    return Isolation(None, f"not root, and this kernel refuses unprivileged user namespaces ({problem}); run as "
                           f"root, or allow them (sysctl kernel.unprivileged_userns_clone=1 / "
                           f"kernel.apparmor_restrict_unprivileged_userns=0)")


def require() -> Isolation:
    """`isolation()`, or PrivilegeError saying why namespaces cannot be made here."""
    found = isolation()
    if found.mode is None:
        raise PrivilegeError(f"cannot make a private network namespace: {found.detail}")
    return found


def unshare_command(argv: Sequence[str], *, pid: bool = False) -> list[str]:
    """`argv` run in a fresh network namespace (and, with `pid`, a PID namespace with /proc
    mounted again, whose first process is `argv`). Raises PrivilegeError / MissingToolError."""
    mode = require().mode
    assert mode is not None  # require() raised otherwise
    return [tool("unshare"), *_flags(mode, pid), "--", *argv]


def current_netns() -> str:
    """This process's network namespace, as ``net:[INODE]``."""
    return os.readlink("/proc/self/ns/net")


def refuse_host(parent_netns: str) -> None:
    """Raise PrivilegeError unless this process is in a network namespace other than
    `parent_netns` (code that changes the network set-up never runs on the host's)."""
    if current_netns() == parent_netns:
        raise PrivilegeError("refusing to touch the network set-up: this process is not in a private network "
                             "namespace (run it through `unshare --net`)")


# SIOCGIFFLAGS / SIOCSIFFLAGS and IFF_UP, from <linux/sockios.h> and <net/if.h>
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1


def loopback_up() -> None:
    """Bring ``lo`` up in this (fresh) namespace, where it starts down: until then every
    connect to 127.0.0.1 fails with ENETUNREACH. Needs CAP_NET_ADMIN in the namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock.fileno(), _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock.fileno(), _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


_SIOCSIFMTU = 0x8922


def set_mtu(interface: str, mtu: int) -> None:
    """Set an interface's MTU in this (private) namespace, e.g. ``lo`` to 1500 so that a large
    datagram leaves as IP fragments, as on a real link. Needs CAP_NET_ADMIN in the namespace."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        fcntl.ioctl(sock.fileno(), _SIOCSIFMTU, struct.pack("16si12x", interface.encode(), mtu))


def write_sysctl(path: str, value: int) -> str | None:
    """Write a per-namespace sysctl; None if it worked, else why not."""
    try:
        with open(path, "w") as f:
            f.write(f"{value}\n")
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    return None


def read_sysctl(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def exit_with_parent(stream: int = 0, before: Callable[[], object] | None = None) -> None:
    """Exit this process as soon as `stream` (default: stdin) reaches end of file: the parent
    closed its end, or died; `before` runs first (what a parent that died cannot clean up). In
    a PID namespace whose first process this is, every process in it dies with it. (Not
    PR_SET_PDEATHSIG: that fires when the parent *thread* ends, and trio starts processes from
    worker threads that end after 10 s idle.)"""

    def watch() -> None:
        while True:
            try:
                if not os.read(stream, 4096):
                    break
            except InterruptedError:
                continue
            except OSError:
                break
        try:
            if before is not None:
                before()
        finally:
            os._exit(1)

    threading.Thread(target=watch, name="netlab-parent-watch", daemon=True).start()


def other_processes() -> list[int]:
    """Every live process this process can see, but itself (in a PID namespace with its own
    /proc, whose first process this is: everything the programs it ran left behind)."""
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                text = f.read()
            state = text[text.rindex(")") + 2:].split()[0]
        except (OSError, ValueError, IndexError):
            continue
        if state not in ("Z", "X"):
            found.append(int(entry))
    return sorted(found)


def command_line(pid: int, limit: int = 80) -> str:
    """A process's command line, for a report (cut to `limit` characters)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            text = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return "?"
    return text if len(text) <= limit else text[:limit - 1] + "…"


def python_command(code: str) -> list[str]:
    """This Python running `code` (-c, so the package is not imported twice as __main__)."""
    return [sys.executable, "-c", code]


__all__ = ["CAP_NET_ADMIN", "CAP_SYS_ADMIN", "TW_BUCKETS", "Isolation", "command_line", "current_netns",
           "effective_capabilities", "exit_with_parent", "has_capability", "isolation", "loopback_up",
           "other_processes", "python_command", "read_sysctl", "refuse_host", "require", "set_mtu", "tool",
           "unshare_command", "write_sysctl"]
