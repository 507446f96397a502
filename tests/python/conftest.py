"""Fixtures of the Python package's tests.

The tests import `tollgate` from the repository's `python/` directory, which finds the shared
library in the workspace's `target/` (or at `TOLLGATE_LIBRARY`): build it first with
`cargo build -p tollgate-ffi`.
"""

import sys
from pathlib import Path
from typing import Any, Callable, Dict, Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "python"))

import tollgate  # noqa: E402  (needs the path above)

KeyFactory = Callable[..., Dict[str, Any]]


def make_key(key_id: str, limit: int = 1000, **fields: Any) -> Dict[str, Any]:
    """An online, commercial, standard data-volume key of `limit` bytes; `fields` override."""
    key: Dict[str, Any] = {
        "id": key_id,
        "delivery": "online",
        "kind": "commercial",
        "edition": "standard",
        "scheme": {"data_volume": {"limit_bytes": limit}},
    }
    key.update(fields)
    return key


@pytest.fixture(autouse=True)
def installation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test's own installation directory (`TOLLGATE_INSTALLATION`, read by every engine
    this process or its children open), so no test touches the real one under `$HOME`."""
    path = tmp_path / "installation"
    monkeypatch.setenv("TOLLGATE_INSTALLATION", str(path))
    return path


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """A fresh, not yet created, state directory."""
    return tmp_path / "state"


@pytest.fixture
def engine(state_dir: Path) -> Iterator[tollgate.Engine]:
    """An engine on a fresh state directory, closed after the test."""
    with tollgate.Engine(state_dir) as opened:
        yield opened


@pytest.fixture
def key() -> KeyFactory:
    """The key factory `make_key`."""
    return make_key
