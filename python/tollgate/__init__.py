"""Tollgate: license metering and enforcement, from Python.

A ctypes binding of the Tollgate C library (``libtollgate``). Open a state directory, give a
project its license keys, then meter every batch of data the migration moves::

    import tollgate

    key = {"id": "A-1", "delivery": "online", "kind": "commercial", "edition": "standard",
           "scheme": {"data_volume": {"limit_bytes": 1 << 30}}}
    with tollgate.Engine("/var/lib/migrator/licenses") as engine:
        engine.create_project("warehouse")
        engine.add_key("warehouse", key)
        engine.add_reserve("warehouse", {**key, "id": "A-2"})
        with engine.project("warehouse") as project:
            project.consume(512 << 20)             # raises tollgate.Exhausted when refused
            granted = project.consume_many([64 << 20] * 16)
            print(project.usage())

Seats of per-machine, per-core and per-instance keys, and instances licensed from pools::

    with tollgate.Engine("/var/lib/backup/licenses") as engine:
        with engine.seats("svm-01", "server") as seats:   # seats die with the process
            seats.acquire(2)                              # raises tollgate.Exhausted when full
            seats.release(2)
        engine.buy_licenses("desktop", 10, "annual", company="Acme")
        engine.add_instance("web-01", "linux", company="Acme")
        engine.assign("web-01")                           # company pool first, then global
        with engine.instance("web-01") as instance:
            instance.check()                              # raises tollgate.NoActiveKey if not

A vendor's program passes its public key (the text of ``vendor.pub``) when it opens the
state; from then on every offline key must be a license file signed with it (``KEY.lic``, from
``tollgate license sign``), passed as a ``str`` wherever a key goes::

    with tollgate.Engine(path, trusted_keys=[Path("vendor.pub").read_text()]) as engine:
        engine.add_key("warehouse", Path("KEY.lic").read_text())   # tollgate.BadSignature if not

Every non-zero status of the C ABI is raised as a subclass of :class:`TollgateError` named
after it (:class:`Exhausted`, :class:`TypeMismatch`, …) with the library's message. Using an
``Engine`` or one of its handles after ``close()`` raises :class:`ClosedError`, a
``ValueError``.

The library is found through ``TOLLGATE_LIBRARY`` (a full path), else in this package's
directory, else in the Cargo workspace's ``target/release`` then ``target/debug``.
"""

from __future__ import annotations

from typing import cast

from . import _bindings, _ffi
from ._bindings import Status
from ._engine import Engine, KeyLike, TimeLike
from ._error import (
    ERRORS,
    ActivationFailed,
    AlreadyAssigned,
    AlreadyExists,
    BadSignature,
    Busy,
    Capacity,
    ClosedError,
    CorruptState,
    DuplicateKey,
    EditionMismatch,
    Exhausted,
    Expired,
    InstallationMismatch,
    Unavailable,
    InvalidArgument,
    Io,
    LicenseTypeUnfit,
    NoActiveKey,
    NoLicenseAvailable,
    NotFound,
    NotHeld,
    Panic,
    PaymentModeMismatch,
    RenewalFailed,
    ReserveOccupied,
    SchemeMismatch,
    Subscription,
    Tampered,
    TollgateError,
    TypeMismatch,
    Unsupported,
)
from ._events import EventStream
from ._instance import Instance
from ._project import Amounts, LifetimeUsage, Project, ThreadProject, Usage
from ._seats import Seats, SeatUsage

__version__ = "0.1.0"

#: Where the shared library was loaded from.
LIBRARY_PATH: str = str(_ffi.library_path)


def version() -> str:
    """The version of the loaded C library, ``"MAJOR.MINOR.PATCH"``."""
    # A static string: the header's declaration does not say it is never NULL, its doc does.
    return cast(bytes, _bindings.tg_version()).decode("ascii")


__all__ = [
    "ERRORS",
    "LIBRARY_PATH",
    "AlreadyAssigned",
    "AlreadyExists",
    "Amounts",
    "BadSignature",
    "Busy",
    "InstallationMismatch",
    "Unavailable",
    "Tampered",
    "Capacity",
    "ClosedError",
    "CorruptState",
    "DuplicateKey",
    "EditionMismatch",
    "Engine",
    "EventStream",
    "Exhausted",
    "Expired",
    "Instance",
    "InvalidArgument",
    "Io",
    "KeyLike",
    "LifetimeUsage",
    "LicenseTypeUnfit",
    "NoActiveKey",
    "NoLicenseAvailable",
    "NotFound",
    "NotHeld",
    "Panic",
    "PaymentModeMismatch",
    "Project",
    "ThreadProject",
    "RenewalFailed",
    "ActivationFailed",
    "ReserveOccupied",
    "SchemeMismatch",
    "SeatUsage",
    "Seats",
    "Status",
    "Subscription",
    "TimeLike",
    "TollgateError",
    "TypeMismatch",
    "Unsupported",
    "Usage",
    "version",
]
