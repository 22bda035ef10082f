"""Renderings of a front snapshot: CSV, a static PNG and an interactive plotly page."""

from __future__ import annotations

import csv
import io
import itertools
import json
from typing import Any

from paretotune.tracking._base import FrontSnapshot


def front_table_csv(snapshot: FrontSnapshot) -> str:
    """All complete trials, Pareto ones first: number, rank, run id, objectives, params."""
    metrics = list(snapshot.objectives)
    param_names = sorted({name for row in snapshot.rows for name in row["params"]})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["number", "pareto_rank", "mlflow_run_id", *metrics, *param_names])
    for row in sorted(snapshot.rows, key=lambda r: (r["rank"], r["number"])):
        writer.writerow(
            [row["number"], row["rank"], row.get("run_id") or ""]
            + [row["values"][m] for m in metrics]
            + [row["params"].get(p, "") for p in param_names]
        )
    return out.getvalue()


def _axis_label(metric: str, direction: str) -> str:
    return f"{metric} ({'max' if direction == 'maximize' else 'min'})"


def front_figure_png(snapshot: FrontSnapshot) -> bytes:
    """Every 2-D projection of the objectives, Pareto-optimal trials highlighted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = list(itertools.combinations(snapshot.objectives.items(), 2)) or [
        (next(iter(snapshot.objectives.items())),) * 2
    ]
    fig, axes = plt.subplots(1, len(pairs), figsize=(5 * len(pairs), 4.2), squeeze=False)
    for ax, ((mx, dx), (my, dy)) in zip(axes[0], pairs, strict=True):
        for on_front, style in ((False, dict(c="#9aa5b1", s=18)), (True, dict(c="#d9480f", s=40))):
            pts = [r for r in snapshot.rows if (r["rank"] == 0) == on_front]
            ax.scatter(
                [r["values"][mx] for r in pts],
                [r["values"][my] for r in pts],
                label="Pareto-optimal" if on_front else "other trials",
                **style,
            )
        ax.set_xlabel(_axis_label(mx, dx))
        ax.set_ylabel(_axis_label(my, dy))
        ax.grid(alpha=0.3)
    axes[0][0].legend(loc="best", fontsize=8)
    fig.suptitle(
        f"Pareto front after {snapshot.step} trials"
        + (f" (hypervolume {snapshot.hypervolume:.4g})" if snapshot.hypervolume is not None else "")
    )
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return buffer.getvalue()


def front_html(snapshot: FrontSnapshot) -> str:
    """A self-contained plotly page: 2-D projections, plus a 3-D view for 3+ objectives.

    Hovering a point shows the trial number, its objective values and its params.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    metrics = list(snapshot.objectives.items())
    pairs = list(itertools.combinations(metrics, 2)) or [(metrics[0], metrics[0])]
    three_d = len(metrics) >= 3
    specs: list[list[dict[str, Any]]] = [[{"type": "xy"} for _ in pairs]]
    if three_d:
        specs[0].append({"type": "scene"})
    fig = make_subplots(rows=1, cols=len(specs[0]), specs=specs)
    hover = [_hover_text(row, snapshot) for row in snapshot.rows]
    colors = ["#d9480f" if row["rank"] == 0 else "#9aa5b1" for row in snapshot.rows]
    for col, ((mx, dx), (my, dy)) in enumerate(pairs, start=1):
        axes = {"x": mx, "y": my}
        fig.add_trace(_markers(go.Scatter, axes, snapshot, colors, hover, 9), row=1, col=col)
        fig.update_xaxes(title_text=_axis_label(mx, dx), row=1, col=col)
        fig.update_yaxes(title_text=_axis_label(my, dy), row=1, col=col)
    if three_d:
        (m1, _), (m2, _), (m3, _) = metrics[:3]
        axes = {"x": m1, "y": m2, "z": m3}
        trace = _markers(go.Scatter3d, axes, snapshot, colors, hover, 5)
        fig.add_trace(trace, row=1, col=len(specs[0]))
        fig.update_scenes(xaxis_title=m1, yaxis_title=m2, zaxis_title=m3)
    fig.update_layout(
        title=f"Pareto front after {snapshot.step} trials — orange: Pareto-optimal",
        height=520,
        width=max(520 * len(specs[0]), 900),
    )
    return fig.to_html(include_plotlyjs=True, full_html=True)


def _markers(trace: Any, axes: dict[str, str], snapshot: FrontSnapshot, colors, hover, size):
    """A plotly marker trace of every trial, one objective per axis (``{"x": metric}``)."""
    coordinates = {axis: [r["values"][m] for r in snapshot.rows] for axis, m in axes.items()}
    return trace(
        **coordinates,
        mode="markers",
        marker={"color": colors, "size": size},
        text=hover,
        hoverinfo="text",
        showlegend=False,
    )


def _hover_text(row: dict[str, Any], snapshot: FrontSnapshot) -> str:
    values = "<br>".join(f"{m} = {row['values'][m]:.5g}" for m in snapshot.objectives)
    params = json.dumps(row["params"], default=str)[:400]
    return f"trial {row['number']} (rank {row['rank']})<br>{values}<br>{params}"
