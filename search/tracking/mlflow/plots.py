"""Renderings of a front snapshot: a CSV table, and one matplotlib figure (every 2-D
projection of the objectives, plus a 3-D view for three or more) as a PNG and as a
self-contained HTML page.

The page holds the figure as inline SVG that scales to the width of MLflow's artifact
pane (every panel visible, nothing fetched from the internet; tens of kB where a plotly
page with plotly.js inline weighs MBs), with a tooltip on every point (trial, objective
values, params) and a table of the Pareto-optimal trials below.
"""

from __future__ import annotations

import csv
import html
import io
import itertools
import json
import math
import re
from typing import TYPE_CHECKING, Any

from paretotune.results.ordering import best_first, direction_word, varying_params
from paretotune.tracking._base import FrontRow, FrontSnapshot

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from mpl_toolkits.mplot3d import Axes3D

FRONT_COLOR, OTHER_COLOR = "#d9480f", "#9aa5b1"
PANEL_GID = "panel-{}"  # the SVG group of each panel (the browser test finds them by it)
_PANEL_INCHES = (4.6, 3.9)


def front_table_csv(snapshot: FrontSnapshot) -> str:
    """All complete trials, Pareto ones first: number, rank, run id, objectives, params."""
    metrics = list(snapshot.objectives)
    param_names = sorted({name for row in snapshot.rows for name in row.params})
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["number", "pareto_rank", "mlflow_run_id", *metrics, *param_names])
    for row in sorted(snapshot.rows, key=lambda r: (r.rank, r.number)):
        writer.writerow(
            [row.number, row.rank, row.run_id or ""]
            + [row.values[m] for m in metrics]
            + [row.params.get(p, "") for p in param_names]
        )
    return out.getvalue()


def front_pictures(snapshot: FrontSnapshot) -> tuple[str, bytes]:
    """The front's figure drawn once, saved twice: a self-contained HTML page (the
    figure as inline SVG scaled to the page, a tooltip on each 2-D point, then the
    Pareto-optimal trials as a table) and a PNG (about 920 px wide for three objectives)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "paretotune"}):
        fig = _figure(snapshot)
        svg, png = io.BytesIO(), io.BytesIO()
        fig.savefig(svg, format="svg", metadata={"Date": None})
        fig.savefig(png, format="png", dpi=100)
        plt.close(fig)
    return _page(snapshot, svg.getvalue().decode()), png.getvalue()


def _page(snapshot: FrontSnapshot, svg: str) -> str:
    svg = svg[svg.index("<svg") :]  # the XML prologue and DOCTYPE have no place in HTML
    rows = {row.number: row for row in snapshot.rows}
    svg = re.sub(  # each point's link (`_points`) becomes a group with the trial's tooltip
        r'<a xlink:href="#trial-(\d+)" target="_blank">(.*?)</a>',
        lambda m: (
            f"<g><title>{html.escape(_point_title(rows[int(m[1])], snapshot))}</title>{m[2]}</g>"
        ),
        svg,
        flags=re.DOTALL,
    )
    heading = html.escape(_title(snapshot))
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{heading}</title><style>{_CSS}</style></head><body>"
        "<p class='note'>Orange: Pareto-optimal, grey: the other complete trials. Hover a point "
        "for its values and params; the front's table is below.</p>"
        f"<div class='figure'>{svg}</div>{_front_table_html(snapshot)}</body></html>\n"
    )


_CSS = (
    "body{font-family:sans-serif;margin:8px;color:#1f2328}"
    ".note{margin:0 0 4px;font-size:13px}"
    ".figure svg{display:block;width:100%;height:auto;max-height:calc(100vh - 56px)}"
    "table{border-collapse:collapse;font-size:13px;margin-top:8px}"
    "th,td{padding:2px 8px;border-bottom:1px solid #d0d7de;text-align:right;vertical-align:top}"
    "td.params{text-align:left}"
)


# the x axis of a single-objective study's one panel: its value against the trial number
TRIAL_AXIS = ("#trial", "")


def _pairs(snapshot: FrontSnapshot) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    metrics = list(snapshot.objectives.items())
    return list(itertools.combinations(metrics, 2)) or [(TRIAL_AXIS, metrics[0])]


def _figure(snapshot: FrontSnapshot) -> Figure:
    """Every 2-D projection, then a 3-D view of the first three objectives, in a grid of
    two columns (three beyond four panels); Pareto-optimal trials drawn on top. Each
    panel's SVG group is named `PANEL_GID`."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    pairs = _pairs(snapshot)
    three_d = len(snapshot.objectives) >= 3
    panels = len(pairs) + three_d
    columns = 1 if panels == 1 else 2 if panels <= 4 else 3  # readable in a ~1,100 px pane
    rows = math.ceil(panels / columns)
    width, height = _PANEL_INCHES
    fig = plt.figure(figsize=(width * columns, height * rows + 0.4))
    for index, ((mx, dx), (my, dy)) in enumerate(pairs):
        ax = fig.add_subplot(rows, columns, index + 1)
        _points(ax, snapshot, mx, my)
        ax.set_xlabel(_axis_label(mx, dx))
        ax.set_ylabel(_axis_label(my, dy))
        ax.grid(alpha=0.3)
    if three_d:
        (m1, d1), (m2, d2), (m3, d3) = list(snapshot.objectives.items())[:3]
        ax3: Axes3D = fig.add_subplot(rows, columns, panels, projection="3d")  # type: ignore[assignment]
        for drawn, style in _styles(snapshot):  # no tooltips: 3-D draws them depth-sorted
            ax3.scatter(*_values(drawn, m1, m2), _values(drawn, m3)[0], depthshade=False, **style)
        ax3.set_xlabel(_axis_label(m1, d1), labelpad=2)
        ax3.set_ylabel(_axis_label(m2, d2), labelpad=2)
        ax3.set_zlabel(_axis_label(m3, d3), labelpad=2)
        ax3.tick_params(labelsize=7, pad=0)
        ax3.locator_params(nbins=4)
        ax3.set_box_aspect(None, zoom=0.85)  # room for the axis labels inside its panel
    for index, ax in enumerate(fig.axes):
        ax.set_gid(PANEL_GID.format(index))
    legend = [
        Line2D([], [], ls="", marker="o", color=color, label=label)
        for color, label in ((FRONT_COLOR, "Pareto-optimal"), (OTHER_COLOR, "other trials"))
    ]
    fig.legend(handles=legend, loc="upper right", ncols=2, frameon=False)
    fig.suptitle(_title(snapshot), x=0.01, ha="left")
    top = 1 - 0.4 / (height * rows + 0.4)  # the title's band
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.07, top=top - 0.04, wspace=0.28, hspace=0.3)
    return fig


