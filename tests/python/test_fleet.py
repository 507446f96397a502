"""Fleet mode (``Engine(..., store=, host=)``) against a real PostgreSQL server each test starts.

The server is started as the Rust tests start theirs (``store/tests/common/mod.rs``): ``initdb``
into a temporary directory, a Unix socket there and no TCP, run as user ``postgres`` when the
tests run as root (PostgreSQL refuses root; the directory is then opened to it). The directory
comes from ``tempfile`` (``$TMPDIR``, which ``scripts/test.sh`` lets others enter) rather than
pytest's ``tmp_path``, whose deeper path may not be reachable by ``postgres`` and may be too
long for a socket. Without the server binaries (Debian's ``postgresql`` package, under
``/usr/lib/postgresql/*/bin``) the tests that need one are skipped with a warning.
"""

import os
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import pytest

import tollgate
from conftest import KeyFactory

MIB = 1 << 20


def server_bin() -> Optional[Path]:
    """The directory of PostgreSQL's server programs, the newest version installed."""
    root = Path("/usr/lib/postgresql")
    if not root.is_dir():
        return None
    versions = sorted(
        version / "bin"
        for version in root.iterdir()
        if (version / "bin" / "pg_ctl").exists() and (version / "bin" / "initdb").exists()
    )
    return versions[-1] if versions else None


class Server:
    """A PostgreSQL server on a Unix socket in its own temporary directory."""

    def __init__(self, bin_dir: Path, directory: str) -> None:
        self.bin_dir = bin_dir
        self.directory = directory
        # PostgreSQL refuses to run as root.
        self.as_postgres = os.geteuid() == 0

    @property
    def params(self) -> str:
        """Connection parameters for the ``postgres`` database over the socket."""
        return f"host={self.directory} user=postgres dbname=postgres"

    def _run(self, program: str, *args: str, check: bool = True) -> None:
        command = [str(self.bin_dir / program), *args]
        if self.as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True)
        if check and done.returncode != 0:
            raise AssertionError(f"{program} {args}: {done.stdout}{done.stderr}")

    def init(self) -> None:
        data = f"{self.directory}/data"
        self._run("initdb", "-D", data, "-A", "trust", "-U", "postgres", "--no-sync")

    def start(self) -> None:
        """Starts the (stopped) server and waits until it accepts."""
        options = f"-k {self.directory} -c listen_addresses='' -c fsync=off"
        data, log = f"{self.directory}/data", f"{self.directory}/log"
        self._run("pg_ctl", "-D", data, "-o", options, "-l", log, "-w", "start")

    def stop_immediate(self, check: bool = True) -> None:
        """Stops the server at once, as a crash would."""
        data = f"{self.directory}/data"
        self._run("pg_ctl", "-D", data, "-m", "immediate", "-w", "stop", check=check)

    def account(self, key_id: str) -> Tuple[int, int, int]:
        """The store's ``used``, ``leased`` and ``in_doubt`` of key ``key_id``."""
        query = f"SELECT used, leased, in_doubt FROM tollgate_key_account WHERE id = '{key_id}'"
        psql = [str(self.bin_dir / "psql"), "-h", self.directory, "-U", "postgres"]
        done = subprocess.run(
            [*psql, "-d", "postgres", "-At", "-F", " ", "-c", query],
            capture_output=True,
            text=True,
            check=True,
        )
        used, leased, in_doubt = (int(part) for part in done.stdout.split())
        return used, leased, in_doubt


@pytest.fixture
def postgres() -> Iterator[Server]:
    """A fresh server, stopped and removed after the test; skips (with a warning) without
    PostgreSQL's server binaries."""
    bin_dir = server_bin()
    if bin_dir is None:
        message = (
            "SKIPPED: PostgreSQL's server binaries are not installed (/usr/lib/postgresql/*/bin); "
            "install Debian's postgresql package to run the fleet tests"
        )
        warnings.warn(message, stacklevel=2)
        pytest.skip(message)
    directory = tempfile.mkdtemp(prefix="tollgate-pg-")
    server = Server(bin_dir, directory)
    if server.as_postgres:
        os.chmod(directory, 0o777)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop_immediate(check=False)
        shutil.rmtree(directory, ignore_errors=True)


def drain(project: tollgate.Project, deadline_s: float = 60.0) -> Tuple[int, int]:
    """Consumes 64 KiB at a time until :class:`tollgate.Exhausted`, retrying
    :class:`tollgate.Unavailable` after 1 ms; returns what was granted and how many retries."""
    granted, retries = 0, 0
    started = time.monotonic()
    while True:
        assert time.monotonic() - started < deadline_s, "did not drain in time"
        try:
            granted += project.consume_partial(64 << 10)
        except tollgate.Unavailable:
            retries += 1
            time.sleep(0.001)
        except tollgate.Exhausted:
            return granted, retries


def open_host(
    state: Path, server: Server, key: KeyFactory, key_id: str, limit: int
) -> tollgate.Engine:
    """A fleet host on ``state`` with project ``p`` holding the data-volume key ``key_id``."""
    engine = tollgate.Engine(state, store=server.params, host="py-1", fleet_lease_ttl_ms=10_000)
    engine.create_project("p")
    engine.add_key("p", key(key_id, limit))
    return engine


