"""Metering: consume, consume_partial, consume_many over every accepted input, and usage."""

import sys
import time
from array import array
from datetime import datetime, timedelta, timezone

import pytest
import tollgate


@pytest.fixture
def project(engine, key):
    """Project "p" with an Active key of 1000 bytes and a Reserved key of 500 bytes."""
    engine.create_project("p")
    engine.add_key("p", key("A", limit=1000))
    engine.add_key("p", key("R", limit=500))
    with engine.project("p") as opened:
        yield opened


def usage_tuple(project: tollgate.Project) -> tuple:
    u = project.usage()
    return (
        u.active_used,
        u.active_limit,
        u.reserved_used,
        u.reserved_limit,
        u.has_reserved,
        u.switches,
    )


def test_consume_through_the_switch(project) -> None:
    assert usage_tuple(project) == (0, 1000, 0, 500, True, 0)
    project.consume(600)
    project.consume(300)
    assert usage_tuple(project) == (900, 1000, 0, 500, True, 0)
    project.consume(0)
    # 100 bytes fit on the Active key, 100 go to the Reserved key, which becomes Active.
    project.consume(200)
    assert usage_tuple(project) == (100, 500, 0, 0, False, 1)
    project.consume(400)
    assert usage_tuple(project) == (500, 500, 0, 0, False, 1)
    with pytest.raises(tollgate.Exhausted):
        project.consume(1)
    usage = project.usage()
    assert usage.remaining == 0
    assert usage == project.usage()
    assert repr(usage).startswith("Usage(active_used=500, active_limit=500")


def test_refused_consume_charges_nothing(project) -> None:
    project.consume(1400)
    with pytest.raises(tollgate.Exhausted, match="101 bytes requested but only 100 remain"):
        project.consume(101)
    assert project.usage().remaining == 100
    project.consume(100)


def test_consume_rejects_amounts_outside_u64(project) -> None:
    with pytest.raises(tollgate.InvalidArgument, match="-1 is outside"):
        project.consume(-1)
    with pytest.raises(tollgate.InvalidArgument, match=str(2**64 + 5)):
        project.consume(2**64 + 5)  # ctypes alone would wrap this to 5
    with pytest.raises(tollgate.InvalidArgument):
        project.consume_partial(-1)  # ctypes alone would wrap this to "all that remains"
    with pytest.raises(TypeError):
        project.consume(1.5)
    with pytest.raises(TypeError):
        project.consume("10")
    with pytest.raises(tollgate.Exhausted):
        project.consume(2**64 - 1)
    assert project.usage().remaining == 1500


def test_consume_partial(project) -> None:
    assert project.consume_partial(900) == 900
    assert project.consume_partial(1000) == 600
    assert usage_tuple(project) == (500, 500, 0, 0, False, 1)
    with pytest.raises(tollgate.Exhausted):
        project.consume_partial(1)


def test_consume_many_with_a_list(project) -> None:
    assert project.consume_many([]) == 0
    assert project.consume_many([100] * 9) == 9
    assert project.consume_many((50, 50, 200)) == 3
    assert usage_tuple(project) == (200, 500, 0, 0, False, 1)
    # Stops at the first refusal; the refusal is the count, not an exception.
    assert project.consume_many([200, 50, 100, 10]) == 2
    assert project.usage().remaining == 50
    assert project.consume_many([60]) == 0
    assert project.consume_many(iter([25, 25])) == 2
    assert project.consume_many(range(1, 3)) == 0
    assert usage_tuple(project) == (500, 500, 0, 0, False, 1)


def test_consume_many_rejects_bad_ints(project) -> None:
    with pytest.raises(tollgate.InvalidArgument):
        project.consume_many([1, -1])
    with pytest.raises(tollgate.InvalidArgument):
        project.consume_many([2**64])
    with pytest.raises(TypeError):
        project.consume_many([1.5])
    with pytest.raises(TypeError):
        project.consume_many("12345678")
    with pytest.raises(TypeError):
        project.consume_many(7)
    assert project.usage().remaining == 1500


