"""netlab check: the checker against netlab's own servers, a good student server, one broken
student server per failure class (tests/students/), servers that hang, and clients.

The student checks are slow one by one (a failing case costs its timeout), so they all run
at once, in one trio run shared by the module (`student_reports`), and each test reads its
report. Timeouts are per case and generous; no assertion is about how fast anything was.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
from helpers import assert_no_traceback, invoke

from netlab.check import CheckReport, CheckSettings, check_client, check_server, junit, select_cases
from netlab.check.judge import RequestFormat, numbers_in, sum_matches, truncation
from netlab.check.procnet import parse_inet_table, parse_unix_table
from netlab.check.isolate import isolation
from netlab.errors import UsageError
from netlab.runner import Server

STUDENTS = Path(__file__).parent / "students"
PYTHON = sys.executable


def student(name: str, *args: str) -> str:
    return " ".join([PYTHON, str(STUDENTS / f"{name}.py"), *args])


# -- judging, without sockets ----------------------------------------------------------------


@pytest.mark.parametrize("reply", [b"5\n", b"5", b"5.0\n", b"Sum: 5", b"The result: 2 + 3 = 5.0\n"])
def test_lenient_replies_pass(reply: bytes) -> None:
    assert sum_matches(reply, "2", "3")


@pytest.mark.parametrize("reply", [b"6\n", b"", b"ERR\n", b"5 (2 + 3)\n"])
def test_wrong_replies_fail(reply: bytes) -> None:
    assert not sum_matches(reply, "2", "3")


def test_decimals_within_tolerance_integers_exact() -> None:
    assert sum_matches(b"0.30000000000000004\n", "0.1", "0.2")
    big = ("12345678901234567890", "98765432109876543210")
    assert sum_matches(b"111111111011111111100\n", *big, exact=True)
    assert not sum_matches(repr(float(big[0]) + float(big[1])).encode(), *big, exact=True)


def test_truncation_names_the_read_size() -> None:
    request = b"12345678901234567890 98765432109876543210\n"
    assert truncation(request, b"12345678902222222222\n") is None or truncation(request, b"x") is None
    cut = request[:32]
    a, b = numbers_in(cut)
    assert truncation(request, str(a + b).encode()) == 32


def test_request_format_needs_both_numbers() -> None:
    assert RequestFormat("{a},{b}").render("2", "3") == b"2,3"
    with pytest.raises(UsageError):
        RequestFormat("{a}")


def test_proc_tables_parse() -> None:
    tcp = ["   0: 0100007F:C350 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1",
           "   1: 0100007F:C350 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 4243 1"]
    (sock,) = parse_inet_table(tcp, "tcp4")
    assert (sock.host, sock.port, sock.inode) == ("127.0.0.1", 50000, 4242)
    assert str(sock.client_address()) == "tcp4:127.0.0.1:50000"
    tcp6 = ["   0: 00000000000000000000000000000000:C350 00000000000000000000000000000000:0000 0A 0:0 0:0 0 0 0 7 1"]
    (wild,) = parse_inet_table(tcp6, "tcp6")
    assert wild.host == "::" and str(wild.client_address()) == "tcp6:[::1]:50000"
    unix = ["0000000000000000: 00000002 00000000 00010000 0001 01 99 /tmp/s.sock",
            "0000000000000000: 00000002 00000000 00000000 0002 01 98 @name",
            "0000000000000000: 00000003 00000000 00000000 0001 03 97 /tmp/s.sock",
            "0000000000000000: 00000002 00000000 00000000 0002 01 96",
            "0000000000000000: 00000002 00000000 00000000 0005 01 95 /tmp/not-listening.sock"]
    assert [(s.kind, s.path) for s in parse_unix_table(unix)] == [("unix", "/tmp/s.sock"), ("unix-dgram", "@name")]


def test_unknown_case_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no case or group 'sum.huge'"):
        select_cases("sum", "assignment", ["sum.huge"])
    assert {c.id for c in select_cases("sum", "assignment", ["framing"])} == {"framing.split", "framing.long"}


def test_junit_xml_shape() -> None:
    from netlab.check import CaseResult

    report = CheckReport("x", "sum", "assignment", None, [
        CaseResult("sum.small", "sum", "pass", "ok", 0.1), CaseResult("framing.split", "framing", "fail", "reads once", 0.2),
        CaseResult("resources.idle_cpu", "resources", "skip", "needs --run", 0.0),
        CaseResult("reach.ipv6", "reach", "warn", "IPv4 only", 0.0)])
    suite = ET.fromstring(junit([report])).find("testsuite")
    assert suite is not None and suite.get("tests") == "4" and suite.get("failures") == "1"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert cases["framing.split"].find("failure").get("message") == "reads once"  # type: ignore[union-attr]
    assert cases["framing.split"].get("classname") == "netlab.check.framing"
    assert cases["resources.idle_cpu"].find("skipped") is not None
    assert cases["sum.small"].find("failure") is None and cases["reach.ipv6"].find("failure") is None


# -- netlab's own servers ----------------------------------------------------------------------


@pytest.mark.parametrize("service", ["sum", "echo"])
async def test_netlab_passes_its_own_profile_everywhere(start_server, transport_name: str, service: str) -> None:
    server: Server = await start_server(service)
    report = await check_server(server.address, settings=CheckSettings(service=service, profile="netlab",
                                                                       timeout=3.0))
    assert report.failed == [], [c for c in report.cases if c.outcome == "fail"]
    assert report.summary["pass"] >= 7


async def test_netlab_passes_the_assignment_on_tcp(netlab_server) -> None:
    server: Server = await netlab_server("sum", "tcp:0.0.0.0:0")  # reachable from other machines
    address = f"tcp:127.0.0.1:{server.address.port}"
    report = await check_server(address, settings=CheckSettings(timeout=3.0))
    assert report.failed == [], [c for c in report.cases if c.outcome == "fail"]
    assert report.outcome("reach.interfaces") == "pass"
    assert "0.0.0.0" in next(c.detail for c in report.cases if c.id == "reach.interfaces")


async def test_nothing_listening_skips_the_rest(netlab_dir: Path) -> None:
    report = await check_server(f"unix:{netlab_dir}/nobody.sock", settings=CheckSettings(timeout=2.0))
    assert report.failed == ["connect"]
    assert {c.outcome for c in report.cases[1:]} == {"skip"}


# -- student servers: all checked at once ------------------------------------------------------

#: student -> (extra settings, the cases it must fail: exactly these, words each failure names)
EXPECTED: dict[str, tuple[dict[str, object], dict[str, str]]] = {
    "sum_server": ({}, {}),
    "udp_sum_server": ({}, {}),  # found on its udp socket; datagram cases run, stream-only ones skip
    "single_recv": ({}, {"framing.split": "reads once"}),
    "recv16": ({}, {"framing.split": "reads once", "sum.large": "recv(16)", "framing.long": "recv(16)"}),
    "one_client": ({}, {"clients.sequential": "stopped accepting", "clients.concurrent": "", "survives.bad_input": "",
                        "survives.disconnect": "one client"}),
    "closes_listener": ({}, {"clients.sequential": "stopped accepting", "clients.concurrent": "no longer listens",
                             "survives.bad_input": "no longer listens", "survives.disconnect": "no longer listens"}),
    "never_closes": ({}, {"close.on_eof": "never closes"}),
    "dies_on_bad_input": ({}, {"survives.bad_input": "ValueError", "survives.disconnect": "ValueError"}),
    "spins": ({"timeout": 4.0}, {"close.on_eof": "recv() returns b''", "resources.idle_cpu": "busy loop"}),
    "localhost_only": ({}, {"reach.interfaces": "loopback only"}),
    "hardcoded_ip": ({}, {"connect": "Cannot assign requested address"}),
    "banner": ({}, {"protocol.banner": "Welcome"}),
    "float_result_text": ({}, {"sum.large": "floats"}),
    "sum_colon_no_newline": ({}, {}),
    "comma": ({"request": "{a},{b}"}, {}),
    "json_array": ({"request": "auto"}, {}),
}
#: servers that hang in one way or another: each case costs at most its timeout
HANGING = ["never_replies", "never_accepts", "spins_forever", "exits_at_once"]
HANG_TIMEOUT = 1.0


@pytest.fixture(scope="module")
def student_reports() -> Iterator[dict[str, tuple[CheckReport, bool]]]:
    """Every student checked at once: name -> (report, finished within its time budget)."""
    reports: dict[str, tuple[CheckReport, bool]] = {}
    at_once = trio.CapacityLimiter(6)  # a loaded 2-core machine: not every program at the same time

    async def one(name: str, settings: CheckSettings, budget: float) -> None:
        async with at_once:
            with trio.move_on_after(budget) as scope:
                report = await check_server(run=student(name, "0"), settings=settings)
        reports[name] = (report, not scope.cancelled_caught)

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for name, (extra, _) in EXPECTED.items():
                settings = CheckSettings(**{"timeout": 3.0, "idle_window": 0.5, **extra})  # type: ignore[arg-type]
                nursery.start_soon(one, name, settings, 240.0)  # closes_listener: ~6 s a case, 19 cases
            for name in HANGING:
                # a server spinning at 100 % takes a core for as long as it is checked: fewer cases
                only = ("connect", "sum.small", "clients", "resources") if name == "spins_forever" else ()
                settings = CheckSettings(timeout=HANG_TIMEOUT, idle_window=0.5, only=only)
                cases = select_cases("sum", "assignment")
                # the sum of the case timeouts, their extra time, and the start-up a --run allows
                budget = sum(HANG_TIMEOUT + c.extra(settings) + 1.0 for c in cases) + settings.startup
                nursery.start_soon(one, name, settings, budget)

    trio.run(main)
    yield reports


@pytest.mark.parametrize("name", list(EXPECTED))
def test_student_fails_exactly_its_bug(student_reports, name: str) -> None:
    report, finished = student_reports[name]
    assert finished
    wanted = EXPECTED[name][1]
    failed = {c.id: c.detail for c in report.cases if c.outcome == "fail"}
    assert set(failed) == set(wanted), "\n".join(f"{c.id}: {c.outcome}: {c.detail}" for c in report.cases)
    for case_id, words in wanted.items():
        assert words in failed[case_id], failed[case_id]


def test_auto_finds_the_json_format(student_reports) -> None:
    report, _ = student_reports["json_array"]
    assert report.request == repr('["{a}", "{b}"]')
    assert "understood requests written as" in report.cases[0].detail


def test_reach_is_checked_from_a_second_namespace(student_reports) -> None:
    good, _ = student_reports["sum_server"]
    local, _ = student_reports["localhost_only"]
    good_detail = next(c.detail for c in good.cases if c.id == "reach.interfaces")
    local_detail = next(c.detail for c in local.cases if c.id == "reach.interfaces")
    if not isolation().available:
        assert "judged from the bound address" in good_detail and "judged from the bound address" in local_detail
        return
    assert "checked for real" in good_detail and "reached 10.199.0.1" in good_detail
    assert "checked for real" in local_detail and "could not reach 10.199.0.1" in local_detail


def test_a_crash_is_recorded_and_the_program_restarted(student_reports) -> None:
    report, _ = student_reports["dies_on_bad_input"]
    bad = next(c for c in report.cases if c.id == "input.bad")
    assert bad.outcome == "warn" and "restarted" in bad.detail
    # cases after the crash were served by a restarted program
    assert report.outcome("close.on_eof") == "pass" and report.outcome("reach.interfaces") == "pass"


def test_hard_coded_address_skips_the_rest(student_reports) -> None:
    report, _ = student_reports["hardcoded_ip"]
    assert {c.outcome for c in report.cases[1:]} == {"skip"}


@pytest.mark.parametrize("name", HANGING)
def test_no_run_hangs(student_reports, name: str) -> None:
    report, finished = student_reports[name]
    assert finished, f"{name}: the check did not finish within the sum of its case timeouts"
    if name == "exits_at_once":
        assert report.failed == ["connect"] and "sum.conf" in report.cases[0].detail
        return
    assert report.outcome("connect") == "pass"  # the kernel accepts into the backlog
    assert report.outcome("sum.small") == "fail"
    assert "no reply" in next(c.detail for c in report.cases if c.id == "sum.small")


def test_process_group_is_stopped(netlab_dir: Path) -> None:
    marker = "7777.25"  # a sleep no one else runs: found by its argument
    command = f"sleep {marker} & exec {student('sum_server', '0')}"
    report = trio.run(lambda: check_server(run=command, settings=CheckSettings(timeout=3.0, only=("sum.small",))))
    assert report.outcome("sum.small") == "pass"
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    left.append(pid)
        except OSError:
            continue
    assert left == []


# -- clients -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CLIENTS = {"sum_client": set(), "client_reads_once": {"client.split_reply"}, "client_no_timeout": {"client.no_reply"}}


@pytest.fixture(scope="module")
def client_reports() -> dict[str, CheckReport]:
    reports = {}

    async def one(name: str) -> None:
        port = _free_port()
        command = student(name, "127.0.0.1", str(port), "12", "30")
        reports[name] = await check_client(command, f"tcp:127.0.0.1:{port}", CheckSettings(timeout=4.0))

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for name in CLIENTS:
                nursery.start_soon(one, name)

    trio.run(main)
    return reports


@pytest.mark.parametrize("name", list(CLIENTS))
def test_client_fails_exactly_its_bug(client_reports, name: str) -> None:
    report = client_reports[name]
    assert set(report.failed) == CLIENTS[name], [(c.id, c.outcome, c.detail) for c in report.cases]
    assert {c.id for c in report.cases} == {"client.plain", "client.split_reply", "client.slow_reply",
                                            "client.server_closes", "client.no_reply", "client.request_end"}


def test_client_without_timeout_is_named(client_reports) -> None:
    detail = next(c.detail for c in client_reports["client_no_timeout"].cases if c.id == "client.no_reply")
    assert "no timeout" in detail


# -- the command -------------------------------------------------------------------------------


@pytest.mark.parametrize("args", [
    ["check"],
    ["check", "tcp:127.0.0.1:1", "--listen", "tcp:127.0.0.1:2"],
    ["check", "--client", "true"],
    ["check", "tcp:127.0.0.1:1", "--request", "{a}"],
    ["check", "tcp:127.0.0.1:1", "--case", "sum.huge"],
    ["check", "tcp:127.0.0.1:1", "--service", "echo", "--request", "{a},{b}"],
    ["check", "--run", "true", "a.py"],
    ["check", "nonsense"],
])
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = invoke(args)
    assert result.exit_code == 2, result.output
    assert_no_traceback(result)


def test_cli_json_and_junit(netlab_process, netlab_dir: Path) -> None:
    server = netlab_process("serve", "--transport", f"unix:{netlab_dir}/sum.sock", "--service", "sum")
    junit_file = netlab_dir / "report.xml"
    result = invoke(["check", server.listening, "--profile", "netlab", "--timeout", "3", "--json",
                     "--junit", str(junit_file)])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert set(document) >= {"target", "service", "profile", "cases", "summary"}
    assert document["summary"]["fail"] == 0 and document["service"] == "sum"
    assert document["score"] == document["max_score"] == len(document["cases"])
    for case in document["cases"]:
        assert set(case) == {"id", "group", "outcome", "detail", "seconds", "points", "max_points"}
        assert case["outcome"] in ("pass", "fail", "warn", "skip")
    assert ET.parse(junit_file).getroot().tag == "testsuites"


def test_cli_grades_a_folder() -> None:
    result = invoke(["check", "--run", f"{PYTHON} {{}} 0", "--timeout", "3", "--case", "clients",
                     str(STUDENTS / "sum_server.py"), str(STUDENTS / "one_client.py")])
    assert result.exit_code == 1, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines() if ".py" in line}
    assert any("sum_server.py" in name for name in rows) and any("one_client.py" in name for name in rows)
    assert "clients.sequential" in next(line for name, line in rows.items() if "one_client" in name)
    assert "2/2" in next(line for name, line in rows.items() if "sum_server" in name)
