"""Engine.subscribe: events pushed to Python callbacks on the engine's callback thread."""

import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest

import tollgate

LIMIT = 10_000
CHUNK = 100


class Seen:
    """Collects events and the threads they arrived on."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: List[Dict[str, Any]] = []
        self.threads: List[int] = []

    def __call__(self, event: Dict[str, Any]) -> None:
        with self.lock:
            self.events.append(event)
            self.threads.append(threading.get_ident())

    def kinds(self, kind: str) -> List[Dict[str, Any]]:
        with self.lock:
            return [e for e in self.events if e["kind"] == kind]

    def wait_for(self, condition: Callable[["Seen"], bool]) -> None:
        deadline = time.monotonic() + 20
        while not condition(self):
            assert time.monotonic() < deadline, f"events seen: {self.events}"
            time.sleep(0.005)


def consume_until_exhausted(project: tollgate.Project) -> int:
    granted = 0
    while True:
        try:
            project.consume(CHUNK)
        except tollgate.Exhausted:
            return granted
        granted += CHUNK


def test_the_switch_arrives_once_off_the_metering_threads(engine, key) -> None:
    seen = Seen()
    unsubscribe = engine.subscribe(seen)
    engine.create_project("p")
    engine.add_key("p", key("A-1", limit=LIMIT))
    engine.add_reserve("p", key("A-2", limit=LIMIT))
    totals: List[int] = []
    metering: List[int] = []
    with engine.project("p") as project:

        def worker() -> None:
            metering.append(threading.get_ident())
            totals.append(consume_until_exhausted(project))

        threads = [threading.Thread(target=worker) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seen.wait_for(lambda s: len(s.kinds("switched")) >= 1 and len(s.kinds("refused")) >= 1)
        unsubscribe()
        usage = project.usage()
    assert sum(totals) == 2 * LIMIT
    assert (usage.active_used, usage.switches) == (LIMIT, 1)

    switched = seen.kinds("switched")
    assert len(switched) == 1
    assert {k: switched[0][k] for k in ("project", "from", "to", "reason")} == {
        "project": "p",
        "from": "A-1",
        "to": "A-2",
        "reason": "exhausted",
    }
    assert [e["kind"] for e in seen.events[:3]] == ["project_created", "key_added", "key_added"]
    # Exactly what the audit log holds, in its order.
    logged = engine.events(after=seen.events[0]["seq"] - 1, max=100_000)
    assert seen.events == logged
    # One thread, neither this one nor a metering one.
    assert len(set(seen.threads)) == 1
    assert seen.threads[0] not in metering + [threading.get_ident()]


def test_no_event_after_unsubscribe_or_close(engine, key) -> None:
    first, second = Seen(), Seen()
    unsubscribe_first = engine.subscribe(first)
    unsubscribe_second = engine.subscribe(second)
    engine.create_project("a")
    first.wait_for(lambda s: len(s.events) == 1)
    second.wait_for(lambda s: len(s.events) == 1)
    unsubscribe_first()
    unsubscribe_first()  # a second call does nothing
    engine.create_project("b")
    second.wait_for(lambda s: len(s.events) == 2)
    assert [e["project"] for e in first.events] == ["a"]
    assert [e["project"] for e in second.events] == ["a", "b"]
    unsubscribe_second()
    engine.create_project("c")
    time.sleep(0.05)
    assert len(second.events) == 2

    engine.subscribe(first)
    engine.close()
    unsubscribe_second()  # after close: nothing to do
    assert [e["project"] for e in first.events] == ["a"]


def test_a_raising_subscriber_is_logged_and_the_others_still_called(
    engine, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(event: Dict[str, Any]) -> None:
        raise RuntimeError(f"cannot handle {event['kind']}")

    seen = Seen()
    engine.subscribe(broken)
    engine.subscribe(seen)
    with caplog.at_level(logging.ERROR, logger="tollgate"):
        engine.create_project("p")
        seen.wait_for(lambda s: len(s.events) == 1)
    assert seen.events[0]["kind"] == "project_created"
    assert any(
        "raised" in r.getMessage() and "cannot handle project_created" in str(r.exc_info[1])
        for r in caplog.records
    )


def test_subscribe_refuses_what_is_not_callable(engine) -> None:
    with pytest.raises(TypeError, match="callback must be callable"):
        engine.subscribe("not a function")  # type: ignore[arg-type]
    engine.close()
    with pytest.raises(tollgate.ClosedError):
        engine.subscribe(lambda event: None)


def test_the_subscriber_example_prints_the_switch(tmp_path) -> None:
    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=str(root / "python"))
    result = subprocess.run(
        [sys.executable, str(root / "examples/python/subscriber.py"), str(tmp_path / "s"), "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("switched: copy-") == 1, result.stdout
    assert "is exhausted, now metering copy-" in result.stdout
    assert "charged 2097152 bytes over the pair's life" in result.stdout


def test_events_stream_iterates_until_closed(engine, key) -> None:
    with engine.events_stream() as events:
        engine.create_project("p")
        engine.add_key("p", key("A-1", limit=100))
        first = next(events)
        assert (first["kind"], first["project"]) == ("project_created", "p")
        second = events.get(timeout=20)
        assert second is not None and (second["kind"], second["key"]) == ("key_added", "A-1")
        assert events.get(timeout=0.01) is None
    assert list(events) == []
    assert events.get(timeout=0) is None


def test_closing_the_engine_ends_its_streams(engine) -> None:
    events = engine.events_stream(backlog=1)
    engine.create_project("a")
    engine.create_project("b")  # the backlog is full: dropped
    deadline = time.monotonic() + 20
    while events.dropped == 0:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    engine.close()
    assert [e["project"] for e in events] == ["a"]
    assert events.dropped == 1


def test_a_subscriber_may_unsubscribe_itself_and_close_the_engine(engine) -> None:
    calls: List[str] = []
    done = threading.Event()
    unsubscribe: List[Callable[[], None]] = []

    def once(event: Dict[str, Any]) -> None:
        calls.append(event["project"])
        unsubscribe[0]()

    def closer(event: Dict[str, Any]) -> None:
        if event["project"] == "b":
            engine.close()
            done.set()

    unsubscribe.append(engine.subscribe(once))
    engine.create_project("a")
    deadline = time.monotonic() + 20
    while not calls:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    engine.subscribe(closer)
    engine.create_project("b")
    assert done.wait(20)
    assert engine.closed
    assert calls == ["a"]
