"""The MLflow UI over a finished small study, in a real browser: a real `mlflow server` on
127.0.0.1 and Debian's Chromium driven by Playwright, offline (every request to another
host is aborted, and recorded).

The address `paretotune run` prints must land on the study's Pareto-optimal runs with the
objectives as columns, under a description naming the objectives and their directions,
and the front's plot must show every panel in the artifact pane, needing nothing from
another host. The study's run must show the objectives' directions as params and chart the
hypervolume once per finished trial; a trial's run must last as long as its trial. The
screenshots go to a temporary folder; ``PARETOTUNE_UPDATE_SCREENSHOTS=1`` writes them into
docs/ instead (the README's pictures).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState
from paretotune import Client, run_study
from paretotune._progress import print_front
from paretotune.results.records import HV_BOUND_TRIALS, completion_order
from paretotune.spaces import EXAMPLES_DIR
from paretotune.study import open_storage
from paretotune.study._attrs import STARTED_AT_ATTR, TRIAL_SECONDS_ATTR
from paretotune.tracking.mlflow.plots import PANEL_GID
from paretotune.tracking.mlflow.view import FRONT_FILTER, FRONT_PAGE

from tests.conftest import mlflow_server as serve_mlflow

CHROMIUM = "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.timeout(480),
    # before the fixtures: without a browser, no study is run and no server started for it
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is absent (apt-get install chromium)"
    ),
]
DOCS = Path(__file__).parents[2] / "docs"
WAIT_MS = 90_000  # a cold MLflow SPA on 2 busy cores can take a minute
VIEWPORT = {"width": 1600, "height": 900}  # leaves the artifact pane ~1,100 px wide
# a front of a few trials, and a hypervolume charted for a few trials after the first
# HV_BOUND_TRIALS fixed its normalisation
TRIALS = HV_BOUND_TRIALS + 2
LOCAL_HOST = "127.0.0.1"
# MLflow shows a run's duration with one decimal ("6.8s", "1.2min"): seconds per unit
DURATION_UNITS = {"ms": 0.001, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


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
    from mlflow import MlflowClient
    from playwright.sync_api import Route, sync_playwright

    result, front = finished_study["result"], finished_study["front"]
    objectives = dict(front.objectives)
    print_front(front, tracking_uri=mlflow_server, experiment_id=result.experiment_id)
    printed = re.search(r"The Pareto front in MLflow:\s+(\S+)", capsys.readouterr().out)
    assert printed is not None and printed[1].startswith(f"{mlflow_server}/#/experiments/")
    pareto = {f"trial-{r.number:04d}" for r in front.pareto}
    others = {f"trial-{r.number:04d}" for r in front.records} - pareto
    experiment = f"{mlflow_server}/#/experiments/{result.experiment_id}"
    aborted: list[tuple[str, str | None]] = []  # (URL, the iframe asking; None: the page)

    def offline(route: Route) -> None:
        request = route.request
        try:
            frame = request.frame
            asker = None if frame.parent_frame is None else frame.url
        except Exception:  # a worker's request has no frame
            asker = None
        aborted.append((request.url, asker))
        route.abort("internetdisconnected")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            context = browser.new_context(viewport=VIEWPORT)
            context.route(_elsewhere, offline)  # offline: only 127.0.0.1 answers
            page = context.new_page()
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

            # The description's link to the front's plot, on the study's run: every panel
            # inside the pane, offline; the page the UI fetched refers to nothing outside.
            link = page.locator('a[href*="pareto_front.html"]').first.get_attribute("href")
            assert link is not None
            linked = re.search(r"/runs/([0-9a-f]{32})/artifacts/", link)
            assert linked is not None and linked[1] == result.parent_run_id, link
            with page.expect_response(_is_front_page_fetch, timeout=WAIT_MS) as fetched:
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
            assert fetched.value.ok, fetched.value.url
            assert _external_references(fetched.value.text()) == []
            from_plot = [(url, asker) for url, asker in aborted if asker is not None]
            assert from_plot == [], from_plot

            # The study's run: the objectives' directions as params, the hypervolume charted.
            page.goto(f"{experiment}/runs/{result.parent_run_id}")
            _close_assistant(page)
            for metric, direction in objectives.items():
                param = page.get_by_role("cell", name=f"objective.{metric}", exact=True)
                row = page.get_by_role("row").filter(has=param)
                row.wait_for()
                values = [c.strip() for c in row.get_by_role("cell").all_inner_texts()]
                assert values == [f"objective.{metric}", direction], values
            page.get_by_role("tab", name="Model metrics", exact=True).click()
            chart = page.get_by_test_id("experiment-view-compare-runs-card").filter(
                has=page.get_by_role("heading", name="hypervolume", exact=True)
            )
            chart.wait_for()
            chart.scroll_into_view_if_needed()
            chart.locator(".js-plotly-plot").first.wait_for()

            # A trial's run spans its trial: the longest one's duration on its page.
            study = optuna.load_study(
                study_name=result.name, storage=open_storage(result.storage, create=False)
            )
            trial = _longest_trial(study)
            run_id = {r.number: r.mlflow_run_id for r in front.records}[trial.number]
            assert run_id is not None
            page.goto(f"{experiment}/runs/{run_id}")
            _close_assistant(page)
            duration = page.get_by_test_id("key-value-Duration")
            duration.get_by_text(re.compile(r"^\s*[\d.]+\s*(ms|s|min|h|d)\s*$")).first.wait_for()
            shown_s, rounding_s = _duration_s(duration.inner_text())
        finally:
            browser.close()
    print("aborted requests to other hosts (the MLflow UI's own):", aborted)
    assert (screenshots / "mlflow-ui.png").stat().st_size > 10_000

    worked_s = float(trial.user_attrs[TRIAL_SECONDS_ATTR])
    began_s = float(trial.user_attrs[STARTED_AT_ATTR])
    assert worked_s >= 0.5, worked_s  # long enough to tell from a logging moment
    mlflow = MlflowClient(tracking_uri=mlflow_server)
    assert mlflow.get_run(result.parent_run_id).info.run_name == result.name
    run = mlflow.get_run(run_id)
    assert run.info.start_time <= began_s * 1000 + 1, (run.info, began_s)
    assert run.info.end_time >= (began_s + worked_s) * 1000 - 1, (run.info, began_s, worked_s)
    spanned_s = (run.info.end_time - run.info.start_time) / 1000
    assert abs(shown_s - spanned_s) <= rounding_s + 1e-9, (shown_s, spanned_s)
    assert shown_s >= worked_s - rounding_s - 1e-9, (shown_s, worked_s)

    # One hypervolume point per finished trial from the HV_BOUND_TRIALS-th complete one on,
    # never falling, the last one the front's.
    history = mlflow.get_metric_history(result.parent_run_id, "hypervolume")
    points = sorted((p.step, p.value) for p in history)
    assert [step for step, _ in points] == _hypervolume_steps(study), points
    values = [value for _, value in points]
    assert all(math.isfinite(v) for v in values) and values == sorted(values), points
    assert math.isclose(values[-1], front.hypervolume, rel_tol=1e-9), (points, front.hypervolume)


def _elsewhere(url: str) -> bool:
    """Whether ``url`` goes over the network to a host other than 127.0.0.1 (data: and
    blob: URLs, such as the artifact pane's iframe, stay in the browser)."""
    parsed = urlparse(url)
    return parsed.scheme in ("http", "https", "ws", "wss") and parsed.hostname != LOCAL_HOST


def _is_front_page_fetch(response) -> bool:
    """The UI's request for the front's page through its artifact endpoint."""
    name = FRONT_PAGE.rsplit("/", 1)[-1]
    return response.request.resource_type in ("fetch", "xhr") and name in response.url


def _external_references(page: str) -> list[str]:
    """What in the HTML ``page`` would fetch something: scripts, stylesheets, frames,
    images, imports, and every ``src``/``href`` (``xlink:href`` too) not within the page."""
    found = re.findall(r"<(?:script|link|iframe|img|object|embed|audio|video)\b", page, re.I)
    found += re.findall(r"@import|url\(\s*['\"]?\s*(?:https?:)?//", page, re.I)
    found += [
        ref
        for ref in re.findall(r"\b(?:xlink:)?(?:src|href)\s*=\s*[\"']([^\"']*)[\"']", page, re.I)
        if not ref.startswith("#")
    ]
    return found


def _longest_trial(study: optuna.Study) -> FrozenTrial:
    """The study's complete trial that took its worker the longest (Optuna's record)."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return max(complete, key=lambda t: float(t.user_attrs.get(TRIAL_SECONDS_ATTR, 0.0)))


def _hypervolume_steps(study: optuna.Study) -> list[int]:
    """The steps the hypervolume is charted at: the study's finished-trial count after
    each finished trial, from the one that brought the complete trials to HV_BOUND_TRIALS
    (their values fix its normalisation)."""
    finished = sorted(
        (t for t in study.get_trials(deepcopy=False) if t.state.is_finished()),
        key=completion_order,
    )
    steps, complete = [], 0
    for step, trial in enumerate(finished, start=1):
        complete += trial.state == TrialState.COMPLETE
        if complete >= HV_BOUND_TRIALS:
            steps.append(step)
    assert len(steps) >= TRIALS - HV_BOUND_TRIALS + 1, steps  # (retried attempts add some)
    return steps


def _duration_s(shown: str) -> tuple[float, float]:
    """A run's duration as MLflow shows it (``Duration 6.8s``), in seconds, and how much
    its rounding to one decimal may hide."""
    found = re.search(r"([\d.]+)\s*(ms|s|min|h|d)\s*$", shown.strip())
    assert found is not None, shown
    unit = DURATION_UNITS[found[2]]
    return float(found[1]) * unit, (0.5 if found[2] == "ms" else 0.05) * unit


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
