"""Many threads and processes metering one project: every byte granted is charged, exactly."""

import multiprocessing
import threading
from pathlib import Path
from typing import List

import tollgate

ACTIVE = 3_000_000
RESERVE = 1_000_000
CHUNK = 250  # divides both limits, so all-or-nothing grants use every byte


def open_project(engine: tollgate.Engine, key) -> None:
    engine.create_project("p")
    engine.add_key("p", key("A", limit=ACTIVE))
    engine.add_key("p", key("R", limit=RESERVE))


def drain(project: tollgate.Project, batched: bool) -> int:
    """Consumes until refused; returns the bytes granted."""
    granted = 0
    if batched:
        batch = [CHUNK] * 16
        while True:
            count = project.consume_many(batch)
            granted += count * CHUNK
            if count < len(batch):
                return granted
    while True:
        try:
            project.consume(CHUNK)
        except tollgate.Exhausted:
            return granted
        granted += CHUNK


def test_threads_share_one_project_exactly(engine, key) -> None:
    open_project(engine, key)
    totals: List[int] = []
    errors: List[BaseException] = []
    with engine.project("p") as project:

        def worker(batched: bool) -> None:
            try:
                totals.append(drain(project, batched))
            except BaseException as e:  # reported by the main thread
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(i % 2 == 1,)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert sum(totals) == ACTIVE + RESERVE
        usage = project.usage()
    assert (usage.active_used, usage.active_limit, usage.switches) == (RESERVE, RESERVE, 1)
    keys = {k["key"]["id"]: k["used"] for k in engine.keys("p")}
    assert keys == {"A": ACTIVE, "R": RESERVE}


def process_worker(state_dir: str, batched: bool) -> int:
    with tollgate.Engine(state_dir) as engine, engine.project("p") as project:
        return drain(project, batched)


def test_processes_share_one_project_exactly(state_dir: Path, key) -> None:
    with tollgate.Engine(state_dir) as engine:
        open_project(engine, key)
    # spawn, not fork: a forked child would inherit a copy of the engine's threads' state.
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        totals = pool.starmap(process_worker, [(str(state_dir), False), (str(state_dir), True)])
    assert sum(totals) == ACTIVE + RESERVE
    with tollgate.Engine(state_dir) as engine:
        with engine.project("p") as project:
            usage = project.usage()
        assert (usage.active_used, usage.switches) == (RESERVE, 1)
        keys = {k["key"]["id"]: k["used"] for k in engine.keys("p")}
        assert keys == {"A": ACTIVE, "R": RESERVE}
