"""The MLflow UI over a finished small study, in a real browser: a real `mlflow server` on
127.0.0.1 and Debian's Chromium driven by Playwright, offline.

The address `paretotune run` prints must land on the study's Pareto-optimal runs with the
objectives as columns, under a description naming the objectives and their directions,
and the front's plot must show every panel in the artifact pane. The screenshots go to a
temporary folder; ``PARETOTUNE_UPDATE_SCREENSHOTS=1`` writes them into docs/ instead (the
README's pictures).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from paretotune import Client, run_study
from paretotune._progress import print_front
from paretotune.spaces import EXAMPLES_DIR
from paretotune.tracking.mlflow.plots import PANEL_GID
from paretotune.tracking.mlflow.view import FRONT_FILTER

from tests.conftest import mlflow_server as serve_mlflow

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(480)]

CHROMIUM = "/usr/bin/chromium"
DOCS = Path(__file__).parents[2] / "docs"
WAIT_MS = 90_000  # a cold MLflow SPA on 2 busy cores can take a minute
VIEWPORT = {"width": 1600, "height": 900}  # leaves the artifact pane ~1,100 px wide
TRIALS = 10  # enough for a front of a few trials and a charted hypervolume


@pytest.fixture()
def mlflow_server(workdir: Path) -> Iterator[str]:
    """``mlflow server`` over the study's SQLite store, stopped at the end."""
    with serve_mlflow(workdir / "mlflow.db", workdir / "mlflow-server.log") as server:
        yield server.url


@pytest.fixture()
def finished_study(ray_cluster, workdir: Path) -> dict:
    result = run_study(
        EXAMPLES_DIR / "digits.yaml", trials=TRIALS, epochs=3, workers=2, progress=False
    )
    assert result.n_complete == TRIALS and not result.tracking_errors
    client = Client(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    return {"result": result, "front": client.front(result.name)}


@pytest.fixture()
def screenshots(tmp_path: Path) -> Path:
    """Where the pictures go: docs/ when asked to refresh them, else a temporary folder
    (a test run leaves the git tree as it was)."""
    if os.environ.get("PARETOTUNE_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        return DOCS
    return tmp_path


def test_the_printed_address_lands_on_the_pareto_runs_and_the_front_plot_fits(
    finished_study: dict,
    mlflow_server: str,
    screenshots: Path,
    capsys: pytest.CaptureFixture[str],
):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    result, front = finished_study["result"], finished_study["front"]
    objectives = dict(front.objectives)
    print_front(front, tracking_uri=mlflow_server, experiment_id=result.experiment_id)
    printed = re.search(r"The Pareto front in MLflow:\s+(\S+)", capsys.readouterr().out)
    assert printed is not None and printed[1].startswith(f"{mlflow_server}/#/experiments/")
    pareto = {f"trial-{r.number:04d}" for r in front.pareto}
    others = {f"trial-{r.number:04d}" for r in front.records} - pareto
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport=VIEWPORT)
            page.set_default_timeout(WAIT_MS)

            # The printed address: the runs tab, filtered to the front, objectives as columns.
            page.goto(printed[1])
            for name in pareto:
                page.get_by_role("link", name=name, exact=True).wait_for()
            _close_assistant(page)
            assert page.get_by_placeholder("metrics.rmse").input_value() == FRONT_FILTER
            headers = page.locator("[role=columnheader][col-id]")
            shown = {headers.nth(i).get_attribute("col-id") for i in range(headers.count())}
            assert {f"metrics.`{m}`" for m in objectives} <= shown, shown
            for metric in objectives:
                header = page.locator(f'[role=columnheader][col-id="metrics.`{metric}`"]')
                assert header.is_visible() and header.inner_text().strip() == metric
            assert all(page.get_by_role("link", name=n, exact=True).count() == 0 for n in others)

            # The experiment's description names each objective and its direction.
            described = ", ".join(f"{metric} ({d})" for metric, d in objectives.items())
            page.get_by_text(f"Objectives: {described}.").wait_for()
            page.wait_for_timeout(1000)  # let the grid settle before the picture
            page.screenshot(path=str(screenshots / "mlflow-ui.png"))

            # The description's link to the front's plot: every panel inside the pane.
            link = page.locator('a[href*="pareto_front.html"]').first.get_attribute("href")
            assert link is not None
            page.goto(f"{mlflow_server}/{link}")
            frame = page.locator("iframe").first
            plot = page.frame_locator("iframe").first
            plot.get_by_text(f"Pareto front after {TRIALS} trials").first.wait_for()
            _close_assistant(page)
            page.wait_for_timeout(1000)
            pane = frame.bounding_box()
            assert pane is not None and 1000 <= pane["width"] <= 1200, pane
            for index in range(len(objectives) + 1):  # three projections and a 3-D view
                box = plot.locator(f"#{PANEL_GID.format(index)}").bounding_box()
                assert box is not None and _inside(box, pane), (index, box, pane)
            page.screenshot(path=str(screenshots / "mlflow-ui-pareto.png"))
        finally:
            browser.close()
    assert (screenshots / "mlflow-ui.png").stat().st_size > 10_000


def _inside(box: dict[str, float], pane: dict[str, float]) -> bool:
    """Whether ``box`` lies within ``pane`` (page coordinates, a pixel of slack)."""
    return (
        box["x"] >= pane["x"] - 1
        and box["y"] >= pane["y"] - 1
        and box["x"] + box["width"] <= pane["x"] + pane["width"] + 1
        and box["y"] + box["height"] <= pane["y"] + pane["height"] + 1
    )


def _close_assistant(page) -> None:
    """The MLflow 3 assistant side panel hides half the page; close it when it is open."""
    close = page.get_by_role("button", name="Close")
    if close.count():
        close.first.click()
