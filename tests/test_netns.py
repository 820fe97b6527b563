"""netlab.netns: one privilege rule, and namespaces that work and leave nothing behind."""

from __future__ import annotations

import subprocess
import sys

import pytest

from netlab import netns
from netlab.errors import PrivilegeError

UNAVAILABLE = netns.isolation().detail if not netns.isolation().available else None
needs_namespaces = pytest.mark.skipif(UNAVAILABLE is not None,
                                      reason=f"needs root or user namespaces: {UNAVAILABLE}")


def _rule(monkeypatch: pytest.MonkeyPatch, *, caps: bool, root_ok: bool, user_ok: bool) -> netns.Isolation:
    netns.isolation.cache_clear()
    monkeypatch.setattr(netns, "has_capability", lambda bit: caps)
    monkeypatch.setattr(netns, "_probe", lambda unshare, mode: None if (root_ok if mode == "root" else user_ok)
                        else f"unshare: {mode} refused (test)")
    try:
        return netns.isolation()
    finally:
        netns.isolation.cache_clear()


def test_the_one_privilege_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _rule(monkeypatch, caps=True, root_ok=True, user_ok=False).mode == "root"
    assert _rule(monkeypatch, caps=False, root_ok=False, user_ok=True).mode == "user"
    none = _rule(monkeypatch, caps=False, root_ok=False, user_ok=False)
    assert none.mode is None and "user namespaces" in none.detail and "user refused (test)" in none.detail
    assert none.describe().startswith("not isolated: ")
    broken_root = _rule(monkeypatch, caps=True, root_ok=False, user_ok=True)
    assert broken_root.mode is None and "root refused" in broken_root.detail


def test_no_namespaces_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(netns, "isolation", lambda: netns.Isolation(None, "refused here (test)"))
    with pytest.raises(PrivilegeError, match="cannot make a private network namespace: refused here"):
        netns.unshare_command(["true"])


@needs_namespaces
@pytest.mark.process
def test_a_fresh_namespace_has_its_own_loopback_and_time_wait_table() -> None:
    code = ("from netlab import netns; import socket; netns.loopback_up(); "
            "print(netns.write_sysctl(netns.TW_BUCKETS, 0), netns.read_sysctl(netns.TW_BUCKETS)); "
            "s = socket.create_server(('127.0.0.1', 0)); c = socket.create_connection(s.getsockname()); "
            "print('connected'); print(netns.current_netns())")
    done = subprocess.run(netns.unshare_command([sys.executable, "-c", code], pid=True), capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    first, second, inside = done.stdout.splitlines()
    assert first == "None 0" and second == "connected"
    assert inside != netns.current_netns()  # the host's namespace was never touched


@needs_namespaces
@pytest.mark.process
def test_nothing_outlives_the_pid_namespace(tmp_path) -> None:
    """A daemon (fork + setsid) started inside dies with the namespace's first process."""
    marker = tmp_path / "alive"
    daemon = (f"import os, time\nif os.fork() == 0:\n    os.setsid()\n    while True:\n"
              f"        open({str(marker)!r}, 'a').write('x'); time.sleep(0.05)\n")
    code = f"import subprocess, sys, time; subprocess.run([sys.executable, '-c', {daemon!r}]); time.sleep(0.3)"
    done = subprocess.run(netns.unshare_command([sys.executable, "-c", code], pid=True), timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0 and marker.exists()
    size = marker.stat().st_size
    import time as _time

    deadline = _time.monotonic() + 1.5
    while _time.monotonic() < deadline:  # give a survivor every chance to show itself
        _time.sleep(0.2)
        if marker.stat().st_size != size:
            break
        size = marker.stat().st_size
    assert marker.stat().st_size == size, "the daemon outlived its PID namespace"


def test_refuse_host_refuses_the_hosts_namespace() -> None:
    with pytest.raises(PrivilegeError, match="not in a private network namespace"):
        netns.refuse_host(netns.current_netns())
