"""The hot-path handle on one project, and its usage snapshot."""

from __future__ import annotations

import ctypes
import operator
import sys
from array import array
from ctypes import ArgumentError, c_size_t, c_uint64, c_void_p
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Tuple

from . import _bindings, _ffi
from ._bindings import Status
from ._error import InvalidArgument, error_for
from ._handle import EngineHandle, opened

#: What :meth:`Project.consume_many` takes: an iterable of ints (not ``bool``), or an object
#: exporting a buffer of unsigned 64-bit integers (``array('Q')``, numpy ``uint64``,
#: ``memoryview``) or of raw unsigned bytes (``bytes``, ``bytearray``, format ``'B'``), which is
#: read in place.
Amounts = Iterable[int]

# Pre-bound library functions: the hot path looks nothing up but the handle. Out-parameters are
# passed as the ctypes objects themselves: the POINTER argtypes take their address, which costs
# less than a byref() call.
_consume = _bindings.tg_consume
_consume_partial = _bindings.tg_consume_partial
_consume_batch = _bindings.tg_consume_batch
_thread_consume = _bindings.tg_thread_consume
_thread_consume_partial = _bindings.tg_thread_consume_partial

_U64_MAX = 0xFFFF_FFFF_FFFF_FFFF

# The refusals of metering (rule R10 in docs/rules.md). consume_many reports them through its count.
_REFUSALS = frozenset({Status.EXHAUSTED, Status.EXPIRED, Status.NO_ACTIVE_KEY})

# Buffer formats that are native unsigned 64-bit integers ('L' is what numpy's uint64 exports
# on LP64 platforms), and the format of raw unsigned bytes, read as native-endian unsigned
# 64-bit integers. Every other item type is refused, signed bytes ('b') and chars ('c') as much
# as 'q': a typed buffer is read only when its items are what the library takes.
_NATIVE = "<" if sys.byteorder == "little" else ">"
_U64_FORMATS = frozenset({b"Q", b"L", b"@Q", b"@L", b"=Q", _NATIVE.encode() + b"Q"})
_BYTE_FORMATS = frozenset({b"B", b"@B", b"=B"})


class Usage:
    """Usage of a project's data-volume slot pair at one instant (``tg_usage``)."""

    __slots__ = (
        "active_used",
        "active_limit",
        "reserved_used",
        "reserved_limit",
        "has_reserved",
        "switches",
    )

    def __init__(
        self,
        active_used: int,
        active_limit: int,
        reserved_used: int,
        reserved_limit: int,
        has_reserved: bool,
        switches: int,
    ) -> None:
        """Builds a snapshot; :meth:`Project.usage` is the usual way to get one."""
        #: Bytes charged to the Active key.
        self.active_used: int = active_used
        #: The Active key's limit in bytes (0 without an Active key).
        self.active_limit: int = active_limit
        #: Bytes charged to the Reserved key (0 until it becomes the Active key).
        self.reserved_used: int = reserved_used
        #: The Reserved key's limit in bytes (0 without a Reserved key).
        self.reserved_limit: int = reserved_limit
        #: Whether a Reserved key is present.
        self.has_reserved: bool = has_reserved
        #: How many Active→Reserved switches the pair has made.
        self.switches: int = switches

    @property
    def remaining(self) -> int:
        """Bytes still grantable on the Active and Reserved keys together (ignoring expiry)."""
        return self.active_limit - self.active_used + self.reserved_limit - self.reserved_used

    def _fields(self) -> Tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Usage):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"Usage({fields})"


@dataclass(frozen=True)
class LifetimeUsage:
    """Usage of a project's data-volume pair over its whole life (``tg_usage_v2``), from
    :meth:`Project.lifetime_usage`."""

    #: The pair's usage now, as :meth:`Project.usage` gives it.
    usage: Usage
    #: Bytes ever charged to the pair: every key it held, the ones a switch or a renewal
    #: retired included. Never goes down.
    total_used: int
    #: The Active key's id, or ``None`` without an Active key.
    active_key: Optional[str]
    #: The Reserved key's id, or ``None`` without a Reserved key.
    reserved_key: Optional[str]


