"""Every status code of the C ABI becomes its exception class, with the library's message."""

import pickle
import re
from pathlib import Path

import pytest
import tollgate
from tollgate import _error


def camel(name: str) -> str:
    assert name.startswith("TG_"), name
    return "".join(part.capitalize() for part in name[3:].split("_"))


def test_table_matches_the_library_status_names() -> None:
    assert set(tollgate.ERRORS) == set(range(1, 30))
    for status, cls in tollgate.ERRORS.items():
        assert cls.__name__ == camel(_error.status_name(status))
        assert cls.STATUS == status
        assert issubclass(cls, tollgate.TollgateError)
        assert getattr(tollgate, cls.__name__) is cls
    assert _error.status_name(0) == "TG_OK"


def test_error_carries_message_and_status_and_pickles() -> None:
    error = tollgate.Exhausted("license exhausted: 5 bytes requested", tollgate.Status.EXHAUSTED)
    assert str(error) == error.message == "license exhausted: 5 bytes requested"
    assert error.status is tollgate.Status.EXHAUSTED
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is tollgate.Exhausted
    assert (copy.message, copy.status) == (error.message, error.status)
    assert tollgate.Panic("boom").status == tollgate.Status.PANIC
    assert tollgate.TollgateError("new", 99).status == 99
    assert isinstance(tollgate.InvalidArgument("x"), ValueError)


def test_invalid_argument_from_bad_json(engine, key) -> None:
    engine.create_project("p")
    with pytest.raises(tollgate.InvalidArgument, match="key JSON"):
        engine.add_key("p", "{not json")
    with pytest.raises(tollgate.InvalidArgument, match="limit_bytes"):
        engine.add_key("p", key("K", limit=0))
    with pytest.raises(TypeError):
        engine.add_key("p", ["not", "a", "key"])


def test_invalid_argument_from_names(engine) -> None:
    with pytest.raises(tollgate.InvalidArgument, match="NUL") as nul:
        engine.create_project("a\0b")
    assert nul.value.status == tollgate.Status.INVALID_ARGUMENT
    with pytest.raises(tollgate.InvalidArgument, match="project name"):
        engine.create_project("x" * 65)
    with pytest.raises(tollgate.InvalidArgument, match="project name"):
        engine.create_project("")
    with pytest.raises(tollgate.InvalidArgument, match="NUL"):
        engine.remove_reserve("p", "K\0")
    with pytest.raises(tollgate.InvalidArgument):
        engine.create_project("\udc80")
    assert engine.projects() == []


def test_invalid_open_options(state_dir) -> None:
    with pytest.raises(tollgate.InvalidArgument, match="capacity"):
        tollgate.Engine(state_dir, capacity=0)
    with pytest.raises(tollgate.InvalidArgument, match="capacity"):
        tollgate.Engine(state_dir, capacity=1 << 32)
    with pytest.raises(tollgate.InvalidArgument, match="flush_interval_ms"):
        tollgate.Engine(state_dir, flush_interval_ms=-1)
    with pytest.raises(TypeError):
        tollgate.Engine(state_dir, capacity="10")
    with pytest.raises(tollgate.InvalidArgument, match="NUL"):
        tollgate.Engine(str(state_dir) + "\0x")


def test_not_found(engine, key) -> None:
    with pytest.raises(tollgate.NotFound, match='"nope"'):
        engine.project("nope")
    with pytest.raises(tollgate.NotFound):
        engine.view("nope")
    with pytest.raises(tollgate.NotFound):
        engine.keys("nope")
    with pytest.raises(tollgate.NotFound):
        engine.add_key("nope", key("K"))
    engine.create_project("p")
    with pytest.raises(tollgate.NotFound, match="R-9"):
        engine.remove_reserve("p", "R-9")


def test_already_exists(engine) -> None:
    engine.create_project("p")
    with pytest.raises(tollgate.AlreadyExists, match='project "p" already exists'):
        engine.create_project("p")


