"""The MLflow UI over a finished small study, in a real browser: a real `mlflow server` on
127.0.0.1 and Debian's Chromium driven by Playwright. Saves the screenshots in docs/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from paretotune import Client, run_study
from paretotune.spaces import EXAMPLES_DIR

from tests.conftest import mlflow_server as serve_mlflow

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = "/usr/bin/chromium"
DOCS = Path(__file__).parents[2] / "docs"
WAIT_MS = 90_000  # a cold MLflow SPA on 2 busy cores can take a minute
SHOWN_COLUMNS = ("accuracy", "train_time_s", "latency_ms", "pareto", "pareto_rank")


@pytest.fixture()
def mlflow_server(workdir: Path) -> Iterator[str]:
    """``mlflow server`` over the study's SQLite store, stopped at the end."""
    with serve_mlflow(workdir / "mlflow.db", workdir / "mlflow-server.log") as server:
        yield server.url


@pytest.fixture()
def finished_study(ray_cluster, workdir: Path) -> dict:
    result = run_study(EXAMPLES_DIR / "digits.yaml", trials=4, epochs=3, workers=2, progress=False)
    assert result.n_complete == 4 and not result.tracking_errors
    client = Client(tracking_uri=f"sqlite:///{workdir / 'mlflow.db'}")
    return {"result": result, "trials": client.trials(result.name)}


def test_mlflow_ui_lists_child_runs_with_pareto_tags_and_opens_the_front(
    finished_study: dict, mlflow_server: str
):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    result, trials = finished_study["result"], finished_study["trials"]
    experiment = f"{mlflow_server}/#/experiments/{result.experiment_id}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": 1900, "height": 760})
            page.set_default_timeout(WAIT_MS)

            # The runs table: expand the study's parent run, show metric and tag columns.
            page.goto(f"{experiment}/runs?workflowType=machine_learning")
            page.wait_for_selector("text=Run Name")
            _close_assistant(page)
            name_cell = page.locator('[role=gridcell][col-id="attributes.`Run Name`"]')
            name_cell.locator('button[data-component-id*="runnamecellrenderer"]').first.click()
            for trial in trials:
                page.wait_for_selector(f"text=trial-{trial.number:04d}")
            page.get_by_role("button", name="Columns", exact=True).click()
            menu = page.get_by_role("dialog")
            for column in SHOWN_COLUMNS:
                menu.get_by_text(column, exact=True).last.click()
            page.keyboard.press("Escape")
            for trial in trials:  # ag-grid splits a row: find its cells by row index
                named = page.locator("[role=row]", has_text=f"trial-{trial.number:04d}").first
                index = named.get_attribute("row-index")
                row = page.locator(f'[role=row][row-index="{index}"]')
                tag = row.locator('[role=gridcell][col-id="tags.`pareto`"]').first
                assert tag.inner_text().strip() == str(trial.pareto_rank == 0).lower()
            page.wait_for_timeout(1000)  # let the grid settle before the picture
            DOCS.mkdir(exist_ok=True)
            page.screenshot(path=str(DOCS / "mlflow-ui.png"))

            # The parent run's interactive Pareto plot opens from its artifacts.
            page.goto(f"{experiment}/runs/{result.parent_run_id}/artifacts")
            page.get_by_text("pareto", exact=True).first.click()
            for name in ("pareto_front.csv", "pareto_front.json", "pareto_front.png"):
                page.get_by_text(name, exact=True).wait_for()
            page.get_by_text("pareto_front.html", exact=True).click()
            plot = page.frame_locator("iframe").first
            plot.get_by_text("Pareto front after 4 trials").wait_for()
            _close_assistant(page)
            page.wait_for_timeout(1000)
            page.screenshot(path=str(DOCS / "mlflow-ui-pareto.png"))
        finally:
            browser.close()
    assert (DOCS / "mlflow-ui.png").stat().st_size > 10_000


def _close_assistant(page) -> None:
    """The MLflow 3 assistant side panel hides half the page; close it when it is open."""
    close = page.get_by_role("button", name="Close")
    if close.count():
        close.first.click()
