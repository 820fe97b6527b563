"""The pytest plugin, used the way a user would: in a test file outside this project."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

USER_TESTS = '''
import pytest

from netlab.errors import TimeoutError
from netlab.runner import open_client


async def test_sum_over_udp(netlab_server):
    server = await netlab_server("sum", "udp:127.0.0.1:0")
    async with open_client(server.address, "sum") as client:
        assert await client.request(b"2 3") == b"5"


async def test_sum_survives_delay(netlab_server, netlab_relay):
    server = await netlab_server("sum", "unix:{dir}/sum.sock")
    relay = await netlab_relay(server, delay=0.005)
    async with open_client(relay.address, "sum") as client:
        assert await client.request(b"2 3") == b"5\\n"
    assert relay.stats.forward.passed == 1


async def test_relay_loses_datagrams(netlab_server, netlab_relay):
    server = await netlab_server("echo", "unix-dgram:{dir}/echo.sock")
    relay = await netlab_relay(server, loss=1.0)
    async with open_client(relay.address, "echo") as client:
        with pytest.raises(TimeoutError):
            await client.request(b"lost", timeout=0.2)
    assert relay.stats.forward.dropped == 1
    assert server.stats.datagrams == 0
'''


@pytest.mark.process
def test_plugin_fixtures_work_in_a_test_written_outside_the_project(pytester) -> None:
    pytester.makeini("[pytest]\ntrio_mode = true\n")
    pytester.makepyfile(test_user=USER_TESTS)
    # a new process: the plugin must come from the installed entry point, not from conftest
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
