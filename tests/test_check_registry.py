"""netlab check's registry, without a server: the case ids and their order, where each case
applies (decided before it runs, with the sentence a user sees), ``netlab check --list``, and
the README's case tables against the registry (a case added, renamed or moved fails here
until the README says so too).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import assert_no_traceback, invoke

from netlab.check import CASES, CLIENT_CASES, CheckSettings, case_list, select_cases
from netlab.check.context import CaseContext
from netlab.check.judge import RequestFormat
from netlab.check.procnet import ListeningSocket
from netlab.check.registry import CaseList, evaluate_skip
from netlab.transports import get_transport, parse_address

README = Path(__file__).parent.parent / "README.md"

#: the ids reports, rubrics and CI history key on, in the order they run
SERVER_IDS = [
    "connect", "sum.small", "sum.negative", "sum.decimal", "sum.large", "echo.small", "echo.binary", "echo.large",
    "framing.split", "framing.long", "lines.pipelined", "lines.crlf", "clients.sequential", "clients.concurrent",
    "protocol.banner", "input.bad", "survives.bad_input", "survives.disconnect", "close.on_eof", "reach.interfaces",
    "reach.ipv6", "resources.idle_cpu", "restart.reuse",
]
CLIENT_IDS = ["client.plain", "client.split_reply", "client.slow_reply", "client.server_closes", "client.no_reply",
              "client.lost_reply", "client.request_end"]


def test_case_ids_and_their_order_are_stable() -> None:
    assert [c.id for c in CASES] == SERVER_IDS
    assert [c.id for c in CLIENT_CASES] == CLIENT_IDS
    assert [c.id for c in select_cases("echo", "assignment")] == [
        "connect", "echo.small", "echo.binary", "echo.large", "framing.split", "framing.long", "clients.sequential",
        "clients.concurrent", "protocol.banner", "survives.bad_input", "survives.disconnect", "close.on_eof",
        "reach.interfaces", "reach.ipv6", "resources.idle_cpu", "restart.reuse"]
    assert [c.id for c in select_cases("sum", "netlab", ["lines"])] == ["lines.pipelined", "lines.crlf"]


def test_a_module_declares_its_cases_in_order_with_case() -> None:
    case = CaseList[CaseContext]()

    @case("demo.first", "first")
    async def first(ctx: CaseContext) -> tuple[str, str]:
        return "pass", "first"

    @case("demo.second", "second", on=())
    async def second(ctx: CaseContext) -> tuple[str, str]:
        return "pass", "second"

    assert [(c.id, c.group, c.run) for c in case] == [("demo.first", "demo", first), ("demo.second", "demo", second)]


def context(address: str, *, service: str = "sum", listener: ListeningSocket | None = None,
            isolated: bool = False) -> CaseContext:
    return CaseContext(parse_address(address), CheckSettings(service=service), RequestFormat("{a} {b}\n"),
                       listener=listener, isolated=isolated)


def skips(ctx: CaseContext) -> dict[str, str]:
    """The cases of the context's service that would be skipped, and their sentences."""
    found = {}
    for case in select_cases(ctx.settings.service, "netlab"):
        reason = evaluate_skip(case, ctx)
        if reason is not None:
            found[case.id] = reason
    return found


def test_over_datagrams_the_stream_and_connection_cases_are_skipped_saying_why() -> None:
    found = skips(context("udp:127.0.0.1:50000"))
    assert found == {
        "framing.split": "this transport keeps message boundaries: a request cannot arrive in pieces",
        "lines.pipelined": "pipelining is a byte-stream matter: each message here is one request",
        "protocol.banner": "a datagram server can only answer: it cannot send before a request",
        "survives.disconnect": "datagrams have no connection to leave",
        "close.on_eof": "datagrams have no connection to close",
        "reach.interfaces": "no socket listens at udp:127.0.0.1:50000 on this machine, so netlab cannot see how it "
                            "is bound (a server on another machine: if `connect` passed, it is reachable from here)",
        "resources.idle_cpu": "needs --run: netlab measures the CPU time of a program it started",
        # the first need missing is the one said: netlab did not start it
        "restart.reuse": "netlab did not start the server, so it cannot restart it (--run can)",
    }


def test_a_message_kind_names_its_own_limit_for_echo_large() -> None:
    found = skips(context("unix-seq:/tmp/netlab-check-registry.sock", service="echo"))
    assert found["echo.large"].startswith("a message carries at most ")
    assert found["echo.large"].endswith(": 1 MiB does not fit one")
    assert found["reach.ipv6"] == "a unix socket has no IP version"
    assert "protocol.banner" not in found and "close.on_eof" not in found


