"""The engine's lifecycle, admin calls, views, events and library lookup."""

import gc
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import tollgate

RESERVE_TOOLTIP = (
    "This is a reserved key. Migration will automatically continue with this key after the "
    "first key expires."
)


def test_version_and_library() -> None:
    assert tollgate.version() == "0.1.0"
    assert Path(tollgate.LIBRARY_PATH).is_file()


def test_lifecycle(state_dir: Path) -> None:
    engine = tollgate.Engine(state_dir)
    assert not engine.closed
    assert engine.state_dir == str(state_dir)
    assert repr(engine) == f"<tollgate.Engine {str(state_dir)!r} open>"
    engine.create_project("p")
    project = engine.project("p")
    engine.close()
    assert engine.closed and project.closed
    engine.close()  # a second close does nothing
    assert repr(engine).endswith("closed>")
    with tollgate.Engine(state_dir) as reopened:
        assert reopened.projects() == ["p"]
    assert reopened.closed


def test_use_after_close(state_dir: Path) -> None:
    engine = tollgate.Engine(state_dir)
    engine.create_project("p")
    project = engine.project("p")
    project.close()
    for call in (
        lambda: project.consume(1),
        lambda: project.consume_partial(1),
        lambda: project.consume_many([1, 2]),
        lambda: project.consume_many(b"\0" * 8),
        project.usage,
    ):
        with pytest.raises(tollgate.ClosedError, match="project 'p' is closed"):
            call()
    with pytest.raises(tollgate.ClosedError):
        with project:
            pass
    second = engine.project("p")
    engine.close()
    with pytest.raises(tollgate.ClosedError, match="project 'p' is closed"):
        second.consume(1)
    for call in (
        engine.projects,
        engine.flush,
        lambda: engine.create_project("q"),
        lambda: engine.project("p"),
        lambda: engine.view("p"),
        lambda: engine.events(),
    ):
        with pytest.raises(tollgate.ClosedError, match="engine for .* is closed"):
            call()
    assert issubclass(tollgate.ClosedError, ValueError)


def test_handles_are_freed_by_garbage_collection(state_dir: Path, key) -> None:
    engine = tollgate.Engine(state_dir)
    engine.create_project("p")
    engine.add_key("p", key("A"))
    engine.project("p").consume(10)
    del engine
    gc.collect()
    with tollgate.Engine(state_dir) as engine, engine.project("p") as project:
        assert project.usage().active_used == 10


def test_projects_keys_and_flush(engine, key) -> None:
    for name in ("warehouse", "archive", "crm"):
        engine.create_project(name)
    assert engine.projects() == ["archive", "crm", "warehouse"]
    engine.add_key("crm", key("A", company="Acme", expires_at="2099-01-01T00:00:00Z"))
    engine.add_key("crm", key("R"))
    keys = engine.keys("crm")
    assert [(k["key"]["id"], k["status"], k["used"]) for k in keys] == [
        ("A", "active", 0),
        ("R", "reserved", 0),
    ]
    assert keys[0]["key"]["company"] == "Acme"
    assert keys[0]["key"]["expires_at"] == "2099-01-01T00:00:00Z"
    engine.flush()


def test_replace_and_remove_reserve(engine, key) -> None:
    engine.create_project("p")
    engine.add_key("p", key("A", limit=100))
    engine.add_key("p", key("R", limit=100, expires_at="2090-01-01T00:00:00Z"))
    engine.remove_reserve("p", "R")
    assert [(k["key"]["id"], k["status"]) for k in engine.keys("p")] == [
        ("A", "active"),
        ("R", "removed"),
    ]
    engine.add_reserve("p", key("R2", limit=100, expires_at="2090-01-01T00:00:00Z"))
    with engine.project("p") as project:
        project.consume(40)
        engine.replace_key("p", key("A2", limit=500, expires_at="2095-01-01T00:00:00Z"))
        # The reserve ends before the new key's term: removed automatically (rule R19 in
        # docs/rules.md).
        usage = project.usage()
    assert (usage.active_used, usage.active_limit, usage.has_reserved) == (0, 500, False)
    statuses = {k["key"]["id"]: (k["status"], k["used"]) for k in engine.keys("p")}
    assert statuses == {
        "A": ("retired", 40),
        "R": ("removed", 0),
        "R2": ("removed", 0),
        "A2": ("active", 0),
    }
    kinds = [e["kind"] for e in engine.events()]
    assert "key_replaced" in kinds and kinds.count("reserve_removed") == 2


