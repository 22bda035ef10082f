"""`tracking.mlflow.guard.lost_contact` tells a tracking server out of reach from one that
answers with an error, by the types of the exceptions MLflow's REST client really raises
(not by their text): against a port nobody listens on (what a stopped server leaves), a
server that never answers, one that answers only 503 and one that answers 404. A real
`mlflow server` stopped mid-study opens the breaker after one error line in
test_mlflow_logging.py (`test_a_server_that_stays_down_holds_the_trials_and_sync_records_them`)."""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import threading
from collections.abc import Iterator

import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException, RestException
from paretotune.tracking.mlflow.guard import Guard, lost_contact

from tests.conftest import free_port


@pytest.fixture(autouse=True)
def _fail_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's retries and timeout, short (read at each call)."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")


def _raised(uri: str) -> MlflowException:
    """What MLflow's client raises asking ``uri`` for an experiment."""
    with pytest.raises(MlflowException) as raised:
        MlflowClient(uri).get_experiment_by_name("anything")
    return raised.value


@contextlib.contextmanager
def _answering(status: int, body: dict) -> Iterator[str]:
    """An HTTP server on a thread of this process answering every request ``status``."""

    class Answer(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_nobody_listening_is_lost_contact():
    err = _raised(f"http://127.0.0.1:{free_port()}")  # refused: what a stopped server gives
    assert isinstance(err.__context__ or err.__cause__, requests.exceptions.ConnectionError)
    assert lost_contact(err)


def test_a_server_that_never_answers_is_lost_contact():
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        err = _raised(f"http://127.0.0.1:{silent.getsockname()[1]}")
    assert lost_contact(err)


def test_a_server_answering_only_retryable_failures_is_lost_contact():
    with _answering(503, {"error_code": "TEMPORARILY_UNAVAILABLE"}) as url:
        err = _raised(url)
    assert lost_contact(err)


def test_an_answered_error_is_not_lost_contact():
    """The server answered: the call's own error, one line, and the next calls go on."""
    body = {"error_code": "RESOURCE_DOES_NOT_EXIST", "message": "API request to x failed"}
    with _answering(404, body) as url:
        with pytest.raises(MlflowException) as raised:
            MlflowClient(url).get_run("0" * 32)
    assert isinstance(raised.value, RestException)
    assert not lost_contact(raised.value)  # its text mimics the old rule's: types decide


def test_the_old_message_text_alone_is_not_lost_contact():
    assert not lost_contact(MlflowException("API request to http://x failed with exception boom"))
    assert not lost_contact(ValueError("a bug"))


def test_the_guard_opens_its_breaker_only_for_lost_contact():
    guard = Guard(f"http://127.0.0.1:{free_port()}")

    def answered() -> None:
        raise RestException({"error_code": "INVALID_PARAMETER_VALUE", "message": "bad"})

    assert guard.call(answered) is None
    assert not guard.unavailable_because and len(guard.errors) == 1
    assert guard.call(MlflowClient(guard._tracking_uri).search_experiments) is None
    assert guard.lost_contact and guard.unavailable_because
    assert guard.call(answered) is None and len(guard.errors) == 2, "skipped, not tried"
