"""Plots next to the benches' JSON, for people: latency percentiles against the offered rate,
throughput against the batch size."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_latency(latency: list[dict[str, Any]], path: Path, title: str) -> Path | None:
    """p50/p95/p99 end-to-end latency against offered events/s; None without points."""
    if not latency:
        return None
    import matplotlib  # noqa: PLC0415 - only the benches need it

    matplotlib.use("Agg")  # no display on a build machine
    import matplotlib.pyplot as plt  # noqa: PLC0415

    points = sorted(latency, key=lambda item: item["rate"])
    rates = [item["rate"] for item in points]
    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=120)
    for key, label in (("p50_ms", "p50"), ("p95_ms", "p95"), ("p99_ms", "p99")):
        axes.plot(rates, [item[key] for item in points], marker="o", label=label)
    axes.set_xlabel("offered rate (events/s)")
    axes.set_ylabel("event in -> assignment visible (ms)")
    axes.set_title(title)
    axes.set_yscale("log")  # milliseconds at low rates and seconds past saturation, both read
    axes.grid(True, alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def plot_batch_sizes(points: list[dict[str, float]], path: Path) -> Path | None:
    """Numbers/s of the service against its batch size; None without points."""
    if not points:
        return None
    import matplotlib  # noqa: PLC0415 - only the benches need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    ordered = sorted(points, key=lambda item: item["batch_size"])
    figure, axes = plt.subplots(figsize=(7, 4.2), dpi=120)
    axes.plot([p["batch_size"] for p in ordered], [p["numbers_per_s"] for p in ordered], marker="o")
    axes.set_xlabel("batch size (records per transaction)")
    axes.set_ylabel("numbers/s, first to last batch")
    axes.set_xscale("log")
    axes.set_ylim(bottom=0)
    axes.set_title("customer-ids throughput against batch size")
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