def _points(ax: Axes, snapshot: FrontSnapshot, x: str, y: str) -> None:
    """A 2-D panel's points; each links to ``#trial-N``, which `_page` turns into its
    tooltip."""
    for rows, style in _styles(snapshot):
        points = ax.scatter(*_values(rows, x, y), **style)
        points.set_urls([f"#trial-{row.number}" for row in rows])


def _styles(snapshot: FrontSnapshot) -> list[tuple[list[FrontRow], dict[str, Any]]]:
    """The other trials, then the Pareto-optimal ones (drawn on top), each with its style."""
    return [
        (rows, {"s": 36 if on_front else 16, "c": color, "zorder": 3 if on_front else 2})
        for on_front, color in ((False, OTHER_COLOR), (True, FRONT_COLOR))
        if (rows := [row for row in snapshot.rows if (row.rank == 0) == on_front])
    ]


def _values(rows: list[FrontRow], *metrics: str) -> list[list[float]]:
    return [
        [row.number if metric == TRIAL_AXIS[0] else row.values[metric] for row in rows]
        for metric in metrics
    ]


def _axis_label(metric: str, direction: str) -> str:
    if (metric, direction) == TRIAL_AXIS:
        return "trial"
    return f"{metric} ({direction_word(direction)})"


def _title(snapshot: FrontSnapshot) -> str:
    pareto = sum(1 for row in snapshot.rows if row.rank == 0)
    title = f"Pareto front after {snapshot.step} trials: {pareto} of {len(snapshot.rows)}"
    title += " complete trials"
    if snapshot.hypervolume is not None:
        title += f", hypervolume {snapshot.hypervolume:.4g}"
    return title


def _point_title(row: FrontRow, snapshot: FrontSnapshot) -> str:
    values = "\n".join(f"{m} = {row.values[m]:.5g}" for m in snapshot.objectives)
    params = json.dumps(row.params, default=str)[:400]
    return f"trial {row.number} (Pareto rank {row.rank})\n{values}\n{params}"


def _front_table_html(snapshot: FrontSnapshot) -> str:
    """The Pareto-optimal trials, best first by the first objective (ties to the lower
    trial number): their values and the params that vary across the study's trials."""
    first, direction = next(iter(snapshot.objectives.items()))
    front = best_first(
        (row for row in snapshot.rows if row.rank == 0),
        lambda row: row.values.get(first),
        lambda row: row.number,
        direction,
    )
    varying = sorted(varying_params(row.params for row in snapshot.rows))
    head = "".join(
        f"<th>{html.escape(_axis_label(m, d))}</th>" for m, d in snapshot.objectives.items()
    )
    body = "".join(
        f"<tr><td>{row.number}</td>"
        + "".join(f"<td>{row.values[m]:.4g}</td>" for m in snapshot.objectives)
        + f"<td class='params'>{html.escape(_params_text(row.params, varying))}</td></tr>"
        for row in front
    )
    return (
        f"<table><thead><tr><th>trial</th>{head}<th>params that vary</th></tr></thead>"
        f"<tbody>{body}</tbody></table>"
    )


def _params_text(params: dict[str, Any], names: list[str]) -> str:
    shown = {n: params[n] for n in names if n in params}
    return " ".join(
        f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in shown.items()
    )
