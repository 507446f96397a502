"""Seats (per-machine and per-core keys), instances licensed from pools, listing, shortfall,
groups and bulk reserve activation, through the Python package (rules R8, R16 and R22–R26 in
docs/rules.md)."""

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest
import tollgate
from tollgate import SeatUsage

PYTHON_DIR = Path(__file__).resolve().parents[2] / "python"
NOT_PURCHASED = "You have not purchased licenses of this type"


def machines(os_class: str, count: int) -> dict:
    return {"per_machine": {"os": os_class, "max_machines": count}}


def in_days(days: int) -> datetime:
    return datetime.now(timezone.utc) + timedelta(days=days)


# --- Seats ------------------------------------------------------------------------------------


def test_acquire_true_is_refused_not_taken_as_one_seat(engine, key) -> None:
    """Regression: a ``bool`` is not a number of seats."""
    engine.create_project("svm")
    engine.add_key("svm", key("S", scheme=machines("server", 3)))
    with engine.seats("svm", "server") as server:
        for call in (server.acquire, server.release):
            with pytest.raises(TypeError, match="^units must be an int, not bool$"):
                call(True)
        assert server.held == 0 and server.usage().held == 0


def test_seats_up_to_the_bound_then_exhausted(engine, key) -> None:
    engine.create_project("svm")
    engine.add_key("svm", key("S", scheme=machines("server", 3)))
    engine.add_key("svm", key("D", scheme=machines("desktop", 1)))
    with engine.seats("svm", "server") as server, engine.seats("svm", "desktop") as desktop:
        server.acquire(2)
        server.acquire()
        with pytest.raises(
            tollgate.Exhausted,
            match="no free seats: 1 requested but only 0 of the active key's seats are free in all the projects that hold it",
        ) as refused:
            server.acquire()
        assert refused.value.status == tollgate.Status.EXHAUSTED
        # A project holds its server and desktop pairs at once, each bounded by its own key.
        desktop.acquire()
        with pytest.raises(tollgate.Exhausted):
            desktop.acquire()
        assert server.usage() == SeatUsage(
            held=3, limit=3, reserved_limit=0, has_reserved=False, switches=0
        )
        assert (server.held, server.usage().free) == (3, 0)
        assert desktop.usage() == SeatUsage(1, 1, 0, False, 0)
        server.release(3)
        assert (server.held, server.usage().held, server.usage().free) == (0, 0, 3)
        assert desktop.held == 1


def test_release_more_than_held_is_not_held(engine, key) -> None:
    engine.create_project("svm")
    engine.add_key("svm", key("C", scheme={"per_core": {"max_cores": 16}}))
    with engine.seats("svm", "cores") as cores:
        cores.acquire(8)
        with pytest.raises(tollgate.NotHeld, match="cannot release 9 seats: only 8 are held"):
            cores.release(9)
        assert (cores.held, cores.usage().held) == (8, 8)
        cores.release(8)
        with pytest.raises(tollgate.NotHeld, match="only 0 are held"):
            cores.release()


def test_seats_reserve_and_refusals(engine, key) -> None:
    engine.create_project("svm")
    with engine.seats("svm", "server") as server:
        with pytest.raises(tollgate.NoActiveKey):
            server.acquire()
        engine.add_key("svm", key("S", scheme=machines("server", 2)))
        engine.add_key("svm", key("S-R", scheme=machines("server", 5)))
        server.acquire(2)
        assert server.usage() == SeatUsage(2, 2, 5, True, 0)
    with pytest.raises(tollgate.InvalidArgument, match="seat_class"):
        engine.seats("svm", "data_volume")
    with pytest.raises(tollgate.NotFound):
        engine.seats("nope", "server")
    with engine.seats("svm", "server") as server:
        with pytest.raises(tollgate.InvalidArgument, match="invalid units"):
            server.acquire(-1)
        with pytest.raises(tollgate.InvalidArgument, match="invalid units"):
            server.release(1 << 64)
        with pytest.raises(TypeError, match="units must be an int"):
            server.acquire(1.5)  # type: ignore[arg-type]


