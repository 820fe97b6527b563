"""The plan of a run: which transports run, against whom, how often, and which do not and
why. `netlab bench` counts its progress bar from the plan and runs it, so the two cannot
disagree."""

from __future__ import annotations

from dataclasses import dataclass

from ..transports import COMPARE_SCHEMES, Transport, get_transport, parse_address
from .modes import BenchSettings, Measure

#: the transports iperf3 runs on (stream mode, when installed), and the host it binds there
IPERF3_HOSTS = {"tcp": "127.0.0.1", "tcp6": "::1"}
IPERF3_MISSING = {"transport": "iperf3", "reason": "iperf3 is not installed (apt-get install iperf3): no iperf3 figure"}


def transport_named(name: str) -> Transport:
    """The transport of one of the compared schemes."""
    return get_transport(parse_address(COMPARE_SCHEMES[name].format(dir="/tmp")).scheme)


@dataclass(frozen=True)
class Leg:
    """One transport's part of a run."""

    transport: str
    encrypted: bool  # the servers need a certificate
    measure: Measure
    contenders: tuple[str, ...]  # the servers, and iperf3 when it runs too
    levels: tuple[int | None, ...]  # one round of repeats per level (None: the mode has no levels)
    repeats: int
    iperf3_host: str | None = None
    #: then each server alone, on a fresh server, holding idle connections
    hold: Measure | None = None
    holders: tuple[str, ...] = ()

    @property
    def runs(self) -> int:
        """Load generator (or iperf3) runs in this leg."""
        return len(self.contenders) * len(self.levels) * self.repeats + (len(self.holders) if self.hold else 0)


@dataclass(frozen=True)
class Plan:
    legs: tuple[Leg, ...]
    skipped: tuple[dict[str, str], ...]  # {"transport", "reason"}: what does not run, and why

    @property
    def runs(self) -> int:
        """Progress ticks of the run: one per load generator (or iperf3) run."""
        return sum(leg.runs for leg in self.legs)


def plan(settings: BenchSettings, *, iperf3_installed: bool) -> Plan:
    """The plan of `settings` on this machine (`iperf3_installed`: whether iperf3 can run)."""
    mode = settings.bench_mode
    legs: list[Leg] = []
    skipped: list[dict[str, str]] = []
    for name in settings.transports:
        transport = transport_named(name)
        why = mode.why_not(transport)
        if why is not None:
            skipped.append({"transport": name, "reason": why})
            continue
        contenders, host = settings.servers, None
        if mode.iperf3 and settings.iperf3 and name in IPERF3_HOSTS:
            if iperf3_installed:
                contenders, host = (*contenders, "iperf3"), IPERF3_HOSTS[name]
            elif IPERF3_MISSING not in skipped:
                skipped.append(dict(IPERF3_MISSING))
        holds = mode.hold is not None and settings.hold > 0 and transport.connected
        legs.append(Leg(name, transport.encrypted, mode.measure_on(transport), contenders,
                        settings.levels if mode.levels else (None,), settings.repeats, host,
                        hold=mode.hold if holds else None, holders=settings.servers if holds else ()))
    return Plan(tuple(legs), tuple(skipped))


__all__ = ["IPERF3_HOSTS", "Leg", "Plan", "plan", "transport_named"]
