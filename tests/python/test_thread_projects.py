"""Thread handles (``Project.for_thread``): each thread grants from its own lease slot, with the
same charges and refusals as a shared :class:`tollgate.Project`."""

import threading
from typing import List

import pytest

import tollgate

ACTIVE = 3_000_000
RESERVE = 1_000_000
CHUNK = 250  # divides both limits, so all-or-nothing grants use every byte


def open_project(engine: tollgate.Engine, key) -> None:
    engine.create_project("p")
    engine.add_key("p", key("A", limit=ACTIVE))
    engine.add_key("p", key("R", limit=RESERVE))


def drain(thread: tollgate.ThreadProject) -> int:
    """Consumes until refused, then takes what is left in part; returns the bytes granted."""
    granted = 0
    while True:
        try:
            thread.consume(CHUNK)
        except tollgate.Exhausted:
            break
        granted += CHUNK
    while True:
        try:
            granted += thread.consume_partial(CHUNK)
        except tollgate.Exhausted:
            return granted


def test_a_thread_handle_grants_and_gives_its_block_back(engine, key) -> None:
    open_project(engine, key)
    project = engine.project("p")
    with project.for_thread() as thread:
        thread.consume(10)
        room = thread.room
        assert room > 0
        assert project.usage().active_used == 10 + room
        with pytest.raises(tollgate.InvalidArgument):
            thread.consume(-1)
        with pytest.raises(TypeError):
            thread.consume(True)
    assert thread.closed
    assert project.usage().active_used == 10
    with pytest.raises(tollgate.ClosedError):
        thread.consume(1)


def test_threads_with_their_own_handles_drain_exactly(engine, key) -> None:
    open_project(engine, key)
    totals: List[int] = []
    errors: List[BaseException] = []
    project = engine.project("p")

    def worker() -> None:
        try:
            with project.for_thread() as thread:
                totals.append(drain(thread))
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    granted = sum(totals)
    keys = {k["key"]["id"]: k["used"] for k in engine.keys("p")}
    assert keys["A"] == ACTIVE
    assert keys["A"] + keys["R"] == granted
    assert granted <= ACTIVE + RESERVE
    assert project.usage().switches == 1


def test_closing_the_engine_closes_thread_handles(engine, key) -> None:
    open_project(engine, key)
    thread = engine.project("p").for_thread()
    thread.consume(1)
    engine.close()
    assert thread.closed