def test_exhausted(engine, key) -> None:
    engine.create_project("p")
    engine.add_key("p", key("A", limit=100))
    with engine.project("p") as project:
        with pytest.raises(tollgate.Exhausted, match="101 bytes requested but only 100 remain"):
            project.consume(101)
        assert project.usage().active_used == 0


def test_expired_key_is_refused_on_add(engine, key) -> None:
    engine.create_project("p")
    with pytest.raises(tollgate.Expired, match="A-OLD"):
        engine.add_key("p", key("A-OLD", expires_at="2020-01-01T00:00:00Z"))
    engine.add_key("p", key("A"))
    with pytest.raises(tollgate.Expired):
        engine.add_key("p", key("R-OLD", expires_at="2020-01-01T00:00:00Z"))


def test_no_active_key(engine, key) -> None:
    engine.create_project("p")
    with pytest.raises(tollgate.NoActiveKey):
        engine.add_reserve("p", key("R"))
    with engine.project("p") as project:
        with pytest.raises(tollgate.NoActiveKey, match="no active license key"):
            project.consume(1)


def test_reserve_occupied(engine, key) -> None:
    engine.create_project("p")
    engine.add_key("p", key("A"))
    engine.add_key("p", key("R"))
    with pytest.raises(tollgate.ReserveOccupied, match='already has reserve key "R"'):
        engine.add_key("p", key("R2"))


def test_type_edition_and_scheme_mismatch(engine, key) -> None:
    engine.create_project("p")
    engine.add_key("p", key("A"))
    with pytest.raises(tollgate.TypeMismatch, match='reserve key "R" is offline'):
        engine.add_key("p", key("R", delivery="offline"))
    with pytest.raises(tollgate.EditionMismatch, match="enterprise"):
        engine.add_key("p", key("R", edition="enterprise"))
    with pytest.raises(tollgate.SchemeMismatch, match="per_core"):
        engine.add_reserve("p", key("R", scheme={"per_core": {"max_cores": 64}}))
    assert [k["key"]["id"] for k in engine.keys("p")] == ["A"]


def test_subscription(engine, key) -> None:
    engine.create_project("p")
    engine.add_key("p", key("S", kind="subscription"))
    with pytest.raises(tollgate.Subscription, match='"S" is a subscription key'):
        engine.add_key("p", key("R"))


def test_duplicate_key(engine, key) -> None:
    engine.create_project("p")
    engine.create_project("q")
    engine.add_key("p", key("A"))
    # The same document in another project is the same key, one quota (not a duplicate).
    engine.add_key("q", key("A"))
    # Another document under a used id is.
    engine.create_project("r")
    with pytest.raises(tollgate.DuplicateKey, match='"A"'):
        engine.add_key("r", key("A", limit=999))


def test_corrupt_state_is_refused_and_left_alone(state_dir: Path, key) -> None:
    with tollgate.Engine(state_dir) as engine:
        engine.create_project("p")
        engine.add_key("p", key("A"))
    hot = state_dir / "hot.tgs"
    hot.write_bytes(b"garbage" * 100)
    with pytest.raises(tollgate.CorruptState, match=re.escape(str(hot))):
        tollgate.Engine(state_dir)
    assert hot.read_bytes() == b"garbage" * 100


def test_io(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(tollgate.Io):
        tollgate.Engine(blocker / "state")


def test_capacity(state_dir: Path, key) -> None:
    with tollgate.Engine(state_dir, capacity=2) as engine:
        engine.create_project("a")
        engine.create_project("b")
        with pytest.raises(tollgate.Capacity, match="maximum of 2"):
            engine.create_project("c")
        with pytest.raises(tollgate.Capacity):
            engine.add_key("a", key("C", scheme={"per_core": {"max_cores": 4}}))
        assert engine.projects() == ["a", "b"]