def test_a_fleet_engine_drains_a_key_exactly(
    postgres: Server, tmp_path: Path, key: KeyFactory
) -> None:
    state = tmp_path / "state"
    limit = 8 * MIB
    with open_host(state, postgres, key, "PY-FLEET", limit) as engine:
        with engine.project("p") as project:
            granted, _ = drain(project)
            assert granted == limit
            with pytest.raises(tollgate.Exhausted):
                project.consume(1)
            assert project.usage().active_used == limit
    # The close settled the leases: the store charged exactly the limit.
    assert postgres.account("PY-FLEET") == (limit, 0, 0)
    # A fleet host's state is one for its whole life.
    with pytest.raises(tollgate.InvalidArgument, match='fleet host "py-1"'):
        tollgate.Engine(state)
    with pytest.raises(tollgate.InvalidArgument, match='not "py-2"'):
        tollgate.Engine(state, store=postgres.params, host="py-2")


def test_a_stopped_store_is_unavailable_and_the_engine_resumes_after_a_restart(
    postgres: Server, tmp_path: Path, key: KeyFactory
) -> None:
    limit = 16 * MIB
    with open_host(tmp_path / "state", postgres, key, "PY-OUTAGE", limit) as engine:
        with engine.project("p") as project:
            # A first grant, once the background thread has drawn a first stock.
            granted: List[int] = []
            started = time.monotonic()
            while not granted:
                assert time.monotonic() - started < 10, "never drawn"
                try:
                    granted.append(project.consume_partial(64 << 10))
                except tollgate.Unavailable:
                    time.sleep(0.001)
            postgres.stop_immediate()
            # What was drawn before the stop is granted, then Unavailable, never Exhausted.
            started = time.monotonic()
            while True:
                assert time.monotonic() - started < 30, "never unavailable"
                try:
                    granted.append(project.consume_partial(64 << 10))
                except tollgate.Unavailable:
                    break
            with pytest.raises(tollgate.Unavailable):
                project.consume(1)
            assert sum(granted) < limit
            postgres.start()
            rest, _ = drain(project)
            assert sum(granted) + rest == limit
    assert postgres.account("PY-OUTAGE") == (limit, 0, 0)


def test_store_and_host_go_together(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with pytest.raises(tollgate.InvalidArgument, match="store without host"):
        tollgate.Engine(state, store="host=/nonexistent user=postgres")
    with pytest.raises(tollgate.InvalidArgument, match="host without store"):
        tollgate.Engine(state, host="py-1")
    with pytest.raises(tollgate.InvalidArgument, match="fleet_lease_ttl_ms"):
        tollgate.Engine(state, fleet_lease_ttl_ms=1000)
    with pytest.raises(tollgate.InvalidArgument, match="fleet_lease_ttl_ms"):
        tollgate.Engine(state, store="host=/nonexistent", host="py-1", fleet_lease_ttl_ms=0)
    with pytest.raises(tollgate.InvalidArgument, match="NUL"):
        tollgate.Engine(state, store="host=/x\0", host="py-1")
    assert not state.exists()


def acquire_seat(seats: "tollgate.Seats", deadline_s: float = 10.0) -> None:
    """Takes one seat, retrying :class:`tollgate.Unavailable` (the host's thread is leasing one)
    and :class:`tollgate.Exhausted` (the fleet holds them all: another host may give one back)."""
    started = time.monotonic()
    while True:
        try:
            seats.acquire(1)
            return
        except (tollgate.Unavailable, tollgate.Exhausted):
            assert time.monotonic() - started < deadline_s, "no seat in time"
            time.sleep(0.005)


def test_seats_are_leased_exactly_across_two_hosts(
    postgres: Server, tmp_path: Path, key: KeyFactory
) -> None:
    """A per-machine key of 2 seats on two hosts: the seats held over both never exceed 2, and
    a seat one host releases reaches the other through the store."""
    machines = {"per_machine": {"os": "server", "max_machines": 2}}
    with tollgate.Engine(
        tmp_path / "a", store=postgres.params, host="py-a", fleet_lease_ttl_ms=10_000
    ) as a, tollgate.Engine(
        tmp_path / "b", store=postgres.params, host="py-b", fleet_lease_ttl_ms=10_000
    ) as b:
        a.create_project("svm")
        a.add_key("svm", key("PY-SEATS", scheme=machines))
        started = time.monotonic()
        while "svm" not in b.projects() or not b.keys("svm"):
            assert time.monotonic() - started < 5, "the key never reached host b"
            time.sleep(0.01)
        with a.seats("svm", "server") as on_a, b.seats("svm", "server") as on_b:
            acquire_seat(on_a)
            acquire_seat(on_a)
            # Both seats are a's: b is refused, never given a third.
            started = time.monotonic()
            while True:
                try:
                    on_b.acquire(1)
                    raise AssertionError("host b took a third seat of two")
                except tollgate.Unavailable:
                    time.sleep(0.005)
                except tollgate.Exhausted:
                    break
                assert time.monotonic() - started < 5, "never exhausted"
            assert postgres.account("PY-SEATS")[1] == 2
            # A seat a releases goes back to the store after a second idle; b then takes it.
            on_a.release(1)
            acquire_seat(on_b)
            assert (on_a.held, on_b.held) == (1, 1)
            on_a.release(1)
            on_b.release(1)
    # Closed hosts keep nothing leased.
    assert postgres.account("PY-SEATS")[1] == 0
