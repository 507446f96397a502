"""The one place that loads the Tollgate shared library.

``_bindings`` (generated from ``include/tollgate.h``) declares every function of the header
through :func:`declare`, which adds what the header cannot say: which calls keep the GIL, and
how the metering calls take their amount. No other module touches ``ctypes.CDLL``. The library
is looked up, first found wins:

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
    POINTER,
    Structure,
    c_char_p,
    c_int,
    c_ssize_t,
    c_uint64,
    c_void_p,
)
from pathlib import Path
from typing import Any, List, Tuple

LIBRARY_ENV = "TOLLGATE_LIBRARY"
LIBRARY_NAME = {"darwin": "libtollgate.dylib", "win32": "tollgate.dll"}.get(
    sys.platform, "libtollgate.so"
)


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
        "tg_thread_consume",
        "tg_thread_consume_partial",
        "tg_thread_project_room",
    }
)

# The `uint64_t bytes` of the metering calls. On 64-bit platforms it is declared as a pointer,
# which every 64-bit C ABI passes exactly like a uint64_t (one 8-byte integer register or slot):
# ctypes converts an int to a pointer in about half the time it takes for c_uint64, and this
# conversion is most of the cost of a call. Both wrap out-of-range ints silently, so the caller
# checks the range (`Project.consume`).
_AMOUNT_CALLS = frozenset(
    {"tg_consume", "tg_consume_partial", "tg_thread_consume", "tg_thread_consume_partial"}
)
_AMOUNT = c_void_p if ctypes.sizeof(c_void_p) == 8 else c_uint64


def declare(name: str, restype: Any, argtypes: Tuple[Any, ...]) -> Any:
    """The library's function ``name`` with its result and argument types: ``_bindings`` calls
    this for every function of the header."""
    try:
        function = getattr(_lib_keeping_gil if name in _KEEP_GIL else lib, name)
    except AttributeError:
        raise ImportError(
            f"{library_path} does not export {name}: it is not a Tollgate library of this version"
        ) from None
    if name in _AMOUNT_CALLS:
        argtypes = (argtypes[0], _AMOUNT) + argtypes[2:]
    function.restype, function.argtypes = restype, argtypes
    return function


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