class Project(EngineHandle):
    """The hot-path handle on one project's data-volume slot pair, from
    :meth:`Engine.project`.

    Metering is lock-free in the library: share one handle between threads freely.
    ``consume``, ``consume_partial`` and ``usage`` take nanoseconds and keep the GIL (releasing
    it would cost more); ``consume_many`` releases it while the library works through the
    amounts. Close the handle (or use ``with``) when done; closing its engine closes it too.
    """

    __slots__ = ()

    KIND = "project"

    def _free(self, handle: int) -> None:
        _bindings.tg_project_close(handle)

    def consume(self, n: int) -> None:
        """Asks to move ``n`` bytes: grants all of them, or charges nothing and raises
        :class:`Exhausted`, :class:`Expired` or :class:`NoActiveKey`.

        A grant that crosses the Active key's limit is split between the Active and Reserved
        keys and switches to the Reserved key, without waiting for anyone. An ``n`` outside
        ``0..2**64`` raises :class:`InvalidArgument`; a ``bool`` raises ``TypeError`` (ctypes
        would charge ``True`` as one byte).
        """
        if n.__class__ is bool:
            raise _bool_error()
        # ctypes would wrap an int outside the uint64_t range silently.
        if n < 0 or n > 0xFFFF_FFFF_FFFF_FFFF:
            raise _amount_error(n)
        try:
            rc = _consume(self._handle, n)
        except ArgumentError:
            rc = _consume(self._handle, _index(n))
        if rc:
            raise self._failure(rc)

    def consume_partial(self, n: int) -> int:
        """Grants as much of ``n`` bytes as remains and returns the amount granted; raises
        (:class:`Exhausted`, :class:`Expired`, :class:`NoActiveKey`) only when nothing
        remains. A ``bool`` raises ``TypeError``, as for :meth:`consume`."""
        if n.__class__ is bool:
            raise _bool_error()
        if n < 0 or n > 0xFFFF_FFFF_FFFF_FFFF:
            raise _amount_error(n)
        granted = c_uint64()
        try:
            rc = _consume_partial(self._handle, n, granted)
        except ArgumentError:
            rc = _consume_partial(self._handle, _index(n), granted)
        if rc:
            raise self._failure(rc)
        return granted.value

    def consume_many(self, amounts: Amounts) -> int:
        """Grants each amount in order, all or nothing each, stopping at the first refusal, and
        returns how many were granted. The granted prefix is charged in one atomic step.

        A refusal (exhausted, expired, no Active key) is not raised: the count is shorter than
        the input; call :meth:`consume` with the first refused amount to learn why. Other
        errors raise.

        ``amounts`` is any iterable of ints (copied once into a native array; a ``bool`` among
        them raises ``TypeError``), or — read in place, without copying — any C-contiguous
        object exporting the buffer protocol with unsigned 64-bit items: ``array('Q')``, a
        numpy ``uint64`` array, a ``memoryview``, or raw unsigned bytes (format ``'B'``:
        ``bytes``, ``bytearray``) whose length is a multiple of 8 (native byte order). A buffer
        of any other item type raises :class:`InvalidArgument`: signed bytes (``array('b')``)
        and chars (``'c'``) as well as ``array('q')``, ``'i'`` or floats. (A buffer whose address
        is not 8-byte aligned, such as ``memoryview(data)[1:9]``, is copied once to an aligned one.)
        """
        granted = c_size_t()
        kind = type(amounts)
        if type(amounts) is array and amounts.typecode == "Q":
            rc = _batch_of_array(self._handle, amounts, granted)
        elif kind is list or kind is tuple:
            rc = _batch_of_ints(self._handle, amounts, granted)
        else:
            rc = _batch_of_buffer(self._handle, amounts, granted)
        if rc and rc not in _REFUSALS:
            raise self._failure(rc)
        return granted.value

    def usage(self) -> Usage:
        """The pair's current usage."""
        raw = _bindings.Usage()
        rc = _bindings.tg_usage_get(self._handle, raw)
        if rc:
            raise self._failure(rc)
        return _usage_of(raw)

    def lifetime_usage(self) -> LifetimeUsage:
        """The pair's usage with the total charged over its whole life (across switches and
        renewals) and the ids of its Active and Reserved keys. Not for the hot path: the
        library reads its catalog for it."""
        raw = _bindings.UsageV2()
        rc = _bindings.tg_usage_v2_get(self._handle, raw)
        if rc:
            raise self._failure(rc)
        return LifetimeUsage(
            usage=_usage_of(raw.current),
            total_used=raw.total_used,
            active_key=raw.active_key.decode("utf-8") or None,
            reserved_key=raw.reserved_key.decode("utf-8") or None,
        )

    def for_thread(self) -> "ThreadProject":
        """A handle on the same project for the calling thread, with its own **lease slot**
        (``tg_thread_project``): a block of the project's bytes taken in one atomic step, from
        which it grants without touching memory other threads write. Use one per thread. Its
        grants are charged and refused exactly as this handle's; closing it gives back what its
        block has left. Raises :class:`Capacity` when the state's 4,096 slots are all held
        by open thread handles."""
        handle = c_void_p()
        rc = _bindings.tg_thread_project_open(self._live(), ctypes.byref(handle))
        if rc:
            raise self._failure(rc)
        return self._engine._adopt(ThreadProject(opened(handle), self._name, self._engine))

    def _failure(self, status: int) -> Exception:
        """The exception for a failed call; a closed handle was passed as NULL, which the
        library refuses, so that case is recognised here rather than checked on every call."""
        if self._handle is None:
            return self._closed_error()
        return error_for(status)