def test_threads_share_one_seat_gauge_exactly(engine, key) -> None:
    engine.create_project("svm")
    engine.add_key("svm", key("C", scheme={"per_core": {"max_cores": 1000}}))
    taken = []
    with engine.seats("svm", "cores") as cores:

        def take() -> None:
            count = 0
            while True:
                try:
                    cores.acquire(1)
                except tollgate.Exhausted:
                    break
                count += 1
            taken.append(count)

        threads = [threading.Thread(target=take) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert (sum(taken), cores.held, cores.usage().held) == (1000, 1000, 1000)
        cores.release(1000)
        assert cores.usage().held == 0


HOLDER = """
import sys, time, tollgate
engine = tollgate.Engine(sys.argv[1])
seats = engine.seats("svm", "server")
seats.acquire(int(sys.argv[2]))
print("HELD", seats.held, flush=True)
time.sleep(600)
"""


@pytest.fixture
def spawn_holder(state_dir: Path) -> Iterator:
    """Starts a Python process that takes seats on svm's server pair and waits to be killed."""
    children = []

    def spawn(units: int) -> subprocess.Popen:
        env = dict(os.environ, PYTHONPATH=str(PYTHON_DIR), TOLLGATE_LIBRARY=tollgate.LIBRARY_PATH)
        child = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(state_dir), str(units)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        children.append(child)
        assert child.stdout is not None
        assert child.stdout.readline().split() == ["HELD", str(units)]
        return child

    yield spawn
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait()
        if child.stdout:
            child.stdout.close()


def kill9(child: subprocess.Popen) -> None:
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL


def test_seats_of_a_killed_process_are_reclaimed(engine, key, spawn_holder) -> None:
    engine.create_project("svm")
    engine.add_key("svm", key("S", scheme=machines("server", 4)))
    with engine.seats("svm", "server") as seats:
        child = spawn_holder(3)
        assert seats.usage() == SeatUsage(3, 4, 0, False, 0)
        assert seats.held == 0  # the child's seats, not this process's
        with pytest.raises(tollgate.Exhausted):
            seats.acquire(2)
        assert engine.reclaim_seats() == []  # the holder is alive
        # The refusal also asked the engine's reclaimer thread for a pass (it polls every
        # 50 ms): let it run while the holder is alive, so the kill below is reclaimed only by
        # the explicit call.
        time.sleep(0.3)
        kill9(child)
        assert seats.usage().held == 3  # counted until reclaimed
        reclaimed = engine.reclaim_seats()
        assert reclaimed == [
            {"project": "svm", "class": "per_machine server", "pid": child.pid, "units": 3}
        ]
        assert seats.usage() == SeatUsage(0, 4, 0, False, 0)
        assert engine.reclaim_seats() == []
        seats.acquire(4)
        assert seats.usage() == SeatUsage(4, 4, 0, False, 0)
    kinds = [e["kind"] for e in engine.events(max=10_000)]
    assert "seats_reclaimed" in kinds


def test_a_refused_acquire_reclaims_dead_holders_first(engine, key, spawn_holder) -> None:
    engine.create_project("svm")
    engine.add_key("svm", key("S", scheme=machines("server", 4)))
    with engine.seats("svm", "server") as seats:
        kill9(spawn_holder(4))
        assert seats.usage().held == 4
        # The refusal asks the engine's reclaimer thread to take the dead holder's seats back;
        # a retry a moment later succeeds.
        with pytest.raises(tollgate.Exhausted):
            seats.acquire(4)
        deadline = time.monotonic() + 5
        while True:
            try:
                seats.acquire(4)
                break
            except tollgate.Exhausted:
                assert time.monotonic() < deadline, "the dead holder's seats were never reclaimed"
                time.sleep(0.01)
        assert (seats.held, seats.usage()) == (4, SeatUsage(4, 4, 0, False, 0))


# --- Instances and pools ------------------------------------------------------------------------


def test_instance_check_assign_unassign(engine) -> None:
    engine.add_instance("web-01", "linux")
    with engine.instance("web-01") as instance:
        with pytest.raises(tollgate.NoActiveKey):
            instance.check()
        (license_id,) = engine.buy_licenses("server", 1, "annual")
        assignment = engine.assign("web-01")
        assert assignment == {
            "instance": "web-01",
            "license": license_id,
            "license_type": "server",
            "from_company_pool": False,
            "replaced_expired": None,
        }
        assert instance.check() is None
        assert engine.instances() == [
            {"name": "web-01", "os": "linux", "company": None, "license": license_id}
        ]
        assert engine.unassign("web-01") == license_id
        with pytest.raises(tollgate.NoActiveKey):
            instance.check()
        with pytest.raises(tollgate.NotFound, match='instance "web-01" holds no pool license'):
            engine.unassign("web-01")
        # Back in the pool: it can be assigned again.
        assert engine.assign("web-01")["license"] == license_id
        instance.check()
    with pytest.raises(tollgate.NotFound, match='instance "nope" does not exist'):
        engine.instance("nope")
    with pytest.raises(tollgate.AlreadyExists):
        engine.add_instance("web-01", "windows")
    with pytest.raises(tollgate.InvalidArgument):
        engine.add_instance("web-02", "beos")


def test_an_expired_license_is_refused_then_replaced(engine) -> None:
    expiry = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=2)
    (old,) = engine.buy_licenses("desktop", 1, "annual", expires_at=expiry)
    engine.add_instance("mac-01", "macos")
    engine.assign("mac-01")
    with engine.instance("mac-01") as instance:
        instance.check()
        while datetime.now(timezone.utc) < expiry + timedelta(milliseconds=100):
            time.sleep(0.05)
        with pytest.raises(
            tollgate.Expired,
            match="license expired: .*; request a new license key or contact your vendor$",
        ):
            instance.check()
        (new,) = engine.buy_licenses("desktop", 1, "annual")
        assignment = engine.assign("mac-01")
        assert (assignment["license"], assignment["replaced_expired"]) == (new, old)
        instance.check()