def test_view_texts(engine, key) -> None:
    engine.create_project("Cloud Move")
    engine.add_key("Cloud Move", key("A", limit=1000, expires_at="2030-06-01T00:00:00Z"))
    view = engine.view("Cloud Move")
    assert view["project"] == "Cloud Move"
    (pair,) = view["pairs"]
    assert pair["class"] == "data_volume"
    assert pair["add_license_available"] is True
    engine.add_key("Cloud Move", key("R", limit=500, delivery="online"))
    (pair,) = engine.view("Cloud Move")["pairs"]
    assert pair["add_license_available"] is False
    active, reserved = pair["cards"]
    assert active["key"]["id"] == "A"
    assert active["type"] == "Online"
    assert active["status"] == "active"
    assert active["tooltip"] == (
        "Migration data for project Cloud Move is processed under this license key."
    )
    assert active["expiration"] == "2030-06-01T00:00:00Z"
    assert (active["used"], active["limit"], active["expired"]) == (0, 1000, False)
    assert reserved["status"] == "reserved"
    assert reserved["tooltip"] == RESERVE_TOOLTIP
    assert reserved["expiration"] == "Reserved"
    assert reserved["limit"] == 500


def wait_for_event(engine: tollgate.Engine, kind: str, timeout: float = 10.0) -> dict:
    """Hot-path events reach the audit log through a background thread: poll for one."""
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in engine.events(max=10_000) if e["kind"] == kind]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"no {kind!r} event within {timeout} s"
        time.sleep(0.01)


def test_events(engine, key) -> None:
    engine.create_project("p")
    engine.add_key("p", key("A", limit=100))
    engine.add_key("p", key("R", limit=100))
    with engine.project("p") as project:
        project.consume(150)
    switched = wait_for_event(engine, "switched")
    assert switched["project"] == "p"
    assert (switched["from"], switched["to"], switched["reason"]) == ("A", "R", "exhausted")
    assert switched["at"].endswith("Z")
    events = engine.events()
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs)
    assert [e["kind"] for e in events[:3]] == ["project_created", "key_added", "key_added"]
    assert engine.events(after=seqs[-1]) == []
    assert engine.events(after=seqs[0], max=1) == [events[1]]


def test_flush_interval_option(state_dir: Path, key) -> None:
    with tollgate.Engine(state_dir, capacity=16, flush_interval_ms=5) as engine:
        engine.create_project("p")
        engine.add_key("p", key("A"))
        with engine.project("p") as project:
            project.consume(7)
        time.sleep(0.02)
    with tollgate.Engine(state_dir) as engine, engine.project("p") as project:
        assert project.usage().active_used == 7


def import_tollgate(env_library: str) -> subprocess.CompletedProcess:
    code = "import tollgate; print(tollgate.LIBRARY_PATH)"
    env = dict(os.environ, TOLLGATE_LIBRARY=env_library)
    python_dir = Path(__file__).resolve().parents[2] / "python"
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=python_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_library_override_and_clear_import_error(tmp_path: Path) -> None:
    found = import_tollgate(tollgate.LIBRARY_PATH)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == tollgate.LIBRARY_PATH
    missing = tmp_path / "libtollgate.so"
    failed = import_tollgate(str(missing))
    assert failed.returncode != 0
    assert "ImportError: cannot load the Tollgate library" in failed.stderr
    assert f"{missing}: no such file" in failed.stderr
    assert "TOLLGATE_LIBRARY" in failed.stderr


def test_empty_state_path_is_refused_and_creates_nothing(tmp_path, monkeypatch) -> None:
    """Regression: ``Engine("")`` failed but left admin.lock, catalog.db and an 8 MB
    hot.tgs in the working directory."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(tollgate.InvalidArgument) as refused:
        tollgate.Engine("")
    assert refused.value.message == "invalid state directory: the path is empty: name a directory"
    assert list(tmp_path.iterdir()) == []
