"""The hot-path handle on one project's seats (per-machine, per-core and per-instance keys)."""

from __future__ import annotations

import operator
from ctypes import c_uint64
from typing import TYPE_CHECKING, NamedTuple

from . import _bindings
from ._error import InvalidArgument, check
from ._handle import EngineHandle

if TYPE_CHECKING:
    from ._engine import Engine

_U64_MAX = 0xFFFF_FFFF_FFFF_FFFF


class SeatUsage(NamedTuple):
    """The seats of one pair at one instant (``tg_seat_usage``)."""

    #: Seats held now, by every process and the operator together.
    held: int
    #: The Active key's amount (machines, cores or instances); 0 without a key.
    limit: int
    #: The Reserved key's amount; 0 without one.
    reserved_limit: int
    #: Whether a Reserved key is present.
    has_reserved: bool
    #: How many Active→Reserved switches the pair has made.
    switches: int

    @property
    def free(self) -> int:
        """Seats the Active key has free now."""
        return max(self.limit - self.held, 0)


class Seats(EngineHandle):
    """Takes and gives back seats on one project's pair of one seat class, from
    :meth:`Engine.seats`: ``"server"`` or ``"desktop"`` machines (per-machine keys),
    ``"cores"`` (per-core keys, any OS) or ``"instance"`` (per-instance keys).

    The seats a handle takes belong to this process. If the process ends without releasing
    them (even killed with ``SIGKILL``), they are reclaimed: when any process opens the state or
    a seat handle, when an ``acquire`` finds too few seats free, or on
    :meth:`Engine.reclaim_seats`. The calls are lock-free in the library and keep the GIL for
    their few nanoseconds; share one handle between threads freely.

    >>> with engine.seats("svm-01", "server") as seats:     # doctest: +SKIP
    ...     seats.acquire(2)                # raises tollgate.Exhausted when too few are free
    ...     seats.release(1)
    ...     seats.held, seats.usage().free
    """

    __slots__ = ("_seat_class",)

    KIND = "seats"

    def __init__(self, handle: int, project: str, seat_class: str, engine: Engine) -> None:
        """Wraps a handle from ``tg_seats_open``; use :meth:`Engine.seats` instead."""
        super().__init__(handle, project, engine)
        self._seat_class = seat_class

    def _free(self, handle: int) -> None:
        _bindings.tg_seats_close(handle)

    def _describe(self) -> str:
        return f"{self._seat_class} seats of project {self._name!r}"

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<tollgate.Seats {self._name!r} {self._seat_class} {state}>"

    @property
    def seat_class(self) -> str:
        """``"server"``, ``"desktop"``, ``"cores"`` or ``"instance"``."""
        return self._seat_class

    def acquire(self, units: int = 1) -> None:
        """Takes ``units`` seats, all or nothing. Raises :class:`Exhausted` when the Active key
        has fewer free (nothing is taken), :class:`Expired` when no valid key covers the pair,
        :class:`NoActiveKey` without a key. An expired Active key switches to the Reserved key
        on the way. On a fleet host, :class:`Unavailable` while the host has no seat free and the
        fleet store may have one (its thread leases it within milliseconds: retry), and
        :class:`Exhausted` when every seat of the key is held across the fleet."""
        check(_bindings.tg_seat_acquire(self._live(), _units(units)))

    def release(self, units: int = 1) -> None:
        """Gives back ``units`` seats this handle's process holds; raises :class:`NotHeld`
        (and releases nothing) when it holds fewer. Releasing never depends on the keys."""
        check(_bindings.tg_seat_release(self._live(), _units(units)))

    @property
    def held(self) -> int:
        """Seats this process holds on the pair."""
        held = c_uint64()
        check(_bindings.tg_seat_held(self._live(), held))
        return held.value

    def usage(self) -> SeatUsage:
        """The pair's seats and keys now, across every process."""
        raw = _bindings.SeatUsage()
        check(_bindings.tg_seat_usage_get(self._live(), raw))
        return SeatUsage(
            raw.held, raw.limit, raw.reserved_limit, bool(raw.has_reserved), raw.switches
        )


def _units(units: int) -> int:
    """``units`` checked to be an int, not a bool, that fits the C ``uint64_t``, which ctypes
    would wrap silently."""
    if units.__class__ is bool:
        raise TypeError("units must be an int, not bool")
    try:
        value = operator.index(units)
    except TypeError:
        raise TypeError(f"units must be an int, not {type(units).__name__}") from None
    if not 0 <= value <= _U64_MAX:
        raise InvalidArgument(f"invalid units: {value} is outside 0..={_U64_MAX}")
    return value