def test_threads_assigning_from_one_pool_never_share_a_license(engine) -> None:
    pool = set(engine.buy_licenses("server", 10, "annual"))
    names = [f"vm-{i:02}" for i in range(16)]
    for name in names:
        engine.add_instance(name, "linux")
    got = {}
    refused = []

    def assign(batch) -> None:
        for name in batch:
            try:
                got[name] = engine.assign(name)["license"]
            except tollgate.NoLicenseAvailable:
                refused.append(name)

    threads = [threading.Thread(target=assign, args=(names[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(got), len(refused)) == (10, 6)
    assert set(got.values()) == pool  # ten instances, ten distinct licenses
    assert {i["name"]: i["license"] for i in engine.instances() if i["license"]} == got


def test_payment_mode_is_fixed_by_the_first_purchase(engine) -> None:
    assert len(engine.buy_licenses("desktop", 2, "monthly")) == 2
    with pytest.raises(
        tollgate.PaymentModeMismatch,
        match="payment mode annual refused: the payment mode was fixed to monthly",
    ):
        engine.buy_licenses("desktop", 5, "annual")
    (desktop,) = engine.list_licenses(license_type="desktop")
    assert desktop["count"] == 2
    assert {lic["payment_mode"] for lic in desktop["licenses"]} == {"monthly"}
    engine.buy_licenses("server", 1, "monthly")


def test_linux_needs_desktop_or_server(engine) -> None:
    engine.buy_licenses("workstation", 2, "annual")
    engine.add_instance("db-01", "linux")
    with pytest.raises(
        tollgate.NoLicenseAvailable,
        match='no license available for instance "db-01": no valid, unassigned desktop or '
        "server license in the global pool",
    ):
        engine.assign("db-01")
    with pytest.raises(
        tollgate.LicenseTypeUnfit, match="a workstation license cannot license a linux instance"
    ):
        engine.assign("db-01", license_type="workstation")
    engine.add_instance("pc-01", "windows")
    assert engine.assign("pc-01")["license_type"] == "workstation"


def test_already_assigned_and_company_pool_first(engine) -> None:
    (global_id,) = engine.buy_licenses("server", 1, "annual")
    (acme_id,) = engine.buy_licenses("server", 1, "annual", company="Acme")
    engine.add_instance("acme-web", "macos", company="Acme")
    engine.add_instance("other-web", "macos", company="Globex")
    first = engine.assign("acme-web")
    assert (first["license"], first["from_company_pool"]) == (acme_id, True)
    with pytest.raises(
        tollgate.AlreadyAssigned, match=f'instance "acme-web" already holds license "{acme_id}"'
    ):
        engine.assign("acme-web")
    second = engine.assign("other-web")  # never another company's pool
    assert (second["license"], second["from_company_pool"]) == (global_id, False)
    engine.add_instance("other-db", "linux", company="Globex")
    with pytest.raises(tollgate.NoLicenseAvailable, match='company "Globex"\'s pool'):
        engine.assign("other-db")


def test_list_filters_and_the_not_purchased_message(engine) -> None:
    servers = engine.buy_licenses(
        "server", 2, "annual", expires_at=in_days(365), auto_renew=True, premium_support=True
    )
    (acme_server,) = engine.buy_licenses("server", 1, "annual", company="Acme", onboarding=True)
    trials = engine.buy_licenses("desktop", 2, "annual", kind="trial", company="Acme")
    engine.add_instance("web-01", "windows")
    assert engine.assign("web-01", license_type="server")["license"] == servers[0]

    def ids(listing, license_type="server"):
        (group,) = [g for g in listing if g["license_type"] == license_type]
        return [lic["id"] for lic in group["licenses"]]

    everything = engine.list_licenses()
    assert [(g["license_type"], g["count"], g["used"], g["message"]) for g in everything] == [
        ("server", 3, 1, None),
        ("desktop", 2, 0, None),
        ("workstation", 0, 0, NOT_PURCHASED),
    ]
    first = everything[0]["licenses"][0]
    assert (first["assigned_to"], first["premium_support"], first["onboarding"]) == (
        "web-01",
        True,
        False,
    )
    assert first["expires_at"].endswith("Z") and first["auto_renew"] is True
    assert everything[0]["licenses"][2]["onboarding"] is True
    (workstation,) = engine.list_licenses(license_type="workstation")
    assert (workstation["count"], workstation["message"]) == (0, NOT_PURCHASED)
    acme = engine.list_licenses(company="Acme")
    assert (ids(acme), ids(acme, "desktop")) == ([acme_server], trials)
    trial = engine.list_licenses(kind="trial")
    assert (ids(trial), ids(trial, "desktop")) == ([], trials)
    assert ids(engine.list_licenses(kind="commercial"), "desktop") == []
    # used/unused looks at commercial licenses only: the unassigned trials are not "unused".
    used = engine.list_licenses(used=True)
    assert (ids(used), ids(used, "desktop")) == ([servers[0]], [])
    unused = engine.list_licenses(used=False)
    assert (ids(unused), ids(unused, "desktop")) == ([servers[1], acme_server], [])
    assert ids(engine.list_licenses(search="WEB-01")) == [servers[0]]
    assert ids(engine.list_licenses(search="acme"), "desktop") == trials
    assert ids(engine.list_licenses(auto_renew_only=True)) == servers
    assert ids(engine.list_licenses(valid=True)) == [*servers, acme_server]
    assert ids(engine.list_licenses(valid=False)) == []
    combined = engine.list_licenses(company="Acme", kind="commercial", used=False)
    assert (ids(combined), ids(combined, "desktop")) == ([acme_server], [])


def test_purchase_arguments(engine) -> None:
    (dated,) = engine.buy_licenses("server", 1, "annual", expires_at=date(2099, 12, 31))
    (texted,) = engine.buy_licenses("server", 1, "annual", expires_at="2098-01-01T00:00:00Z")
    shifted = datetime(2097, 6, 1, 2, 0, tzinfo=timezone(timedelta(hours=2)))
    (aware,) = engine.buy_licenses("server", 1, "annual", expires_at=shifted)
    expiry = {lic["id"]: lic["expires_at"] for lic in engine.list_licenses()[0]["licenses"]}
    assert expiry == {
        dated: "2099-12-31T00:00:00Z",
        texted: "2098-01-01T00:00:00Z",
        aware: "2097-06-01T00:00:00Z",
    }
    with pytest.raises(tollgate.InvalidArgument, match="has no time zone"):
        engine.buy_licenses("server", 1, "annual", expires_at=datetime(2099, 1, 1))
    with pytest.raises(tollgate.InvalidArgument, match="expires_at"):
        engine.buy_licenses("server", 1, "annual", expires_at="2020-01-01T00:00:00Z")
    with pytest.raises(tollgate.InvalidArgument, match="quantity"):
        engine.buy_licenses("server", 0, "annual")
    with pytest.raises(tollgate.InvalidArgument, match="purchase"):
        engine.buy_licenses("laptop", 1, "annual")
    with pytest.raises(TypeError, match="quantity must be an int"):
        engine.buy_licenses("server", "3", "annual")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expires_at must be"):
        engine.buy_licenses("server", 1, "annual", expires_at=2099)  # type: ignore[arg-type]


def test_shortfall_counts(engine) -> None:
    # Instances are looked at by name, and each cover is spoken for once.
    engine.add_instance("a-linux", "linux")
    engine.add_instance("b-win", "windows")
    engine.add_instance("c-win", "windows")
    engine.add_instance("d-linux", "linux")
    engine.add_instance("e-mac", "macos")
    (soon,) = engine.buy_licenses("server", 1, "annual", expires_at=in_days(10))
    (renews,) = engine.buy_licenses("desktop", 1, "annual", expires_at=in_days(10), auto_renew=True)
    (lasting,) = engine.buy_licenses("desktop", 1, "annual")
    assert engine.assign("c-win", license_type="server")["license"] == soon
    assert engine.assign("d-linux", license_type="desktop")["license"] == renews
    assert engine.assign("e-mac", license_type="desktop")["license"] == lasting
    (cover,) = engine.buy_licenses("workstation", 1, "annual")

    report = engine.shortfall(days=30)
    assert report["days"] == 30
    assert [
        (t["license_type"], t["needed"], t["covered"], t["to_buy"]) for t in report["types"]
    ] == [
        ("server", 1, 0, 1),
        ("desktop", 1, 0, 1),
        ("workstation", 1, 1, 0),
    ]
    needs = [
        (n["instance"], n["reason"], n["license_type"], n["covered_by"]) for n in report["needs"]
    ]
    assert needs == [
        ("a-linux", "unlicensed", "desktop", None),
        ("b-win", "unlicensed", "workstation", cover),
        ("c-win", "expires_soon", "server", None),
    ]
    # Within 5 days nothing expires: only the unlicensed instances count.
    short = engine.shortfall(5)
    assert [n["instance"] for n in short["needs"]] == ["a-linux", "b-win"]
    assert [t["to_buy"] for t in short["types"]] == [0, 1, 0]
    assert engine.shortfall()["days"] == 30
    with pytest.raises(tollgate.InvalidArgument, match="days"):
        engine.shortfall(-1)


# --- Groups and bulk activation -----------------------------------------------------------------


def test_bulk_add_reserve_outcomes_per_project(engine, key) -> None:
    for name in ("svm-1", "svm-2", "svm-3"):
        engine.create_project(name)
    engine.add_key("svm-1", key("A-1"))
    engine.add_key("svm-2", key("A-2"))
    engine.add_to_group("cluster", ["svm-3", "svm-1"])
    engine.add_to_group("cluster", ("svm-1",))
    assert engine.groups() == [{"name": "cluster", "projects": ["svm-1", "svm-3"]}]

    outcomes = engine.add_reserve_bulk(key("R-1"), all=True)
    assert [(o["project"], o["status"], o["code"], o["role"]) for o in outcomes] == [
        ("svm-1", "TG_OK", 0, "reserved"),
        ("svm-2", "TG_OK", 0, "reserved"),
        ("svm-3", "TG_NO_ACTIVE_KEY", int(tollgate.Status.NO_ACTIVE_KEY), None),
    ]
    assert outcomes[0]["message"] == (
        "You have added an additional license key for project svm-1. After the first key\u2019s "
        "data usage is exhausted, migration will automatically continue with the reserved key."
    )
    assert "no active license key" in outcomes[2]["message"]
    for name in ("svm-1", "svm-2"):
        assert [(k["key"]["id"], k["status"]) for k in engine.keys(name)] == [
            (f"A-{name[-1]}", "active"),
            ("R-1", "reserved"),
        ]
    assert engine.keys("svm-3") == []

    grouped = engine.add_reserve_bulk(
        '{"id": "R-2", "delivery": "online", "kind": "commercial",'
        ' "edition": "standard",'
        ' "scheme": {"data_volume": {"limit_bytes": 10}}}',
        group="cluster",
    )
    assert [(o["project"], o["status"]) for o in grouped] == [
        ("svm-1", "TG_RESERVE_OCCUPIED"),
        ("svm-3", "TG_NO_ACTIVE_KEY"),
    ]
    (single,) = engine.add_reserve_bulk(key("R-3"), project="svm-3")
    assert single["status"] == "TG_NO_ACTIVE_KEY"

    with pytest.raises(tollgate.NotFound, match='group "nope" does not exist'):
        engine.add_reserve_bulk(key("R-4"), group="nope")
    with pytest.raises(tollgate.NotFound):
        engine.add_reserve_bulk(key("R-4"), project="nope")
    for targets in ({}, {"all": True, "group": "cluster"}, {"group": "cluster", "project": "x"}):
        with pytest.raises(tollgate.InvalidArgument, match="exactly one"):
            engine.add_reserve_bulk(key("R-4"), **targets)
    with pytest.raises(tollgate.NotFound):
        engine.add_to_group("cluster", ["svm-1", "nope"])
    with pytest.raises(TypeError, match="not a str"):
        engine.add_to_group("cluster", "svm-2")
    with pytest.raises(tollgate.InvalidArgument):
        engine.add_to_group("empty", [])
    assert engine.groups() == [{"name": "cluster", "projects": ["svm-1", "svm-3"]}]


# --- Handles ------------------------------------------------------------------------------------


def test_seat_and_instance_handles_after_close(state_dir: Path, key) -> None:
    engine = tollgate.Engine(state_dir)
    engine.create_project("svm")
    engine.add_key("svm", key("S", scheme=machines("server", 2)))
    engine.add_instance("web-01", "windows")
    seats = engine.seats("svm", "server")
    instance = engine.instance("web-01")
    assert repr(seats) == "<tollgate.Seats 'svm' server open>"
    assert repr(instance) == "<tollgate.Instance 'web-01' open>"
    assert (seats.name, seats.seat_class, instance.name) == ("svm", "server", "web-01")
    seats.acquire()
    seats.close()
    seats.close()
    for call in (seats.acquire, seats.release, seats.usage, lambda: seats.held):
        with pytest.raises(tollgate.ClosedError, match="server seats of project 'svm' is closed"):
            call()
    assert repr(seats).endswith("closed>")
    with engine.seats("svm", "server") as again:
        assert again.held == 1  # the seats belong to the process, not to the handle
        again.release()
    second = engine.seats("svm", "server")
    engine.close()
    assert second.closed and instance.closed
    with pytest.raises(tollgate.ClosedError, match="instance 'web-01' is closed"):
        instance.check()
    for call in (
        lambda: engine.seats("svm", "server"),
        lambda: engine.instance("web-01"),
        engine.reclaim_seats,
        engine.instances,
        engine.groups,
        engine.list_licenses,
        lambda: engine.buy_licenses("server", 1, "annual"),
    ):
        with pytest.raises(tollgate.ClosedError, match="engine for .* is closed"):
            call()
