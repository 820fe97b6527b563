"""The ladder as a picture (`--plot FILE`, SVG or PNG): a sequence diagram, one arrow per packet.

Two lifelines, initiator (left) and responder (right), time running down, one row per
packet (evenly spaced, so that a burst stays readable; its time is written beside it).
Colour says the protocol (TCP, UDP, ICMP, IP fragment); a lost packet is dashed and ends
in a cross. At most `MAX_ROWS` packets are drawn; the title says when there were more.
"""

from __future__ import annotations

from .ladder import Ladder, endpoint_text

MAX_ROWS = 300
COLOURS = {"tcp": "tab:blue", "udp": "tab:green", "icmp": "tab:red", "icmp6": "tab:red", "fragment": "tab:purple",
           "other": "tab:gray"}


def plot(ladder: Ladder, path: str, title: str = "netlab trace") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = ladder.rows[:MAX_ROWS]
    height = max(3.0, 0.32 * len(rows) + 1.6)
    fig, ax = plt.subplots(figsize=(10, height))
    left, right = 0.0, 1.0
    for x in (left, right):
        ax.plot([x, x], [-0.5, len(rows) - 0.5], color="black", linewidth=1)
    for y, row in enumerate(rows):
        p = row.packet
        start, end = (left, right) if row.rightward else (right, left)
        colour = "tab:gray" if row.lost else COLOURS.get(p.proto, "tab:gray")
        ax.annotate("", xy=(end, y), xytext=(start, y),
                    arrowprops={"arrowstyle": "-|>" if not row.lost else "-", "color": colour,
                                "linestyle": "--" if row.lost else "-", "linewidth": 1.2})
        if row.lost:
            ax.plot([end - (0.03 if row.rightward else -0.03)], [y], marker="x", color="tab:red", markersize=8)
        ax.text(0.5, y - 0.12, row.label(), ha="center", va="bottom", fontsize=8, color=colour)
        ms = (p.time - ladder.start) * 1e3
        ax.text(-0.04, y, f"#{row.n}  {ms:,.3f} ms  {row.tag}", ha="right", va="center", fontsize=7,
                family="monospace")
        detail = row.detail()
        if detail:
            ax.text(1.04, y, detail if len(detail) <= 48 else detail[:47] + "…", ha="left", va="center", fontsize=7,
                    family="monospace")
    ax.set_xlim(-0.75, 1.75)
    ax.set_ylim(len(rows) - 0.5 + 0.2, -1.4)
    ax.axis("off")
    ax.text(left, -1.0, "initiator", ha="center", fontsize=9, weight="bold")
    ax.text(right, -1.0, "responder", ha="center", fontsize=9, weight="bold")
    legend = "; ".join(f"{c.tag}: {c.proto} {endpoint_text(c.initiator)} → {endpoint_text(c.responder)}"
                       for c in ladder.conversations[:6])
    more = f" (the first {MAX_ROWS} of {len(ladder.rows)} packets)" if len(ladder.rows) > MAX_ROWS else ""
    ax.set_title(f"{title}{more}\n{legend}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


__all__ = ["plot"]
