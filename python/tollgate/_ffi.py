"""The one place that loads the Tollgate shared library and declares its C functions.

Every exported function of ``include/tollgate.h`` that this package calls gets its ``argtypes``
and ``restype`` here; no other module touches ``ctypes.CDLL``. The library is looked up, first
found wins:

1. the path in the ``TOLLGATE_LIBRARY`` environment variable (only that path when it is set);
2. the shared library in this package's own directory (a wheel built with it bundled);
3. ``target/release`` then ``target/debug`` of the Cargo workspace this file sits in.

This module also wraps the CPython buffer API, which ``Project.consume_many`` uses to pass any
buffer of unsigned 64-bit integers to C without copying it.
"""

from __future__ import annotations

import ctypes
import os
import sys
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_bool,
    c_char_p,
    c_int,
    c_int64,
    c_size_t,
    c_ssize_t,
    c_uint32,
    c_uint64,
    c_void_p,
)
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

LIBRARY_ENV = "TOLLGATE_LIBRARY"
LIBRARY_NAME = {"darwin": "libtollgate.dylib", "win32": "tollgate.dll"}.get(
    sys.platform, "libtollgate.so"
)


class Usage(Structure):
    """``tg_usage``: usage of a project's data-volume slot pair."""

    _fields_ = [
        ("active_used", c_uint64),
        ("active_limit", c_uint64),
        ("reserved_used", c_uint64),
        ("reserved_limit", c_uint64),
        ("has_reserved", c_bool),
        ("switches", c_uint64),
    ]


class UsageV2(Structure):
    """``tg_usage_v2``: usage of a data-volume pair over its whole life, with its keys' ids."""

    _fields_ = [
        ("current", Usage),
        ("total_used", c_uint64),
        ("active_key", ctypes.c_char * 65),
        ("reserved_key", ctypes.c_char * 65),
    ]


class SeatUsage(Structure):
    """``tg_seat_usage``: the seats of a project's per-machine, per-core or per-instance pair."""

    _fields_ = [
        ("held", c_uint64),
        ("limit", c_uint64),
        ("reserved_limit", c_uint64),
        ("has_reserved", c_bool),
        ("switches", c_uint64),
    ]


class OpenOptions(Structure):
    """``tg_open_options``: how ``tg_engine_open_with`` opens a state directory."""

    _fields_ = [
        ("capacity", c_uint32),
        ("flush_interval_ms", c_uint64),
    ]


class RenewalOptions(Structure):
    """``tg_renewal_options``: how ``tg_engine_enable_renewal`` renews keys (0 is a default)."""

    _fields_ = [
        ("lead_secs", c_uint64),
        ("retry_secs", c_uint64),
        ("check_every_ms", c_uint64),
        ("timeout_ms", c_uint64),
        ("attempts", c_uint32),
    ]


class Event(Structure):
    """``tg_event``: one event as the callback of ``tg_engine_on_event`` receives it; valid only
    during the call. The package reads its ``json``, which holds every field."""

    _fields_ = [
        ("seq", c_uint64),
        ("at_unix_secs", c_int64),
        ("kind", c_uint32),
        ("project", c_char_p),
        ("key", c_char_p),
        ("previous_key", c_char_p),
        ("reason", c_char_p),
        ("percent", c_uint32),
        ("json", c_char_p),
    ]


#: ``tg_event_callback``. ctypes takes the GIL around each call from the library's thread.
EventCallback = CFUNCTYPE(None, POINTER(Event), c_void_p)


def library_candidates() -> List[Path]:
    """The paths the library is looked for at, in order."""
    override = os.environ.get(LIBRARY_ENV)
    if override:
        # Made absolute here, against the directory the process started in, so that
        # LIBRARY_PATH still names the library for a child process started elsewhere.
        return [Path(override).absolute()]
    here = Path(__file__).resolve().parent
    candidates = [here / LIBRARY_NAME]
    for directory in here.parents:
        manifest = directory / "Cargo.toml"
        if (directory / "target").is_dir() and manifest.is_file():
            if "[workspace]" in manifest.read_text(encoding="utf-8", errors="replace"):
                candidates.append(directory / "target" / "release" / LIBRARY_NAME)
                candidates.append(directory / "target" / "debug" / LIBRARY_NAME)
                break
    return candidates


