"""Draws bench/results/gateway.png from gateway.json: latency (p50 and p99) by concurrency for
every target, on a log scale, and the maximum throughput of each.

    python bench/plot_gateway.py bench/results/gateway.json bench/results/gateway.png
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {
    "upstream": "#7f7f7f",
    "tenant-plane": "#1f77b4",
    "tenant-plane-no-metrics": "#17becf",
    "litellm": "#d62728",
    "portkey": "#ff7f0e",
}


def main(source: str, target: str) -> None:
    with open(source, encoding="utf-8") as f:
        report = json.load(f)
    targets = report["targets"]
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2))
    for ax, key, title in [
        (axes[0], "p50_ms", "p50 latency"),
        (axes[1], "p99_ms", "p99 latency"),
    ]:
        for t in targets:
            levels = t["chat"]
            ax.plot(
                [l["concurrency"] for l in levels],
                [l[key] for l in levels],
                marker="o",
                label=t["name"],
                color=COLORS.get(t["name"]),
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(report["settings"]["concurrency"])
        ax.set_xticklabels([str(c) for c in report["settings"]["concurrency"]])
        ax.set_xlabel("concurrency (closed loop)")
        ax.set_ylabel("ms (log scale)")
        ax.set_title(f"{title} by concurrency")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    names = [t["name"] for t in targets]
    rps = [t["max_throughput_rps"] for t in targets]
    bars = axes[2].bar(names, rps, color=[COLORS.get(n, "#999999") for n in names])
    axes[2].set_yscale("log")
    axes[2].set_ylabel("requests/s (log scale)")
    axes[2].set_title("maximum throughput")
    axes[2].tick_params(axis="x", rotation=25)
    for label in axes[2].get_xticklabels():
        label.set_horizontalalignment("right")
    for bar, value in zip(bars, rps):
        axes[2].annotate(f"{value:,.0f}", (bar.get_x() + bar.get_width() / 2, value),
                         ha="center", va="bottom", fontsize=8)
    m = report["machine"]
    fig.suptitle(
        f"Gateway overhead in front of the same fake upstream — {m['cpus']} × {m['cpu']}; "
        "load generator on CPU 0, upstream + gateway on CPU 1",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(target, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