class ThreadProject(EngineHandle):
    """A project handle for **one thread**, from :meth:`Project.for_thread`: it grants from a
    block of the project's bytes held in its own lease slot. Same refusals and charges as
    :class:`Project`; what its block has left goes back to the project when it is closed (or
    its process ends). Do not share one between threads: make one per thread. Closed at the
    latest when its engine is.
    """

    __slots__ = ()

    KIND = "thread project"

    def _free(self, handle: int) -> None:
        _bindings.tg_thread_project_close(handle)

    def consume(self, n: int) -> None:
        """As :meth:`Project.consume`, from this handle's block."""
        if n.__class__ is bool:
            raise _bool_error()
        if n < 0 or n > 0xFFFF_FFFF_FFFF_FFFF:
            raise _amount_error(n)
        try:
            rc = _thread_consume(self._handle, n)
        except ArgumentError:
            rc = _thread_consume(self._handle, _index(n))
        if rc:
            raise self._failure(rc)

    def consume_partial(self, n: int) -> int:
        """As :meth:`Project.consume_partial`, from this handle's block."""
        if n.__class__ is bool:
            raise _bool_error()
        if n < 0 or n > 0xFFFF_FFFF_FFFF_FFFF:
            raise _amount_error(n)
        granted = c_uint64()
        try:
            rc = _thread_consume_partial(self._handle, n, granted)
        except ArgumentError:
            rc = _thread_consume_partial(self._handle, _index(n), granted)
        if rc:
            raise self._failure(rc)
        return granted.value

    @property
    def room(self) -> int:
        """What this handle's block has left: bytes the project granted to it that it has not
        granted yet (they go back when it closes)."""
        room = c_uint64()
        rc = _bindings.tg_thread_project_room(self._handle, room)
        if rc:
            raise self._failure(rc)
        return room.value

    def _failure(self, status: int) -> Exception:
        """As :meth:`Project._failure`."""
        if self._handle is None:
            return self._closed_error()
        return error_for(status)


def _usage_of(raw: _bindings.Usage) -> Usage:
    """The snapshot a ``tg_usage`` holds."""
    return Usage(
        raw.active_used,
        raw.active_limit,
        raw.reserved_used,
        raw.reserved_limit,
        bool(raw.has_reserved),
        raw.switches,
    )


def _index(n: Any) -> int:
    """``n`` as an int, for int-like types (numpy integers) that ctypes does not take as is."""
    try:
        return operator.index(n)
    except TypeError:
        raise TypeError(f"amount must be an int, not {type(n).__name__}") from None


def _bool_error() -> TypeError:
    return TypeError("amount must be an int, not bool")