def _load() -> Tuple[ctypes.CDLL, Path]:
    tried = []
    for candidate in library_candidates():
        if not candidate.is_file():
            tried.append(f"  {candidate}: no such file")
            continue
        try:
            return ctypes.CDLL(str(candidate)), candidate
        except OSError as e:
            tried.append(f"  {candidate}: {e}")
    raise ImportError(
        f"cannot load the Tollgate library {LIBRARY_NAME}; tried:\n"
        + "\n".join(tried)
        + f"\nbuild it with `cargo build --release -p tollgate-ffi`, or set {LIBRARY_ENV} "
        "to its full path"
    )


lib, library_path = _load()

# The same loaded library (no second dlopen) through PyDLL, whose calls keep the GIL: used for
# the metering, seat and instance-check calls, which are lock-free and take nanoseconds, so that
# releasing and retaking the GIL around them does not cost more than the call itself. Everything
# else releases it.
_lib_keeping_gil = ctypes.PyDLL(str(library_path), handle=lib._handle)
_KEEP_GIL = frozenset(
    {
        "tg_consume",
        "tg_consume_partial",
        "tg_usage_get",
        "tg_seat_acquire",
        "tg_seat_release",
        "tg_seat_held",
        "tg_seat_usage_get",
        "tg_instance_check",
    }
)

_HANDLE = c_void_p
_OUT_HANDLE = POINTER(c_void_p)
_OUT_STRING = POINTER(c_void_p)
_STATUS = c_uint32
# The `uint64_t bytes` of the metering calls. On 64-bit platforms it is declared as a pointer,
# which every 64-bit C ABI passes exactly like a uint64_t (one 8-byte integer register or slot):
# ctypes converts an int to a pointer in about half the time it takes for c_uint64, and this
# conversion is most of the cost of a call. Both wrap out-of-range ints silently, so the caller
# checks the range (`Project.consume`).
_AMOUNT = c_void_p if ctypes.sizeof(c_void_p) == 8 else c_uint64

