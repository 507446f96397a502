"""After os.fork(), a child closes the engine it inherited without an abort, and the parent goes
on unaffected; the child meters through an engine of its own."""

import os
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any, Dict, List

import pytest

import tollgate

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def fork() -> int:
    with warnings.catch_warnings():
        # Python 3.12+ warns about forking a process with threads: the point of this test.
        warnings.simplefilter("ignore", DeprecationWarning)
        return os.fork()


def test_a_child_closes_what_it_inherited_and_the_parent_goes_on(state_dir: Path, key) -> None:
    switched: List[Dict[str, Any]] = []
    lock = threading.Lock()

    def on_event(event: Dict[str, Any]) -> None:
        if event["kind"] == "switched":
            with lock:
                switched.append(event)

    engine = tollgate.Engine(state_dir)
    engine.subscribe(on_event)
    engine.create_project("p")
    engine.add_key("p", key("A-1", limit=1000))
    engine.add_reserve("p", key("A-2", limit=1000))
    project = engine.project("p")
    project.consume(500)

    pid = fork()
    if pid == 0:
        code = 1
        try:
            engine.close()
            with tollgate.Engine(state_dir) as own, own.project("p") as mine:
                mine.consume(100)
            code = 0
        except BaseException as e:
            print(f"child: {e!r}", file=sys.stderr)
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0

    assert project.usage().active_used == 600
    project.consume(700)
    deadline = time.monotonic() + 20
    while not switched:
        assert time.monotonic() < deadline, "the switch did not reach the parent's subscriber"
        time.sleep(0.005)
    usage = project.usage()
    assert (usage.active_used, usage.switches) == (300, 1)
    assert [(e["from"], e["to"]) for e in switched] == [("A-1", "A-2")]
    engine.close()
