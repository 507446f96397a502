"""Engine options: installation directory, open-existing and the admin-lock timeout."""

import fcntl
import time
from pathlib import Path

import pytest

import tollgate


def test_open_existing_refuses_a_missing_state_and_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "state"
    with pytest.raises(tollgate.NotFound, match="holds no Tollgate state"):
        tollgate.Engine(missing, open_existing=True)
    assert not (tmp_path / "typo").exists()
    with tollgate.Engine(tmp_path / "state") as engine:
        engine.create_project("kept")
    with tollgate.Engine(tmp_path / "state", open_existing=True) as engine:
        assert engine.projects() == ["kept"]


def test_the_installation_directory_option_beats_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TOLLGATE_INSTALLATION")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    with tollgate.Engine(tmp_path / "state", installation_dir=tmp_path / "mine") as engine:
        engine.create_project("p")
    assert (tmp_path / "mine").is_dir()
    assert not (tmp_path / "xdg").exists()


def test_a_held_admin_lock_makes_admin_calls_busy_within_the_timeout(state_dir: Path) -> None:
    with tollgate.Engine(state_dir, admin_lock_timeout_ms=150) as engine:
        # Another open file description: flock conflicts as with another process.
        with open(state_dir / "admin.lock", "r+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            started = time.monotonic()
            with pytest.raises(tollgate.Busy, match="still held .* after 150 ms"):
                engine.create_project("blocked")
            assert time.monotonic() - started >= 0.14
            with pytest.raises(tollgate.Busy):
                tollgate.Engine(state_dir, admin_lock_timeout_ms=0)
            fcntl.flock(lock, fcntl.LOCK_UN)
        engine.create_project("after")
        assert engine.projects() == ["after"]


def test_option_values_are_checked(tmp_path: Path) -> None:
    with pytest.raises(tollgate.InvalidArgument, match="admin_lock_timeout_ms"):
        tollgate.Engine(tmp_path / "s", admin_lock_timeout_ms=-1)
    with pytest.raises(tollgate.InvalidArgument, match="public_key"):
        tollgate.Engine(tmp_path / "s", trusted_keys=["not a vendor key"])
    assert not (tmp_path / "s").exists()


def test_a_state_opened_with_another_installation_is_an_installation_mismatch(
    tmp_path: Path, installation: Path
) -> None:
    state = tmp_path / "state"
    with tollgate.Engine(state) as engine:
        engine.create_project("p")

    def files() -> dict:
        # The SQLite journal files (-wal, -shm) aside: opening a database may touch them.
        return {
            p.name: p.read_bytes()
            for p in state.iterdir()
            if p.is_file() and not p.name.endswith(("-wal", "-shm"))
        }

    before = files()
    other = tmp_path / "other-installation"
    with pytest.raises(tollgate.InstallationMismatch) as refused:
        tollgate.Engine(state, installation_dir=other)
    assert refused.value.status == tollgate.Status.INSTALLATION_MISMATCH == 28
    assert str(refused.value).startswith(
        f"state directory {state.resolve()} was made by another installation than the "
        f"installation directory {other} it was opened with: open it with the installation "
        "directory that made it (Options::installation_dir, "
        "tg_engine_options_set_installation_dir or TOLLGATE_INSTALLATION)"
    ), str(refused.value)
    assert isinstance(refused.value, tollgate.TollgateError)
    assert not isinstance(refused.value, tollgate.Tampered)
    assert tollgate.ERRORS[28] is tollgate.InstallationMismatch
    assert tollgate.ERRORS[29] is tollgate.Unavailable
    # A refusal changes nothing: the installation that made it still opens it.
    assert files() == before
    with tollgate.Engine(state, installation_dir=installation) as engine:
        assert engine.projects() == ["p"]