# name: (restype, argtypes). Strings coming back from the library that the caller must free are
# read through `void *`, so that the same address can be handed back to `tg_string_free`.
_SIGNATURES: Dict[str, Tuple[Any, Sequence[Any]]] = {
    "tg_engine_open": (_STATUS, (c_char_p, _OUT_HANDLE)),
    "tg_engine_open_with": (_STATUS, (c_char_p, POINTER(OpenOptions), _OUT_HANDLE)),
    "tg_engine_open_trusted": (
        _STATUS,
        (c_char_p, POINTER(OpenOptions), POINTER(c_char_p), c_size_t, _OUT_HANDLE),
    ),
    "tg_engine_options_new": (_STATUS, (_OUT_HANDLE,)),
    "tg_engine_options_free": (None, (_HANDLE,)),
    "tg_engine_options_set_capacity": (_STATUS, (_HANDLE, c_uint32)),
    "tg_engine_options_set_flush_interval_ms": (_STATUS, (_HANDLE, c_uint64)),
    "tg_engine_options_set_installation_dir": (_STATUS, (_HANDLE, c_char_p)),
    "tg_engine_options_set_open_existing": (_STATUS, (_HANDLE, c_bool)),
    "tg_engine_options_set_admin_lock_timeout_ms": (_STATUS, (_HANDLE, c_uint64)),
    "tg_engine_options_trust": (_STATUS, (_HANDLE, c_char_p)),
    "tg_engine_open_with_options": (_STATUS, (c_char_p, _HANDLE, _OUT_HANDLE)),
    "tg_engine_trust": (_STATUS, (_HANDLE, c_char_p)),
    "tg_trusted_keys_json": (_STATUS, (_HANDLE, _OUT_STRING)),
    "tg_engine_enable_renewal": (_STATUS, (_HANDLE, c_char_p, POINTER(RenewalOptions))),
    "tg_renew_now": (_STATUS, (_HANDLE, c_char_p, _OUT_STRING)),
    "tg_renewal_status_json": (_STATUS, (_HANDLE, _OUT_STRING)),
    "tg_key_activate": (
        _STATUS,
        (_HANDLE, c_char_p, c_char_p, c_char_p, c_char_p, c_bool, _OUT_STRING),
    ),
    "tg_key_activate_bulk": (
        _STATUS,
        (_HANDLE, c_char_p, c_char_p, c_char_p, c_char_p, _OUT_STRING),
    ),
    "tg_engine_machine_id": (_STATUS, (_HANDLE, _OUT_STRING)),
    "tg_engine_close": (None, (_HANDLE,)),
    "tg_engine_flush": (_STATUS, (_HANDLE,)),
    "tg_project_create": (_STATUS, (_HANDLE, c_char_p)),
    "tg_project_list_json": (_STATUS, (_HANDLE, _OUT_STRING)),
    "tg_key_add": (_STATUS, (_HANDLE, c_char_p, c_char_p)),
    "tg_key_add_reserve": (_STATUS, (_HANDLE, c_char_p, c_char_p)),
    "tg_key_replace": (_STATUS, (_HANDLE, c_char_p, c_char_p)),
    "tg_key_remove_reserve": (_STATUS, (_HANDLE, c_char_p, c_char_p)),
    "tg_keys_json": (_STATUS, (_HANDLE, c_char_p, _OUT_STRING)),
    "tg_project_open": (_STATUS, (_HANDLE, c_char_p, _OUT_HANDLE)),
    "tg_project_close": (None, (_HANDLE,)),
    "tg_consume": (_STATUS, (_HANDLE, _AMOUNT)),
    "tg_consume_partial": (_STATUS, (_HANDLE, _AMOUNT, POINTER(c_uint64))),
    "tg_consume_batch": (_STATUS, (_HANDLE, c_void_p, c_size_t, POINTER(c_size_t))),
    "tg_usage_get": (_STATUS, (_HANDLE, POINTER(Usage))),
    "tg_usage_v2_get": (_STATUS, (_HANDLE, POINTER(UsageV2))),
    "tg_project_view_json": (_STATUS, (_HANDLE, c_char_p, _OUT_STRING)),
    "tg_events_json": (_STATUS, (_HANDLE, c_uint64, c_size_t, _OUT_STRING)),
    # The callback is passed as its address (NULL removes it): see `Engine.subscribe`.
    "tg_engine_on_event": (_STATUS, (_HANDLE, c_void_p, c_void_p)),
    "tg_seats_open": (_STATUS, (_HANDLE, c_char_p, c_char_p, _OUT_HANDLE)),
    "tg_seats_close": (None, (_HANDLE,)),
    "tg_seat_acquire": (_STATUS, (_HANDLE, c_uint64)),
    "tg_seat_release": (_STATUS, (_HANDLE, c_uint64)),
    "tg_seat_held": (_STATUS, (_HANDLE, POINTER(c_uint64))),
    "tg_seat_usage_get": (_STATUS, (_HANDLE, POINTER(SeatUsage))),
    "tg_seats_reclaim_json": (_STATUS, (_HANDLE, _OUT_STRING)),
    "tg_instance_add": (_STATUS, (_HANDLE, c_char_p, c_char_p, c_char_p)),
    "tg_instance_open": (_STATUS, (_HANDLE, c_char_p, _OUT_HANDLE)),
    "tg_instance_close": (None, (_HANDLE,)),
    "tg_instance_check": (_STATUS, (_HANDLE,)),
    "tg_instance_assign": (_STATUS, (_HANDLE, c_char_p, c_char_p, _OUT_STRING)),
    "tg_instance_unassign": (_STATUS, (_HANDLE, c_char_p, _OUT_STRING)),
    "tg_instances_json": (_STATUS, (_HANDLE, _OUT_STRING)),
    "tg_pool_buy": (_STATUS, (_HANDLE, c_char_p, _OUT_STRING)),
    "tg_pool_list_json": (_STATUS, (_HANDLE, c_char_p, _OUT_STRING)),
    "tg_pool_shortfall_json": (_STATUS, (_HANDLE, c_uint32, _OUT_STRING)),
    "tg_group_add": (_STATUS, (_HANDLE, c_char_p, c_char_p)),
    "tg_groups_json": (_STATUS, (_HANDLE, _OUT_STRING)),
    "tg_key_add_reserve_bulk": (_STATUS, (_HANDLE, c_char_p, c_char_p, _OUT_STRING)),
    "tg_string_free": (None, (c_void_p,)),
    "tg_last_error_message": (c_char_p, ()),
    "tg_status_name": (c_char_p, (_STATUS,)),
    "tg_version": (c_char_p, ()),
}