def _amount_error(n: Any) -> Exception:
    try:
        return InvalidArgument(f"invalid amount: {_index(n)} is outside 0..={_U64_MAX}")
    except TypeError as e:
        return e


def _u64_array(amounts: Iterable[int]) -> array[int]:
    """A native array of ``amounts``, each checked to be an int, not a bool, that fits an
    unsigned 64-bit integer."""
    if type(amounts) is array and amounts.typecode == "Q":
        return amounts
    try:
        items = amounts if type(amounts) is list or type(amounts) is tuple else list(amounts)
        if bool in set(map(type, items)):
            raise TypeError("bool is not an amount")
        return array("Q", items)
    except OverflowError:
        raise InvalidArgument(f"invalid amounts: every amount must be in 0..={_U64_MAX}") from None
    except TypeError as e:
        raise TypeError(
            "amounts must be ints, or a buffer of unsigned 64-bit integers, "
            f"not {type(amounts).__name__} ({e})"
        ) from None


def _batch_of_ints(handle: Any, amounts: Iterable[int], granted: c_size_t) -> int:
    data = _u64_array(amounts)
    address, count = data.buffer_info()
    return _consume_batch(handle, address, count, granted)


def _batch_of_array(handle: Any, amounts: array[int], granted: c_size_t) -> int:
    """The fast path for ``array('Q')``: its own address and length, with the array exported to
    a memoryview for the duration of the call so that no other thread can resize it."""
    with memoryview(amounts):
        address, count = amounts.buffer_info()
        return _consume_batch(handle, address, count, granted)


def _batch_of_buffer(handle: Any, amounts: Any, granted: c_size_t) -> int:
    """Passes the memory of a buffer-protocol object to ``tg_consume_batch`` in place, holding
    the buffer export (so it cannot be resized or freed) for the duration of the call."""
    if not _ffi.HAS_BUFFER_API:
        return _batch_of_ints(handle, _buffer_copy(amounts), granted)
    view = _ffi.PyBuffer()
    try:
        _ffi.PyObject_GetBuffer(amounts, view, _ffi.PYBUF_C_CONTIGUOUS_FORMAT)
    except TypeError:
        # Not a buffer: an iterable of ints.
        return _batch_of_ints(handle, amounts, granted)
    except (BufferError, ValueError) as e:
        raise InvalidArgument(f"invalid amounts: {e}") from None
    try:
        count = _u64_count(view.format, view.itemsize, view.len)
        address = view.buf or 0
        if address % 8:
            # A u64 pointer must be aligned: copy this (rare) buffer once. `aligned` lives
            # until the call returns.
            aligned = array("Q")
            aligned.frombytes(ctypes.string_at(address, count * 8))
            address = aligned.buffer_info()[0]
        return _consume_batch(handle, address if count else None, count, granted)
    finally:
        _ffi.PyBuffer_Release(view)


def _u64_count(fmt: Any, itemsize: int, length: int) -> int:
    """How many unsigned 64-bit integers a buffer of this format holds, or InvalidArgument."""
    if itemsize == 8 and fmt in _U64_FORMATS:
        return length // 8
    if itemsize == 1 and (fmt is None or fmt in _BYTE_FORMATS):
        if length % 8:
            raise InvalidArgument(
                f"invalid amounts: {length} bytes is not a whole number of 8-byte amounts"
            )
        return length // 8
    shown = (fmt or b"B").decode("ascii", "replace")
    raise InvalidArgument(
        f"invalid amounts: a buffer of format {shown!r} with {itemsize}-byte items is not "
        "unsigned 64-bit integers"
    )


def _buffer_copy(amounts: Any) -> array[int]:
    """Outside CPython: the buffer's items copied into a native array, checked as above."""
    try:
        view = memoryview(amounts)
    except TypeError:
        return _u64_array(amounts)
    if not view.c_contiguous:
        raise InvalidArgument("invalid amounts: the buffer is not C-contiguous")
    _u64_count(view.format.encode("ascii", "replace"), view.itemsize, view.nbytes)
    data = array("Q")
    data.frombytes(view.tobytes())
    return data