def test_consume_many_with_array(project) -> None:
    for typecode in ("q", "i", "d"):
        with pytest.raises(tollgate.InvalidArgument, match="not unsigned 64-bit"):
            project.consume_many(array(typecode, [1] * 8))
    with pytest.raises(tollgate.InvalidArgument, match="whole number of 8-byte"):
        project.consume_many(array("B", [1] * 7))
    assert project.usage().remaining == 1500
    assert project.consume_many(array("Q", [100] * 10)) == 10
    assert project.consume_many(array("Q", [250, 250, 1])) == 2
    assert usage_tuple(project) == (500, 500, 0, 0, False, 1)
    assert project.consume_many(array("Q")) == 0


def native(*amounts: int) -> bytes:
    return b"".join(a.to_bytes(8, sys.byteorder) for a in amounts)


def test_consume_many_with_bytes_and_bytearray(project) -> None:
    assert project.consume_many(native(100, 200)) == 2
    assert project.consume_many(bytearray(native(300, 500, 1000))) == 2
    assert usage_tuple(project) == (100, 500, 0, 0, False, 1)
    assert project.consume_many(b"") == 0
    with pytest.raises(tollgate.InvalidArgument, match="whole number of 8-byte"):
        project.consume_many(b"\x01" * 12)


def test_consume_many_with_memoryview(project) -> None:
    data = native(0, 100, 100, 100)
    assert project.consume_many(memoryview(data)[8:]) == 3
    assert project.consume_many(memoryview(bytearray(native(5, 5))).cast("Q")) == 2
    assert project.consume_many(memoryview(array("Q", [10, 20]))) == 2
    # Not 8-byte aligned: copied once, still exact.
    assert project.consume_many(memoryview(b"\0" + native(7, 8))[1:]) == 2
    assert project.usage().active_used == 355
    with pytest.raises(tollgate.InvalidArgument):
        project.consume_many(memoryview(array("Q", [1, 2, 3, 4]))[::2])
    with pytest.raises(tollgate.InvalidArgument, match="not unsigned 64-bit"):
        project.consume_many(memoryview(native(1, 2)).cast("I"))
    assert project.usage().active_used == 355


def test_consume_many_reads_the_buffer_in_place(project) -> None:
    """No copy: the library sees the caller's memory, so a change before the call is seen."""
    amounts = array("Q", [1, 1, 1])
    amounts[2] = 10_000
    assert project.consume_many(amounts) == 2
    amounts[2] = 3
    assert project.consume_many(amounts) == 3
    assert project.usage().active_used == 7


def test_consume_many_with_numpy(project) -> None:
    np = pytest.importorskip("numpy")
    with pytest.raises(tollgate.InvalidArgument):
        project.consume_many(np.arange(8, dtype=np.int64))
    with pytest.raises(tollgate.InvalidArgument):
        project.consume_many(np.arange(8, dtype=np.uint32))
    with pytest.raises(tollgate.InvalidArgument):
        project.consume_many(np.arange(8, dtype=np.uint64)[::2])
    with pytest.raises(tollgate.InvalidArgument):
        project.consume(np.int64(-1))
    project.consume(np.uint64(0))  # numpy scalars are ints too
    assert project.usage().remaining == 1500
    assert project.consume_many(np.full(10, 100, dtype=np.uint64)) == 10
    assert project.consume_many(np.array([200, 200, 200], dtype="<u8")) == 2
    assert project.consume_many(np.zeros((2, 3), dtype=np.uint64)) == 6
    assert usage_tuple(project) == (400, 500, 0, 0, False, 1)
    readonly = np.array([50, 50], dtype=np.uint64)
    readonly.setflags(write=False)
    assert project.consume_many(readonly) == 2
    assert project.usage().remaining == 0


def test_consume_many_returns_refusals_of_every_kind(engine, key) -> None:
    engine.create_project("empty")
    with engine.project("empty") as project:
        assert project.consume_many([1, 2]) == 0  # no Active key: refused, not raised
        with pytest.raises(tollgate.NoActiveKey):
            project.consume(1)