#: A declared function returning a ``tg_status``.
_Call = Callable[..., int]


def _declare(name: str) -> Any:
    try:
        function = getattr(_lib_keeping_gil if name in _KEEP_GIL else lib, name)
    except AttributeError:
        raise ImportError(
            f"{library_path} does not export {name}: it is not a Tollgate library of this version"
        ) from None
    function.restype, function.argtypes = _SIGNATURES[name]
    return function


tg_engine_open: _Call = _declare("tg_engine_open")
tg_engine_open_with: _Call = _declare("tg_engine_open_with")
tg_engine_open_trusted: _Call = _declare("tg_engine_open_trusted")
tg_engine_options_new: _Call = _declare("tg_engine_options_new")
tg_engine_options_free: Callable[[Any], None] = _declare("tg_engine_options_free")
tg_engine_options_set_capacity: _Call = _declare("tg_engine_options_set_capacity")
tg_engine_options_set_flush_interval_ms: _Call = _declare("tg_engine_options_set_flush_interval_ms")
tg_engine_options_set_installation_dir: _Call = _declare("tg_engine_options_set_installation_dir")
tg_engine_options_set_open_existing: _Call = _declare("tg_engine_options_set_open_existing")
tg_engine_options_set_admin_lock_timeout_ms: _Call = _declare(
    "tg_engine_options_set_admin_lock_timeout_ms"
)
tg_engine_options_trust: _Call = _declare("tg_engine_options_trust")
tg_engine_open_with_options: _Call = _declare("tg_engine_open_with_options")
tg_engine_trust: _Call = _declare("tg_engine_trust")
tg_trusted_keys_json: _Call = _declare("tg_trusted_keys_json")
tg_engine_enable_renewal: _Call = _declare("tg_engine_enable_renewal")
tg_renew_now: _Call = _declare("tg_renew_now")
tg_renewal_status_json: _Call = _declare("tg_renewal_status_json")
tg_key_activate: _Call = _declare("tg_key_activate")
tg_key_activate_bulk: _Call = _declare("tg_key_activate_bulk")
tg_engine_machine_id: _Call = _declare("tg_engine_machine_id")
tg_engine_close: Callable[[Any], None] = _declare("tg_engine_close")
tg_engine_flush: _Call = _declare("tg_engine_flush")
tg_project_create: _Call = _declare("tg_project_create")
tg_project_list_json: _Call = _declare("tg_project_list_json")
tg_key_add: _Call = _declare("tg_key_add")
tg_key_add_reserve: _Call = _declare("tg_key_add_reserve")
tg_key_replace: _Call = _declare("tg_key_replace")
tg_key_remove_reserve: _Call = _declare("tg_key_remove_reserve")
tg_keys_json: _Call = _declare("tg_keys_json")
tg_project_open: _Call = _declare("tg_project_open")
tg_project_close: Callable[[Any], None] = _declare("tg_project_close")
tg_consume: _Call = _declare("tg_consume")
tg_consume_partial: _Call = _declare("tg_consume_partial")
tg_consume_batch: _Call = _declare("tg_consume_batch")
tg_usage_get: _Call = _declare("tg_usage_get")
tg_usage_v2_get: _Call = _declare("tg_usage_v2_get")
tg_project_view_json: _Call = _declare("tg_project_view_json")
tg_events_json: _Call = _declare("tg_events_json")
tg_engine_on_event: _Call = _declare("tg_engine_on_event")
tg_seats_open: _Call = _declare("tg_seats_open")
tg_seats_close: Callable[[Any], None] = _declare("tg_seats_close")
tg_seat_acquire: _Call = _declare("tg_seat_acquire")
tg_seat_release: _Call = _declare("tg_seat_release")
tg_seat_held: _Call = _declare("tg_seat_held")
tg_seat_usage_get: _Call = _declare("tg_seat_usage_get")
tg_seats_reclaim_json: _Call = _declare("tg_seats_reclaim_json")
tg_instance_add: _Call = _declare("tg_instance_add")
tg_instance_open: _Call = _declare("tg_instance_open")
tg_instance_close: Callable[[Any], None] = _declare("tg_instance_close")
tg_instance_check: _Call = _declare("tg_instance_check")
tg_instance_assign: _Call = _declare("tg_instance_assign")
tg_instance_unassign: _Call = _declare("tg_instance_unassign")
tg_instances_json: _Call = _declare("tg_instances_json")
tg_pool_buy: _Call = _declare("tg_pool_buy")
tg_pool_list_json: _Call = _declare("tg_pool_list_json")
tg_pool_shortfall_json: _Call = _declare("tg_pool_shortfall_json")
tg_group_add: _Call = _declare("tg_group_add")
tg_groups_json: _Call = _declare("tg_groups_json")
tg_key_add_reserve_bulk: _Call = _declare("tg_key_add_reserve_bulk")
tg_string_free: Callable[[Any], None] = _declare("tg_string_free")
tg_last_error_message: Callable[[], Optional[bytes]] = _declare("tg_last_error_message")
tg_status_name: Callable[[int], Optional[bytes]] = _declare("tg_status_name")
tg_version: Callable[[], bytes] = _declare("tg_version")


