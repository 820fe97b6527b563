"""socat as a baseline relay of ``netlab bench relay`` (``LISTEN,fork``: a process per client)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from ..errors import BenchError
from ..transports import get_transport, parse_address
from .contract import TargetSpec, socket_address
from .machine import pin_sets, pinned
from .modes import BenchSettings
from .processes import ServerProcess, loadgen_target, tail
from .procfs import udp_socket_state


def socat_path() -> str | None:
    return shutil.which("socat")


def spawn_socat(path: str | None, address_text: str, to_text: str, settings: BenchSettings,
                directory: Path) -> Callable[[], ServerProcess]:
    """socat as a relay (``LISTEN,fork``: a process per client). It prints no address, so the
    port is chosen here (bound and released: a race no other user of this machine's
    loopback is likely to win), and it is ready once it accepts (or, UDP, once bound).
    `path`: the socat program (None: not installed). A transport socat cannot relay says
    so whether socat is installed or not."""
    address, to = parse_address(address_text), parse_address(to_text)
    transport = get_transport(address.scheme)
    if transport.socat is None or to.scheme != address.scheme:
        raise BenchError(f"socat has no fork mode that passes replies back on {address.scheme}: not run")
    if path is None:
        raise BenchError("socat is not installed (apt-get install socat): no socat figure")
    listen_type, connect_type, options = transport.socat
    if address.is_unix:
        assert address.path is not None and to.path is not None
        extra = f",{options}" if options else ""
        listen, connect = f"{listen_type}:{address.path},fork{extra}", f"{connect_type}:{to.path}{extra}"
        bound = address_text
    else:
        family = transport.family or socket.AF_INET
        kind = transport.socktype
        with socket.socket(family, kind) as probe:
            probe.bind((address.host, 0))
            port = probe.getsockname()[1]
        host = f"[{address.host}]" if family == socket.AF_INET6 else address.host
        listen = f"{listen_type}:{port},bind={host},reuseaddr,fork"
        connect = f"{connect_type}:{host}:{to.port}"
        bound = f"{address.scheme}:{host}:{port}"
    log = directory / "stderr.log"
    server_cpus, _ = pin_sets(settings.pin)
    with open(log, "wb") as err:
        proc = subprocess.Popen([path, listen, connect], stdout=subprocess.DEVNULL, stderr=err,
                                stdin=subprocess.DEVNULL, preexec_fn=pinned(server_cpus), cwd=str(directory),
                                start_new_session=True)  # a group of its own: its children stop with it
    target = loadgen_target(bound)

    def ready() -> ServerProcess:
        give_up = time.monotonic() + 20
        while time.monotonic() < give_up and proc.poll() is None:
            if _socat_listening(target):
                return ServerProcess("socat", proc, bound, target, log, group=True)
            time.sleep(0.02)
        proc.kill()
        proc.wait()
        raise BenchError(f"socat did not start on {bound}: {tail(log)}")

    return ready


def _socat_listening(target: TargetSpec) -> bool:
    sockaddr = socket_address(target["address"])
    if target["type"] == socket.SOCK_DGRAM:
        return not isinstance(sockaddr, str) and udp_socket_state(target["family"], sockaddr) is not None
    with socket.socket(target["family"], target["type"]) as probe:
        try:
            probe.connect(sockaddr)
        except OSError:
            return False
    return True


__all__ = ["socat_path", "spawn_socat"]