def rfc3339(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_expiry_switches_to_the_reserve_then_refuses(engine, key) -> None:
    soon = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=2)
    engine.create_project("p")
    engine.add_key("p", key("A", limit=1000, expires_at=rfc3339(soon)))
    engine.add_key("p", key("R", limit=500, expires_at=rfc3339(soon + timedelta(seconds=1))))
    with engine.project("p") as project:
        project.consume(10)
        while datetime.now(timezone.utc) < soon + timedelta(milliseconds=100):
            time.sleep(0.05)
        project.consume(20)  # the Active key expired: the reserve takes over
        assert usage_tuple(project) == (20, 500, 0, 0, False, 1)
        while datetime.now(timezone.utc) < soon + timedelta(seconds=1, milliseconds=100):
            time.sleep(0.05)
        with pytest.raises(tollgate.Expired, match="expired"):
            project.consume(1)
        assert project.consume_many([1]) == 0


def test_consume_many_without_the_buffer_api(project, monkeypatch) -> None:
    """Outside CPython (no ctypes.pythonapi) buffers are copied once, with the same checks."""
    from tollgate import _ffi

    monkeypatch.setattr(_ffi, "HAS_BUFFER_API", False)
    assert project.consume_many(array("Q", [100, 100])) == 2
    assert project.consume_many(native(50, 50)) == 2
    assert project.consume_many(memoryview(b"\0" + native(1, 2))[1:]) == 2
    assert project.consume_many(iter([3, 4])) == 2
    with pytest.raises(tollgate.InvalidArgument, match="not unsigned 64-bit"):
        project.consume_many(array("q", [1]))
    with pytest.raises(tollgate.InvalidArgument, match="C-contiguous"):
        project.consume_many(memoryview(array("Q", [1, 2, 3, 4]))[::2])
    assert project.usage().active_used == 310


def test_consume_true_is_refused_not_charged_as_one_byte(project) -> None:
    """Regression: ``consume(True)`` charged 1 byte."""
    before = usage_tuple(project)
    for call in (project.consume, project.consume_partial):
        for flag in (True, False):
            with pytest.raises(TypeError, match="^amount must be an int, not bool$"):
                call(flag)
    for amounts in ([True], (1, False), iter([2, True])):
        with pytest.raises(TypeError, match="bool is not an amount"):
            project.consume_many(amounts)
    assert usage_tuple(project) == before


def test_signed_byte_arrays_are_refused_like_every_other_typed_buffer(project) -> None:
    """Regression: ``array('b')`` was read as raw bytes while ``array('q')`` was refused.
    Only unsigned 64-bit items, or raw unsigned bytes (format 'B'), are read."""
    before = usage_tuple(project)
    for typecode in ("b", "q"):
        with pytest.raises(
            tollgate.InvalidArgument,
            match=f"a buffer of format '{typecode}' with .-byte items is not unsigned 64-bit",
        ):
            project.consume_many(array(typecode, [1] * 8))
    with pytest.raises(tollgate.InvalidArgument, match="format 'c'"):
        project.consume_many(memoryview(native(1)).cast("c"))
    assert usage_tuple(project) == before
    # Raw unsigned bytes still are eight-byte amounts.
    assert project.consume_many(array("B", native(7))) == 1
    assert project.usage().active_used == before[0] + 7


def test_lifetime_usage_keeps_the_total_across_a_switch_and_a_renewal(engine, key) -> None:
    engine.create_project("p")
    with engine.project("p") as project:
        assert project.lifetime_usage() == tollgate.LifetimeUsage(
            tollgate.Usage(0, 0, 0, 0, False, 0), 0, None, None
        )
        engine.add_key("p", key("A-1", limit=80))
        engine.add_reserve("p", key("A-2", limit=100))
        project.consume(50)
        project.consume(70)  # 30 to A-1, 40 to A-2, which becomes Active
        after = project.lifetime_usage()
        assert after == tollgate.LifetimeUsage(
            tollgate.Usage(40, 100, 0, 0, False, 1), 120, "A-2", None
        )
        assert after.usage == project.usage()
        engine.replace_key("p", key("A-3", limit=1000))
        project.consume(5)
        assert project.lifetime_usage() == tollgate.LifetimeUsage(
            tollgate.Usage(5, 1000, 0, 0, False, 1), 125, "A-3", None
        )
    with pytest.raises(tollgate.ClosedError):
        project.lifetime_usage()