def take_string(address: c_void_p) -> str:
    """Decodes a string the library returned through an out-pointer, then frees it."""
    try:
        return ctypes.string_at(address).decode("utf-8")
    finally:
        tg_string_free(address)


# --- The CPython buffer API, for zero-copy views of caller buffers -------------------------


class PyBuffer(Structure):
    """CPython's ``Py_buffer`` (part of the stable ABI since 3.11, unchanged since 3.3)."""

    _fields_ = [
        ("buf", c_void_p),
        ("obj", c_void_p),
        ("len", c_ssize_t),
        ("itemsize", c_ssize_t),
        ("readonly", c_int),
        ("ndim", c_int),
        ("format", c_char_p),
        ("shape", c_void_p),
        ("strides", c_void_p),
        ("suboffsets", c_void_p),
        ("internal", c_void_p),
    ]


#: ``PyBUF_C_CONTIGUOUS | PyBUF_FORMAT``: a C-contiguous view with its item format.
PYBUF_C_CONTIGUOUS_FORMAT = 0x0038 | 0x0004

#: Whether the buffer API can be called (CPython); elsewhere buffers are copied instead.
HAS_BUFFER_API = hasattr(ctypes, "pythonapi") and hasattr(ctypes.pythonapi, "PyBuffer_Release")

if HAS_BUFFER_API:
    PyObject_GetBuffer = ctypes.pythonapi.PyObject_GetBuffer
    PyObject_GetBuffer.restype = c_int
    PyObject_GetBuffer.argtypes = (ctypes.py_object, POINTER(PyBuffer), c_int)
    PyBuffer_Release = ctypes.pythonapi.PyBuffer_Release
    PyBuffer_Release.restype = None
    PyBuffer_Release.argtypes = (POINTER(PyBuffer),)
