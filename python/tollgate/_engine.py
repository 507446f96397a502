"""The engine: an open state directory, its projects, keys, views and audit events."""

from __future__ import annotations

import json
import os
import weakref
from ctypes import byref, c_void_p
from typing import Any, Callable, Dict, List, Optional, Union, cast

from . import _ffi
from ._error import InvalidArgument, check
from ._handle import Handle, encode_text, opened
from ._project import Project

#: A license key: the key JSON as a ``dict``, or as a JSON string.
KeyLike = Union[Dict[str, Any], str]

#: A state directory path.
PathLike = Union[str, "os.PathLike[str]"]

_U32_MAX = 0xFFFF_FFFF
_U64_MAX = 0xFFFF_FFFF_FFFF_FFFF


class Engine(Handle):
    """An open Tollgate state directory (created if needed).

    Every ``Engine``, thread and process that opens the same directory shares one set of
    counters. Use it as a context manager, or call :meth:`close`; closing the engine closes the
    :class:`Project` handles it opened.

    >>> with Engine("/var/lib/migrator/licenses") as engine:     # doctest: +SKIP
    ...     engine.create_project("warehouse")
    ...     engine.add_key("warehouse", {"id": "A-1", "delivery": "online",
    ...         "kind": "commercial", "edition": "standard",
    ...         "scheme": {"data_volume": {"limit_bytes": 1 << 30}}})
    ...     with engine.project("warehouse") as project:
    ...         project.consume(64 << 20)
    """

    __slots__ = ("_state_dir", "_projects")

    KIND = "engine"

    def __init__(
        self,
        state_dir: PathLike,
        *,
        capacity: Optional[int] = None,
        flush_interval_ms: Optional[int] = None,
    ) -> None:
        """Opens ``state_dir``, creating it if needed.

        ``capacity`` is the number of slot-pair records a new state file holds (one per project
        and license class; the library's default is 65,536); it is ignored for an existing
        state. ``flush_interval_ms`` starts a background thread that calls :meth:`flush` at
        that interval. Raises :class:`CorruptState` for a damaged state directory and
        :class:`Io` when it cannot be created or opened.
        """
        self._state_dir = os.fspath(state_dir)
        self._projects: weakref.WeakSet[Project] = weakref.WeakSet()
        path = encode_text(self._state_dir, "state directory")
        handle = c_void_p()
        if capacity is None and flush_interval_ms is None:
            check(_ffi.tg_engine_open(path, byref(handle)))
        else:
            options = _ffi.OpenOptions(
                capacity=_bounded(capacity, "capacity", 1, _U32_MAX),
                flush_interval_ms=_bounded(flush_interval_ms, "flush_interval_ms", 1, _U64_MAX),
            )
            check(_ffi.tg_engine_open_with(path, byref(options), byref(handle)))
        super().__init__(opened(handle))

    def _release(self, handle: int) -> None:
        for project in list(self._projects):
            project.close()
        _ffi.tg_engine_close(handle)

    def _describe(self) -> str:
        return f"engine for {self._state_dir!r}"

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<tollgate.Engine {self._state_dir!r} {state}>"

    @property
    def state_dir(self) -> str:
        """The state directory this engine opened."""
        return self._state_dir

    def flush(self) -> None:
        """Makes the state durable against an operating-system crash (``msync`` of the hot
        state and a checkpoint of the catalog)."""
        self._call(_ffi.tg_engine_flush)

    def create_project(self, name: str) -> None:
        """Creates a project with an empty data-volume slot pair.

        Raises :class:`AlreadyExists` if the name is taken, :class:`InvalidArgument` for a name
        that is empty, over 64 bytes or holds a NUL or control character, and :class:`Capacity`
        when the state's project table is full.
        """
        self._call(_ffi.tg_project_create, _project_name(name))

    def projects(self) -> List[str]:
        """Every project name, sorted."""
        return cast(List[str], self._json(_ffi.tg_project_list_json))

    def add_key(self, project: str, key: KeyLike) -> None:
        """Adds a license key to the slot pair of its class: the first key becomes Active, a
        second one Reserved, under the rules of SPEC §2.1.

        ``key`` is the key JSON as a ``dict`` or string, e.g. ``{"id": "A-1", "delivery":
        "online", "kind": "commercial", "edition": "standard", "scheme": {"data_volume":
        {"limit_bytes": 1073741824}}}``, optionally with ``expires_at`` (RFC 3339),
        ``auto_renew``, ``company`` and ``activation_code``. A refused key raises the rule it
        breaks (:class:`TypeMismatch`, :class:`ReserveOccupied`, :class:`Expired`, …) and
        changes nothing.
        """
        self._call(_ffi.tg_key_add, _project_name(project), _key_json(key))

    def add_reserve(self, project: str, key: KeyLike) -> None:
        """Adds ``key`` as the Reserved key of an existing pair of its class (seed 001's
        activation task). It never becomes a pair's first key: without an Active key of its
        class this raises :class:`NoActiveKey` or :class:`SchemeMismatch`."""
        self._call(_ffi.tg_key_add_reserve, _project_name(project), _key_json(key))

    def replace_key(self, project: str, key: KeyLike) -> None:
        """Replaces the Active key of ``key``'s class (a renewal). A Reserved key that expires
        before the new key's term ends is removed, and an event says so."""
        self._call(_ffi.tg_key_replace, _project_name(project), _key_json(key))

    def remove_reserve(self, project: str, key_id: str) -> None:
        """Removes the Reserved key ``key_id`` before it is used; :class:`NotFound` if the
        project has no such reserve."""
        key = encode_text(key_id, "key id")
        self._call(_ffi.tg_key_remove_reserve, _project_name(project), key)

    def keys(self, project: str) -> List[Dict[str, Any]]:
        """Every key the project ever held: ``[{"key": {...}, "status": "active" | "reserved"
        | "retired" | "removed", "used": bytes}, ...]``."""
        return cast(List[Dict[str, Any]], self._json(_ffi.tg_keys_json, _project_name(project)))

    def view(self, project: str) -> Dict[str, Any]:
        """What a user interface shows for the project (SPEC §2.5): ``{"project": name,
        "pairs": [{"class": "data_volume", "cards": [...], "add_license_available": bool}]}``.
        Each card has ``key``, ``type`` (Online/Offline), ``status`` (Active/Reserved),
        ``tooltip``, ``expiration``, ``used``, ``limit`` and ``expired``; the texts are seed
        000's, verbatim."""
        view = self._json(_ffi.tg_project_view_json, _project_name(project))
        return cast(Dict[str, Any], view)

    def events(self, after: int = 0, max: int = 1000) -> List[Dict[str, Any]]:
        """Up to ``max`` events of the durable audit log with a sequence number above
        ``after``, oldest first, from every process: ``{"seq", "at", "project", "kind", ...}``
        where ``kind`` is ``project_created``, ``key_added``, ``switched``, ``threshold``,
        ``refused``, ``reserve_removed``, ``key_replaced`` or ``recovered``.

        Events of the metering hot path reach the log through a background thread a few
        milliseconds after they happen. Pass the last ``seq`` seen as ``after`` to poll.
        """
        after = _bounded(after, "after", 0, _U64_MAX)
        limit = _bounded(max, "max", 0, _U64_MAX)
        events = self._json(_ffi.tg_events_json, after, limit)
        return cast(List[Dict[str, Any]], events)

    def project(self, name: str) -> Project:
        """Looks the project up once and returns its hot-path handle (:class:`NotFound` if it
        does not exist). The handle is closed at the latest when this engine is."""
        handle = c_void_p()
        self._call(_ffi.tg_project_open, _project_name(name), byref(handle))
        project = Project(opened(handle), name, self)
        self._projects.add(project)
        return project

    def _forget(self, project: Project) -> None:
        """Called by a closing project."""
        self._projects.discard(project)

    def _call(self, function: Callable[..., int], *args: Any) -> None:
        """Calls ``function(engine, *args)``, raising the error for a non-zero status."""
        check(function(self._live(), *args))

    def _json(self, function: Callable[..., int], *args: Any) -> Any:
        """Calls ``function(engine, *args, &out)`` and decodes the JSON string left in ``out``."""
        out = c_void_p()
        self._call(function, *args, byref(out))
        return json.loads(_ffi.take_string(out))


def _project_name(name: str) -> bytes:
    return encode_text(name, "project name")


def _key_json(key: KeyLike) -> bytes:
    if isinstance(key, dict):
        return encode_text(json.dumps(key), "key JSON")
    if isinstance(key, str):
        return encode_text(key, "key JSON")
    raise TypeError(f"key must be a dict or a JSON str, not {type(key).__name__}")


def _bounded(value: Optional[int], what: str, low: int, high: int) -> int:
    """``value`` checked to be an int in ``low..=high``; None becomes 0 (the C default)."""
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise InvalidArgument(f"invalid {what}: {value} is outside {low}..={high}")
    return value
