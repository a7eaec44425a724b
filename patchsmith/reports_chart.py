"""The comparison chart: patch correctness rate vs cost per success, and resolved rates.

matplotlib with the Agg backend (no display needed). One point per experiment and per
model configuration, labelled; points whose cost is unknown are not placed at $0 but
listed under the scatter.
"""

from __future__ import annotations

from pathlib import Path

from patchsmith.report_types import Report


def draw(reports: list[Report], chart: Path) -> Path:
    """Write a PNG with two panels: correctness vs $/success, resolved rate per experiment."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, (scatter, bars) = plt.subplots(1, 2, figsize=(12, 5), width_ratios=[3, 2])
    unknown: list[str] = []
    markers = "osD^v<>ph*"
    for i, rep in enumerate(reports):
        for row in rep.compared_rows():
            s = row.stats
            label = rep.experiment if row.scope == "all" else f"{rep.experiment}: {row.name}"
            x, y = s.cost_per_success_usd, s.patch_correctness_rate
            if y is None:
                continue  # nothing accepted: no correctness to show
            if x is None:
                unknown.append(label)
                continue
            size = 120 if row.scope == "all" else 50
            scatter.scatter(x, y, s=size, marker=markers[i % len(markers)], label=label)
            scatter.annotate(label, (x, y), textcoords="offset points", xytext=(6, 4), fontsize=8)
    scatter.set_xlabel("cost per successful automation (USD)")
    scatter.set_ylabel("patch correctness rate")
    scatter.set_ylim(-0.05, 1.05)
    scatter.grid(alpha=0.3)
    scatter.set_title("correctness vs cost per success")
    if unknown:
        scatter.text(
            0.01, 0.01, "cost unknown (not plotted): " + "; ".join(unknown),
            transform=scatter.transAxes, fontsize=7, va="bottom", wrap=True,
        )  # fmt: skip
    names = [rep.experiment for rep in reports]
    rates = [rep.overall.resolved_rate or 0.0 for rep in reports]
    bars.bar(names, rates, color="tab:blue")
    bars.set_ylim(0, 1)
    bars.set_ylabel("resolved rate")
    bars.set_title("instances resolved")
    bars.tick_params(axis="x", labelrotation=20)
    fig.tight_layout()
    chart.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(chart, format="png", dpi=100)
    plt.close(fig)
    return chart
