"""The processes of a run, one at a time: a server as it started (and how to stop it),
how the load generator reaches it, the certificate every server of an encrypted transport
presents, and one run of the load generator or of iperf3."""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

from ..errors import BenchError
from ..transports import get_transport, parse_address
from .contract import LoadResult, LoadSpec, TargetSpec, WireSockaddr
from .machine import affinity, pin_sets, pinned
from .modes import BenchSettings


@dataclass
class ServerProcess:
    name: str
    proc: subprocess.Popen[bytes]
    address: str  # as the server printed it
    target: TargetSpec  # what the load generator connects to
    log: Path
    #: the server forks a process per client (socat): they are stopped with it, as a group
    group: bool = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise BenchError(f"the {self.name} server exited ({self.proc.returncode}): {tail(self.log)}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.group:  # its children outlive it otherwise (a UDP one never sees an end)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def tail(path: Path, lines: int = 3) -> str:
    """The last lines of a server's stderr log, on one line."""
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(text[-lines:]) or "(nothing on stderr)"


def loadgen_target(address_text: str) -> TargetSpec:
    """How the load generator reaches a server: family, socket type, sockaddr; for an
    encrypted transport also ``tls``: the CA file the server's bound address names
    (``?ca=PATH``) and the host name to check its certificate against."""
    address = parse_address(address_text)
    transport = get_transport(address.scheme)
    sockaddr: WireSockaddr
    if address.is_unix:
        unix = address.unix_sockaddr()
        sockaddr = unix.decode("utf-8", "surrogateescape") if isinstance(unix, bytes) else unix
        family = socket.AF_UNIX
    else:
        family = socket.AF_INET6 if ":" in (address.host or "") else socket.AF_INET
        assert address.host is not None and address.port is not None  # a bound inet address has both
        sockaddr = [address.host, address.port]
    target: TargetSpec = {"family": int(family), "type": int(transport.socktype), "address": sockaddr}
    if transport.encrypted:
        ca = address.str_option("ca")
        if ca is None:
            raise BenchError(f"{address_text}: the server printed no ?ca=FILE: the load generator cannot "
                             f"verify its certificate")
        target["tls"] = {"ca": ca, "server_hostname": address.host}
    return target


def certificate_options(directory: Path) -> str:
    """``?cert=FILE&key=FILE&ca=FILE`` for the servers of an encrypted transport: a throwaway
    CA and one certificate from it (for localhost, 127.0.0.1 and ::1), made once in
    `directory` and presented by every server of the run, so their handshakes cost the same."""
    files = {name: directory / f"{name}.pem" for name in ("cert", "key", "ca")}
    if not all(path.is_file() for path in files.values()):
        import trustme

        directory.mkdir(parents=True, exist_ok=True)
        authority = trustme.CA(organization_name="netlab bench throwaway CA")
        leaf = authority.issue_cert("localhost", "127.0.0.1", "::1")
        authority.cert_pem.write_to_path(str(files["ca"]))
        leaf.private_key_pem.write_to_path(str(files["key"]))
        files["cert"].write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
    return "?" + "&".join(f"{name}={urllib.parse.quote(str(path))}" for name, path in files.items())


def run_loadgen(spec: LoadSpec, settings: BenchSettings, *, timeout: float) -> LoadResult:
    """Run the load generator once; its JSON result (raises BenchError on failure)."""
    _, client_cpus = pin_sets(settings.pin)
    argv = [sys.executable, "-m", "netlab.bench.loadgen", json.dumps(spec)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            preexec_fn=pinned(client_cpus), text=True)
    cores = affinity(proc.pid)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise BenchError(f"the load generator did not finish within {timeout:.0f} s") from None
    lines = out.strip().splitlines()
    try:
        said = json.loads(lines[-1])
    except (IndexError, json.JSONDecodeError):
        raise BenchError(f"the load generator failed: {(err.strip().splitlines() or ['no output'])[-1]}") from None
    if "error" in said:  # a LoadFailure
        raise BenchError(said["error"])
    result: LoadResult = said
    result["client_affinity"] = cores
    return result


def run_iperf3(settings: BenchSettings, iperf3: str, host: str) -> LoadResult:
    """One iperf3 TCP run on loopback (server and client pinned like the others)."""
    server_cpus, client_cpus = pin_sets(settings.pin)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([iperf3, "-s", "-1", "-B", host, "-p", str(port), "--forceflush"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              preexec_fn=pinned(server_cpus))
    try:
        assert server.stdout is not None
        give_up = time.monotonic() + 10
        said = b""
        fd = server.stdout.fileno()
        while b"listening" not in said:  # "Server listening on PORT" once it listens
            ready, _, _ = select.select([fd], [], [], max(0.0, give_up - time.monotonic()))
            chunk = os.read(fd, 4096) if ready else b""
            if not chunk:
                raise BenchError(f"iperf3 -s did not start: {said.decode(errors='replace').strip()}")
            said += chunk
        seconds = max(1, round(settings.duration))
        argv = [iperf3, "-c", host, "-p", str(port), "-t", str(seconds), "-J"]
        if settings.warmup > 0:
            argv += ["-O", str(max(1, math.ceil(settings.warmup)))]
        client = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + settings.warmup + 30,
                                preexec_fn=pinned(client_cpus))
        try:
            data = json.loads(client.stdout)
        except json.JSONDecodeError:
            raise BenchError(f"iperf3 -c failed: {client.stderr.strip() or client.stdout.strip()}") from None
        if data.get("error"):
            raise BenchError(f"iperf3: {data['error']}")
        received = data["end"]["sum_received"]
        cpu = data["end"].get("cpu_utilization_percent", {})
        return {"bytes": received["bytes"], "elapsed": received["seconds"], "count": 0,
                "bits_per_second": received["bits_per_second"],
                "client_cpu": cpu.get("host_total", 0) / 100 * received["seconds"],
                "server_cpu": cpu.get("remote_total", 0) / 100 * received["seconds"],
                "iperf3_seconds": seconds}
    finally:
        server.kill()
        server.wait()
        if server.stdout is not None:
            server.stdout.close()


__all__ = ["ServerProcess", "certificate_options", "loadgen_target", "run_iperf3", "run_loadgen", "tail"]
