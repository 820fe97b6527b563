"""What `netlab compare`'s figures say: the JSON document (`report`, in iperf3's shape), the
plot (a colour per transport, a line style per service: `series_style`), the
boundaries cells and the sentences printed under the tables (`boundaries_note`,
`conclusions`, from what the impairments predict: `expectations`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..impair.decisions import Impairments
from ..impair.kernel import KernelImpairments
from ..results import environment
from ..transports import COMPARE_SCHEMES, get_transport
from .compare_types import CompareSettings, TransportResult
from .iperf3json import compare_document


def report(settings: CompareSettings, results: Sequence[TransportResult], error: str | None = None) -> dict[str, Any]:
    """The results in iperf3's ``-J`` shape all the way down (`netlab.experiments.iperf3json`):
    one stream per (transport, service); netlab's own figures in ``start.settings``,
    ``start.environment`` and ``end.results``."""
    return compare_document(settings, results, {"environment": environment(), "settings": settings.as_dict()},
                            error)


#: compare's plot: one colour per transport (tab10 has ten; there are eight), one line style per service
SERVICE_STYLES = {"echo": "-", "sum": "--"}


def series_style(transport: str, service: str) -> tuple[str, str]:
    """(colour, line style) of a (transport, service) series in compare's plot: the colour
    says the transport, the style the service, so 16 series are 16 distinct lines."""
    names = list(COMPARE_SCHEMES)
    colour = f"C{names.index(transport) % 10}" if transport in names else "C9"
    return colour, SERVICE_STYLES.get(service, ":")


def plot(results: Sequence[TransportResult], path: str) -> None:
    """Latency distribution per transport and service (colour: transport; line: service), and
    lost/duplicated/reordered bars, one row per run, as a PNG (or any format matplotlib writes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    height = max(5.0, 0.32 * len(results) + 1.8)
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, height), gridspec_kw={"width_ratios": [3, 2]})
    for r in results:
        if r.latencies_us:
            values = sorted(r.latencies_us)
            n = len(values)
            colour, style = series_style(r.transport, r.service)
            left.plot(values, [(i + 1) / n for i in range(n)], color=colour, linestyle=style, linewidth=1.6,
                      label=f"{r.transport} {r.service}")
    left.set_xscale("log")
    left.set_xlabel("round trip (µs, log scale)")
    left.set_ylabel("fraction of replies")
    left.set_title("latency distribution (CDF): colour = transport, line = service")
    left.grid(True, which="both", alpha=0.3)
    if any(r.latencies_us for r in results):
        left.legend(fontsize="small", ncol=2 if len(results) > 8 else 1)
    labels = [f"{r.transport} {r.service}" for r in results]
    ys = range(len(results))
    bar = 0.27
    for offset, (what, colour) in zip((-bar, 0, bar), (("lost", "tab:red"), ("duplicated", "tab:orange"),
                                                       ("reordered", "tab:purple"))):
        right.barh([y + offset for y in ys], [getattr(r, what) for r in results], bar, label=what, color=colour)
    right.set_yticks(list(ys), labels, fontsize="small")
    right.invert_yaxis()  # the first run on top, as in the tables
    right.set_xlabel("messages")
    if any(r.lost or r.duplicated or r.reordered for r in results):
        right.set_xlim(left=0)
    else:
        right.set_xlim(0, 1)
        right.text(0.5, 0.5, "nothing lost, duplicated or reordered", ha="center", va="center",
                   transform=right.transAxes)
    right.set_title("what the network did")
    right.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _stream_kept(r: TransportResult, settings: CompareSettings) -> bool:
    """A transport with no message boundaries that kept them all the same, because the run
    was a closed loop: one message in flight per connection, so nothing to merge with."""
    transport = get_transport(r.transport)
    return r.boundaries_kept and r.replies > 0 and not transport.boundaries and settings.rate is None


def boundaries_cell(r: TransportResult, settings: CompareSettings) -> str:
    """compare's boundaries cell: N replies arrived as M reads, kept or not, and on a stream
    that kept them why: ``1000→1000 kept (1 in flight)``."""
    text = f"{r.replies}→{r.reads} " + ("kept" if r.boundaries_kept else "not kept")
    return text + (" (1 in flight)" if _stream_kept(r, settings) else "")


def boundaries_note(settings: CompareSettings, results: Sequence[TransportResult]) -> str | None:
    """The sentence under compare's delivery table when a stream kept its boundaries."""
    streams = list(dict.fromkeys(r.transport for r in results if _stream_kept(r, settings)))
    if not streams:
        return None
    return (f"(1 in flight): {', '.join(streams)} kept message boundaries here only because a closed loop has one "
            f"message in flight per connection, so no two could merge; a stream keeps none (netlab transports): "
            f"with --rate (open loop) several are in flight and may arrive as one read.")



def expectations(settings: CompareSettings) -> dict[str, float]:
    """What the settings predict for datagram transports, for the reader to check against.

    Loss is a round trip: the request must survive the way there and the reply the way
    back. A duplicated request is answered twice, a duplicated reply arrives twice.
    """

    def loss(s: Impairments) -> float:
        burst = s.loss_burst[0] / (s.loss_burst[0] + s.loss_burst[1]) if s.loss_burst else 0.0
        return 1 - (1 - s.loss) * (1 - burst)

    there, back = loss(settings.forward), loss(settings.backward)
    survive = (1 - there) * (1 - back)
    return {
        "loss_forward": there,
        "loss_backward": back,
        "round_trip_loss": 1 - survive,
        "duplicated": survive * (settings.forward.duplicate + settings.backward.duplicate),
        "corrupted": survive * (1 - (1 - settings.forward.corrupt) * (1 - settings.backward.corrupt)),
    }


def conclusions(settings: CompareSettings, kernel: KernelImpairments | None = None) -> list[str]:
    """What to read in compare's tables, as sentences printed under them: what the
    impairments predict (through the relay, or, given `kernel`, made by the kernel), and
    why a closed loop shows no reordering. Nothing for an unimpaired run."""
    expected = expectations(settings)
    if kernel is not None:
        if not (kernel.loss_forward or kernel.loss_backward):
            return []
        return [f"Kernel: {kernel.describe()}. Expected on UDP: {100 * expected['round_trip_loss']:.1f}% of round "
                f"trips lost; TCP loses nothing and retransmits instead (each repair costs time: a retransmission "
                f"timeout is at least 200 ms); AF_UNIX is not touched."]
    if not settings.impaired:
        return []
    said = [f"Expected on datagram transports: {100 * expected['round_trip_loss']:.1f}% of round trips lost "
            f"({100 * expected['loss_forward']:.1f}% of requests, {100 * expected['loss_backward']:.1f}% of the "
            f"replies left), about {100 * expected['duplicated']:.1f}% duplicated. Stream transports cannot lose "
            f"or duplicate: their losses are repaired below the relay, and show as latency."]
    if (settings.forward.reorder or settings.backward.reorder) and not settings.rate:
        said.append("Closed loop keeps one message in flight, so a held-back packet has nothing to be "
                    "reordered against: it arrives late instead. Use --rate to see reordering.")
    return said


__all__ = ["SERVICE_STYLES", "boundaries_cell", "boundaries_note", "conclusions", "expectations", "plot", "report",
           "series_style"]
