"""The soak test, short (the long one is `make soak`): every transport at once, a tenth of
the clients killed mid-stream; nothing lost on a reliable transport, nothing leaked."""

from __future__ import annotations

from netlab.experiments.soak import SoakSettings, main, render, run_soak


async def test_soak_short() -> None:
    settings = SoakSettings(clients=40, messages=100, kill=0.1, seed=1)
    result = await run_soak(settings)
    text = render(result)
    assert result.ok, text
    assert sum(result.faults.values()) == 4, text
    assert sum(t.killed for t in result.transports) == 4, text
    assert result.reliable_lost == 0, text
    assert result.unexplained_udp_losses == 0, text
    assert result.leaks == [], text
    assert all(result.fresh_clients.values()), text
    assert len(result.fresh_clients) == 2 * len(settings.transports)
    for figures in result.transports:
        assert figures.clients > 0
        assert figures.errors == [], text
        assert figures.mismatched == 0, text
        if figures.reliable:
            assert figures.answered == figures.sent, text
        else:
            assert figures.answered + figures.lost == figures.sent, text
    sent = sum(t.sent for t in result.transports)
    assert 0.9 * 40 * 100 <= sent <= 40 * 100  # all but the killed clients' rest
    assert "messages lost on reliable transports: 0" in text
    assert "leaks: none" in text


def test_soak_command_line(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["--clients", "7", "--messages", "20", "--transports", "tcp,unix-dgram", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("netlab soak: 7 clients x 20 messages over 2 transports")
    assert "duration" in out and "OK" in out
