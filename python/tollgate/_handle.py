"""The base class of every object that owns a native Tollgate handle."""

from __future__ import annotations

from ctypes import c_void_p
from types import TracebackType
from typing import TYPE_CHECKING, ClassVar, Optional, Type, TypeVar

from ._error import ClosedError, InvalidArgument, Panic

if TYPE_CHECKING:
    from ._engine import Engine

_Self = TypeVar("_Self", bound="Handle")


class Handle:
    """Owns one native handle: ``close()`` releases it, ``with`` closes it on exit, and garbage
    collection closes it as a last resort. Any use after ``close()`` raises
    :class:`~tollgate.ClosedError`.

    Closing is not synchronised with calls in flight: close a handle only once no other thread
    is using it.
    """

    __slots__ = ("_handle", "__weakref__")

    #: What the handle is, for messages ("engine", "project").
    KIND: ClassVar[str] = "handle"

    def __init__(self, handle: int) -> None:
        """Takes ownership of ``handle``, a non-NULL native pointer."""
        self._handle: Optional[int] = handle

    def _release(self, handle: int) -> None:
        """Frees the native handle; called exactly once, by :meth:`close`."""
        raise NotImplementedError

    def _describe(self) -> str:
        """How messages name this object."""
        return self.KIND

    def _live(self) -> int:
        """The native handle, or :class:`~tollgate.ClosedError` after :meth:`close`."""
        handle = self._handle
        if handle is None:
            raise self._closed_error()
        return handle

    def _closed_error(self) -> ClosedError:
        return ClosedError(f"{self._describe()} is closed")

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` has been called."""
        return getattr(self, "_handle", None) is None

    def close(self) -> None:
        """Releases the native handle. Calling it again does nothing."""
        handle = getattr(self, "_handle", None)
        if handle is not None:
            self._handle = None
            self._release(handle)

    def __enter__(self: _Self) -> _Self:
        """Returns the object itself, for ``with``."""
        self._live()
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        traceback: Optional[TracebackType],
    ) -> None:
        """Closes the object."""
        self.close()

    def __del__(self) -> None:
        # A last resort: an explicit close() or `with` frees the handle deterministically.
        try:
            self.close()
        except Exception:
            pass


class EngineHandle(Handle):
    """A handle an :class:`~tollgate.Engine` opened on one of its projects or instances
    (:class:`~tollgate.Project`, :class:`~tollgate.Seats`, :class:`~tollgate.Instance`). It
    keeps its engine open while it is reachable, and is closed at the latest when the engine is.
    """

    __slots__ = ("_name", "_engine")

    def __init__(self, handle: int, name: str, engine: Engine) -> None:
        """Takes ownership of ``handle``, opened by ``engine`` on ``name``."""
        super().__init__(handle)
        self._name = name
        self._engine = engine

    def _free(self, handle: int) -> None:
        """The library's close call for this kind of handle."""
        raise NotImplementedError

    def _release(self, handle: int) -> None:
        self._free(handle)
        self._engine._forget(self)

    def _describe(self) -> str:
        return f"{self.KIND} {self._name!r}"

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<tollgate.{type(self).__name__} {self._name!r} {state}>"

    @property
    def name(self) -> str:
        """The name of the project or instance the handle is on."""
        return self._name


def encode_text(value: str, what: str) -> bytes:
    """``value`` as the NUL-terminated UTF-8 the C ABI takes; ``what`` names it in errors.

    ctypes would silently cut a string at an embedded NUL, so that is refused here.
    """
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if "\0" in value:
        raise InvalidArgument(f"invalid {what}: {value!r} contains a NUL byte")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise InvalidArgument(
            f"invalid {what}: {value!r} is not valid Unicode ({e.reason})"
        ) from None


def opened(out: c_void_p) -> int:
    """The handle an ``_open`` call stored in ``out`` after returning ``TG_OK``."""
    if not out.value:
        raise Panic("the library reported success but returned a NULL handle")
    return out.value