def test_reach_ipv6_is_skipped_for_a_socket_bound_to_one_address() -> None:
    one = ListeningSocket("tcp4", "10.1.2.3", 50000, None, 1)
    found = skips(context("tcp:10.1.2.3:50000", listener=one))
    assert found["reach.ipv6"] == "bound to 10.1.2.3:50000 only: loopback clients of either version cannot reach it"
    assert "reach.interfaces" not in found and "framing.split" not in found
    wildcard = ListeningSocket("tcp4", "0.0.0.0", 50000, None, 1)
    assert "reach.ipv6" not in skips(context("tcp:127.0.0.1:50000", listener=wildcard))


def test_client_cases_run_only_where_their_transport_allows() -> None:
    def ids(scheme: str, service: str = "sum") -> list[str]:
        return [c.id for c in CLIENT_CASES if c.applies(service, transport=get_transport(scheme))]

    assert ids("tcp") == ["client.plain", "client.split_reply", "client.slow_reply", "client.server_closes",
                          "client.no_reply", "client.request_end"]
    assert ids("tcp", "echo") == ids("tcp")[:-1]
    assert ids("udp") == ids("unix-dgram") == ["client.plain", "client.slow_reply", "client.no_reply",
                                               "client.lost_reply"]
    assert ids("unix-seq") == ["client.plain", "client.slow_reply", "client.server_closes", "client.no_reply"]


# -- netlab check --list ----------------------------------------------------------------------


def test_list_json_names_every_case_and_where_it_applies() -> None:
    result = invoke(["check", "--list", "--json"])
    assert_no_traceback(result)
    assert result.exit_code == 0, result.output
    cases = json.loads(result.output)["cases"]
    assert [c["id"] for c in cases] == SERVER_IDS + CLIENT_IDS
    by_id = {c["id"]: c for c in cases}
    assert by_id["lines.crlf"] == {"id": "lines.crlf", "group": "lines", "program": "server",
                                   "checks": "a CRLF request gets a CRLF reply", "services": ["sum"],
                                   "profiles": ["netlab"], "where": []}
    assert by_id["framing.split"]["where"] == ["byte streams"]
    assert by_id["restart.reuse"]["where"] == ["--run", "TCP", "isolation"]
    assert by_id["client.lost_reply"]["program"] == "client" and by_id["client.lost_reply"]["where"] == ["datagrams"]
    assert by_id["client.request_end"]["services"] == ["sum"]


def test_list_table_shows_every_case() -> None:
    result = invoke(["check", "--list"])
    assert result.exit_code == 0, result.output
    for entry in case_list():
        assert entry.id in result.output
    assert "sum; netlab profile; byte streams" in " ".join(result.output.split())


def test_list_takes_no_target() -> None:
    result = invoke(["check", "--list", "tcp:127.0.0.1:50000"])
    assert_no_traceback(result)
    assert result.exit_code == 2
    assert "--list goes alone" in result.output


# -- the README's tables ----------------------------------------------------------------------


def readme_check_section() -> str:
    text = README.read_text()
    start = text.index("## Checking anyone's server or client")
    return text[start:text.index("\n## ", start + 1)]


def table_ids(section: str, header: str) -> list[str]:
    """The case ids in the first column of the table under `header`, row by row, in order."""
    lines = section[section.index(header):].splitlines()[2:]
    ids: list[str] = []
    for line in lines:
        if not line.startswith("|"):
            break
        ids += re.findall(r"`([a-z0-9_.]+)`", line.split("|")[1])
    return ids


def test_readme_case_tables_are_the_registry() -> None:
    section = readme_check_section()
    assert table_ids(section, "| id | what it checks |") == [c.id for c in select_cases("sum", "assignment")]
    assert table_ids(section, "| id | what the reference does |") == CLIENT_IDS
    # the cases the sum/assignment table leaves out are named beside it
    named = set(re.findall(r"`([a-z0-9_]+\.[a-z0-9_]+)`", section))
    assert not set(SERVER_IDS) - named - {"connect"}, set(SERVER_IDS) - named


def test_readme_says_where_each_client_case_runs() -> None:
    section = readme_check_section()
    rows = {row.split("|")[1].strip(" `"): row for row in section.splitlines() if row.startswith("| `client.")}
    for case in CLIENT_CASES:
        for where in case.where():
            assert where.split(" (")[0] in rows[case.id], (case.id, where)
        if case.services != {"sum", "echo"}:
            assert all(service in rows[case.id] for service in case.services), case.id


@pytest.mark.parametrize("case_id", SERVER_IDS + CLIENT_IDS)
def test_every_case_says_what_it_checks(case_id: str) -> None:
    (entry,) = [e for e in case_list() if e.id == case_id]
    assert entry.checks and entry.group == case_id.split(".")[0]
