"""Commercial terms through the Python package: a key's overage, granted to four threads
exactly, its start pushed to a subscriber once; the terms refused with their field's error."""

import threading
import time
from typing import Any, Dict, List

import pytest

import tollgate

LIMIT = 100_000
CHUNK = 100


def test_four_threads_draw_a_key_into_its_overage_exactly(engine, key) -> None:
    seen: List[Dict[str, Any]] = []
    lock = threading.Lock()

    def record(event: Dict[str, Any]) -> None:
        with lock:
            seen.append(event)

    unsubscribe = engine.subscribe(record)
    engine.create_project("p")
    engine.add_key("p", key("K", limit=LIMIT, overage_percent=20))
    project = engine.project("p")
    totals: List[int] = []

    def drain() -> None:
        granted = 0
        while True:
            try:
                project.consume(CHUNK)
            except tollgate.Exhausted:
                break
            granted += CHUNK
        with lock:
            totals.append(granted)

    threads = [threading.Thread(target=drain) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(totals) == LIMIT + LIMIT // 5, "the limit and its 20 % overage, exactly"
    (held,) = engine.keys("p")
    assert held["used"] == LIMIT + LIMIT // 5
    # Events reach the audit log and subscribers from the engine's dispatcher thread.
    deadline = time.monotonic() + 20
    while not any(e["kind"] == "overage_started" for e in engine.events()):
        assert time.monotonic() < deadline, f"events: {engine.events()}"
        time.sleep(0.005)
    while not any(e["kind"] == "overage_started" for e in list(seen)):
        assert time.monotonic() < deadline, f"events seen: {seen}"
        time.sleep(0.005)
    unsubscribe()
    started = [e for e in engine.events() if e["kind"] == "overage_started"]
    assert [e["key"] for e in started] == ["K"]
    assert [e["key"] for e in seen if e["kind"] == "overage_started"] == ["K"]


@pytest.mark.parametrize(
    "fields, field, message",
    [
        (
            {"overage_percent": 0},
            "overage_percent",
            'key "K" has an overage of 0 %; it may have 1 to 100 % (omit the field for none)',
        ),
        (
            {"grace_days": 3},
            "grace_days",
            'key "K" never expires, so it has no grace to give (set expires_at or omit grace_days)',
        ),
        (
            {"reset": "hourly"},
            "key JSON",
            "unknown variant `hourly`, expected one of `daily`, `weekly`, `monthly`, `yearly`",
        ),
    ],
)
def test_bad_terms_get_their_fields_error(engine, key, fields, field, message) -> None:
    engine.create_project("p")
    with pytest.raises(tollgate.InvalidArgument) as refused:
        engine.add_key("p", key("K", **fields))
    assert f"invalid {field}: {message}" in str(refused.value)
    assert engine.keys("p") == []


def test_a_reset_key_is_kept_and_counts_its_period(engine, key) -> None:
    """A key with a monthly reset: its term is kept with the key, and what the current period
    used is what the key list and the account show. (Crossing a boundary needs the test's own
    clock: core/tests/periods.rs.)"""
    engine.create_project("p")
    engine.add_key("p", key("M", limit=LIMIT, reset="monthly"))
    engine.project("p").consume(1_000)
    (held,) = engine.keys("p")
    assert held["key"]["reset"] == "monthly"
    assert held["used"] == 1_000
    assert held["account"]["used"] == 1_000


def test_periods_of_a_reset_key_and_of_an_unknown_one(engine, key) -> None:
    """No period of a key added today has closed; a key the state never held is refused with
    its error. (Closed periods: core/tests/periods.rs and cli/tests/terms.rs.)"""
    engine.create_project("p")
    engine.add_key("p", key("D", limit=LIMIT, reset="daily"))
    assert engine.periods("D") == []
    with pytest.raises(tollgate.InvalidArgument) as refused:
        engine.periods("nope")
    assert 'no key "nope" in this state' in str(refused.value)
