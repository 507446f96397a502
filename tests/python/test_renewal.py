"""Online renewal from Python: an engine pointed at an activation service renews its online
keys in the background, says when manual renewal is needed, and changes nothing on failure.

The service is a fake on loopback (``http.server``) answering with a license from
``tests/fixtures/activation``; the real service is tested from Rust (``activation/tests``).
"""

import json
import socket
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest
import tollgate
from conftest import ROOT, KeyFactory

LICENSE = (ROOT / "tests" / "fixtures" / "activation" / "ACT-PY-2.lic").read_text()
MANUAL = "): start the activation task manually to renew the license"


def due_key(key: KeyFactory) -> Dict[str, Any]:
    """ACT-PY-1: an online key with activation code ACT-PY, expiring tomorrow."""
    tomorrow = datetime.now(timezone.utc) + timedelta(days=1)
    return key(
        "ACT-PY-1",
        1 << 30,
        activation_code="ACT-PY",
        expires_at=tomorrow.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


class Renewals(BaseHTTPRequestHandler):
    """Answers ``POST /v1/renew`` with the fixture license, and counts the requests."""

    requests: List[Dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 (the http.server name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Renewals.requests.append({"path": self.path, "body": json.loads(body)})
        answer = json.dumps({"license": LICENSE}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def service() -> Iterator[str]:
    """The fake service's URL."""
    Renewals.requests = []
    server = HTTPServer(("127.0.0.1", 0), Renewals)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def dead_url() -> str:
    """A loopback URL where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def states(engine: tollgate.Engine) -> list:
    """The state of each renewal the engine reports (none before its first attempt ends)."""
    return [status["state"] for status in engine.renewal_status()]


def wait_for(what: str, condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 8
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def key_ids(engine: tollgate.Engine) -> List[tuple]:
    return [(k["key"]["id"], k["status"]) for k in engine.keys("P")]


def test_an_engine_opened_with_the_service_renews_the_due_key_in_the_background(
    state_dir: Path, key: KeyFactory, service: str
) -> None:
    with tollgate.Engine(state_dir) as engine:
        engine.create_project("P")
        engine.add_key("P", due_key(key))
        assert engine.renewal_status() == []
    with tollgate.Engine(state_dir, activation_url=service) as engine:
        wait_for("the successor", lambda: len(engine.keys("P")) == 2)
        assert key_ids(engine) == [("ACT-PY-1", "active"), ("ACT-PY-2", "reserved")]
        assert Renewals.requests == [
            {"path": "/v1/renew", "body": {"code": "ACT-PY", "key_id": "ACT-PY-1"}}
        ]
        # The successor is added before the renewal's status is written: wait for the status too.
        wait_for("the status", lambda: states(engine) == ["renewed"])
        status = engine.renewal_status()[0]
        assert (status["key"], status["successor"], status["message"]) == (
            "ACT-PY-1",
            "ACT-PY-2",
            None,
        )
        assert engine.renew_now("P") == []


def test_renew_now_returns_what_it_renewed(state_dir: Path, key: KeyFactory, service: str) -> None:
    with tollgate.Engine(state_dir) as engine:
        engine.create_project("P")
        engine.add_key("P", due_key(key))
        # A lead of 1 s: the background thread leaves the key to renew_now.
        engine.enable_renewal(service, lead_secs=1)
        assert engine.renew_now("P") == [
            {"project": "P", "old": "ACT-PY-1", "new": "ACT-PY-2", "role": "reserved"}
        ]


def test_a_service_that_is_down_means_manual_renewal_and_nothing_changes(
    state_dir: Path, key: KeyFactory
) -> None:
    url = dead_url()
    with tollgate.Engine(state_dir) as engine:
        engine.create_project("P")
        engine.add_key("P", due_key(key))
        engine.enable_renewal(url, check_every_ms=20, attempts=1, retry_secs=3600)
        wait_for("the failure", lambda: states(engine) == ["failed"])
        message = engine.renewal_status()[0]["message"]
        assert message.startswith(
            f'automatic renewal of key "ACT-PY-1" failed (the activation service at {url} '
            "is unreachable (1 attempt)"
        )
        assert message.endswith(MANUAL)
        failures = [e for e in engine.events() if e["kind"] == "renewal_failed"]
        assert [(e["project"], e["key"], e["reason"]) for e in failures] == [
            ("P", "ACT-PY-1", message)
        ]
        assert key_ids(engine) == [("ACT-PY-1", "active")]

        with pytest.raises(tollgate.RenewalFailed) as refused:
            engine.renew_now("P")
        assert refused.value.status == tollgate.Status.RENEWAL_FAILED
        assert str(refused.value).endswith(MANUAL)
        assert key_ids(engine) == [("ACT-PY-1", "active")]


def test_a_url_that_is_not_one_is_refused(state_dir: Path) -> None:
    with pytest.raises(tollgate.InvalidArgument, match="activation_url"):
        tollgate.Engine(state_dir, activation_url="ftp://example.com")
    with tollgate.Engine(state_dir) as engine:
        with pytest.raises(tollgate.InvalidArgument):
            engine.enable_renewal(dead_url(), attempts=0)
