"""The C ABI of ``include/tollgate.h`` for ctypes: its constants, enums, structs, callback
type, and every function declared on the loaded library with its argument and result types.

Generated from the header by ``ffi/tests/python_bindings.rs``, which fails when this file is
stale; do not edit it. Regenerate it with:

    TOLLGATE_BLESS=1 cargo test -p tollgate-ffi --test python_bindings

How C types become ctypes: enums are ``c_uint32``; opaque handles (``struct tg_engine *``) are
``c_void_p`` and their out-parameters ``POINTER(c_void_p)``; strings the library allocates
(``char **``) are read through ``void *``, so that the same address can be handed back to
``tg_string_free``; input arrays of numbers (``const uint64_t *``) and callbacks are passed as
addresses (``c_void_p``). ``_ffi.declare`` loads each function.
"""

import enum
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_bool,
    c_char,
    c_char_p,
    c_int64,
    c_size_t,
    c_uint32,
    c_uint64,
    c_void_p,
)
from typing import Callable, Optional

from ._ffi import declare

TOLLGATE_VERSION_MAJOR = 0
TOLLGATE_VERSION_MINOR = 1
TOLLGATE_VERSION_PATCH = 0
TOLLGATE_VERSION_NUMBER = (
    ((TOLLGATE_VERSION_MAJOR * 1000000) + (TOLLGATE_VERSION_MINOR * 1000)) + TOLLGATE_VERSION_PATCH
)
TG_EVENT_BACKLOG = 4096
TG_KEY_ID_SIZE = 65


class Status(enum.IntEnum):
    """``tg_status``: what every fallible Tollgate function returns."""

    OK = 0
    INVALID_ARGUMENT = 1
    NOT_FOUND = 2
    ALREADY_EXISTS = 3
    EXHAUSTED = 4
    EXPIRED = 5
    NO_ACTIVE_KEY = 6
    RESERVE_OCCUPIED = 7
    TYPE_MISMATCH = 8
    EDITION_MISMATCH = 9
    SCHEME_MISMATCH = 10
    SUBSCRIPTION = 11
    DUPLICATE_KEY = 12
    CORRUPT_STATE = 13
    IO = 14
    CAPACITY = 15
    PANIC = 16
    UNSUPPORTED = 17
    NOT_HELD = 18
    PAYMENT_MODE_MISMATCH = 19
    NO_LICENSE_AVAILABLE = 20
    LICENSE_TYPE_UNFIT = 21
    ALREADY_ASSIGNED = 22
    BAD_SIGNATURE = 23
    TAMPERED = 24
    RENEWAL_FAILED = 25
    ACTIVATION_FAILED = 26
    BUSY = 27
    INSTALLATION_MISMATCH = 28
    UNAVAILABLE = 29


class EventKind(enum.IntEnum):
    """``tg_event_kind``: what an event says happened: `tg_event.kind`."""

    PROJECT_CREATED = 1
    KEY_ADDED = 2
    SWITCHED = 3
    RESERVE_REMOVED = 4
    KEY_REPLACED = 5
    THRESHOLD = 6
    REFUSED = 7
    RECOVERED = 8
    CLOCK_ROLLED_BACK = 9
    RATCHET = 10
    ROLLBACK_ACCEPTED = 11
    CLOCK_ACCEPTED = 12
    SEATS_RECLAIMED = 13
    LICENSES_PURCHASED = 14
    INSTANCE_ADDED = 15
    LICENSE_ASSIGNED = 16
    LICENSE_UNASSIGNED = 17
    GROUP_JOINED = 18
    VENDOR_KEY_TRUSTED = 19
    RENEWAL_FAILED = 20
    GRACE_STARTED = 21
    GRACE_ENDED = 22
    OVERAGE_STARTED = 23
    PERIOD_CLOSED = 24


class OpenOptions(Structure):
    """``tg_open_options``: how to open a state directory (`tg_engine_open_with`)."""

    _fields_ = [
        ("capacity", c_uint32),
        ("flush_interval_ms", c_uint64),
    ]


class Event(Structure):
    """``tg_event``: one event, as the callback of `tg_engine_on_event` receives it."""

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


#: ``tg_event_callback``: the function `tg_engine_on_event` calls for each event, with the
#: `user_data` given there.
EventCallback = CFUNCTYPE(None, POINTER(Event), c_void_p)


class Usage(Structure):
    """``tg_usage``: usage of a project's data-volume slot pair, in bytes."""

    _fields_ = [
        ("active_used", c_uint64),
        ("active_limit", c_uint64),
        ("reserved_used", c_uint64),
        ("reserved_limit", c_uint64),
        ("has_reserved", c_bool),
        ("switches", c_uint64),
    ]


class UsageV2(Structure):
    """``tg_usage_v2``: usage of a project's data-volume slot pair over its whole life
    (`tg_usage_v2_get`): the `tg_usage` of now, then the total charged across switches and renewals,
    and the ids of the keys in the slots.
    """

    _fields_ = [
        ("current", Usage),
        ("total_used", c_uint64),
        ("active_key", c_char * TG_KEY_ID_SIZE),
        ("reserved_key", c_char * TG_KEY_ID_SIZE),
    ]


class RenewalOptions(Structure):
    """``tg_renewal_options``: how an engine renews its keys (`tg_engine_enable_renewal`)."""

    _fields_ = [
        ("lead_secs", c_uint64),
        ("retry_secs", c_uint64),
        ("check_every_ms", c_uint64),
        ("timeout_ms", c_uint64),
        ("attempts", c_uint32),
    ]


class SeatUsage(Structure):
    """``tg_seat_usage``: a seat pair's seats and keys (`tg_seat_usage_get`)."""

    _fields_ = [
        ("held", c_uint64),
        ("limit", c_uint64),
        ("reserved_limit", c_uint64),
        ("has_reserved", c_bool),
        ("switches", c_uint64),
    ]


class ThreadFast(Structure):
    """``tg_thread_fast``: where a thread handle's block path reads and writes, for
    `tg_thread_consume_inline` (`tollgate_inline.h`), which does in the caller what
    `tg_thread_consume` does within the block.
    """

    _fields_ = [
        ("room", POINTER(c_uint64)),
        ("valid_until", c_void_p),
        ("now", c_void_p),
    ]


tg_version: Callable[..., Optional[bytes]] = declare("tg_version", c_char_p, ())
tg_version_number: Callable[..., int] = declare("tg_version_number", c_uint32, ())
tg_string_free: Callable[..., None] = declare("tg_string_free", None, (c_void_p,))
tg_last_error_message: Callable[..., Optional[bytes]] = declare(
    "tg_last_error_message", c_char_p, ()
)
tg_key_activate: Callable[..., int] = declare(
    "tg_key_activate",
    c_uint32,
    (c_void_p, c_char_p, c_char_p, c_char_p, c_char_p, c_bool, POINTER(c_void_p)),
)
tg_key_activate_bulk: Callable[..., int] = declare(
    "tg_key_activate_bulk",
    c_uint32,
    (c_void_p, c_char_p, c_char_p, c_char_p, c_char_p, POINTER(c_void_p)),
)
tg_engine_machine_id: Callable[..., int] = declare(
    "tg_engine_machine_id", c_uint32, (c_void_p, POINTER(c_void_p))
)
tg_engine_open: Callable[..., int] = declare(
    "tg_engine_open", c_uint32, (c_char_p, POINTER(c_void_p))
)
tg_engine_open_with: Callable[..., int] = declare(
    "tg_engine_open_with", c_uint32, (c_char_p, POINTER(OpenOptions), POINTER(c_void_p))
)
tg_engine_close: Callable[..., None] = declare("tg_engine_close", None, (c_void_p,))
tg_engine_flush: Callable[..., int] = declare("tg_engine_flush", c_uint32, (c_void_p,))
tg_engine_options_new: Callable[..., int] = declare(
    "tg_engine_options_new", c_uint32, (POINTER(c_void_p),)
)
tg_engine_options_free: Callable[..., None] = declare("tg_engine_options_free", None, (c_void_p,))
tg_engine_options_set_capacity: Callable[..., int] = declare(
    "tg_engine_options_set_capacity", c_uint32, (c_void_p, c_uint32)
)
tg_engine_options_set_flush_interval_ms: Callable[..., int] = declare(
    "tg_engine_options_set_flush_interval_ms", c_uint32, (c_void_p, c_uint64)
)
tg_engine_options_set_installation_dir: Callable[..., int] = declare(
    "tg_engine_options_set_installation_dir", c_uint32, (c_void_p, c_char_p)
)
tg_engine_options_set_open_existing: Callable[..., int] = declare(
    "tg_engine_options_set_open_existing", c_uint32, (c_void_p, c_bool)
)
tg_engine_options_set_admin_lock_timeout_ms: Callable[..., int] = declare(
    "tg_engine_options_set_admin_lock_timeout_ms", c_uint32, (c_void_p, c_uint64)
)
tg_engine_options_set_fleet: Callable[..., int] = declare(
    "tg_engine_options_set_fleet", c_uint32, (c_void_p, c_char_p, c_char_p)
)
tg_engine_options_set_fleet_lease_ttl_ms: Callable[..., int] = declare(
    "tg_engine_options_set_fleet_lease_ttl_ms", c_uint32, (c_void_p, c_uint64)
)
tg_engine_options_trust: Callable[..., int] = declare(
    "tg_engine_options_trust", c_uint32, (c_void_p, c_char_p)
)
tg_engine_open_with_options: Callable[..., int] = declare(
    "tg_engine_open_with_options", c_uint32, (c_char_p, c_void_p, POINTER(c_void_p))
)
tg_events_json: Callable[..., int] = declare(
    "tg_events_json", c_uint32, (c_void_p, c_uint64, c_size_t, POINTER(c_void_p))
)
tg_engine_on_event: Callable[..., int] = declare(
    "tg_engine_on_event", c_uint32, (c_void_p, c_void_p, c_void_p)
)
tg_group_add: Callable[..., int] = declare("tg_group_add", c_uint32, (c_void_p, c_char_p, c_char_p))
tg_groups_json: Callable[..., int] = declare(
    "tg_groups_json", c_uint32, (c_void_p, POINTER(c_void_p))
)
tg_key_add_reserve_bulk: Callable[..., int] = declare(
    "tg_key_add_reserve_bulk", c_uint32, (c_void_p, c_char_p, c_char_p, POINTER(c_void_p))
)
tg_instance_add: Callable[..., int] = declare(
    "tg_instance_add", c_uint32, (c_void_p, c_char_p, c_char_p, c_char_p)
)
tg_instance_open: Callable[..., int] = declare(
    "tg_instance_open", c_uint32, (c_void_p, c_char_p, POINTER(c_void_p))
)
tg_instance_close: Callable[..., None] = declare("tg_instance_close", None, (c_void_p,))
tg_instance_check: Callable[..., int] = declare("tg_instance_check", c_uint32, (c_void_p,))
tg_instance_assign: Callable[..., int] = declare(
    "tg_instance_assign", c_uint32, (c_void_p, c_char_p, c_char_p, POINTER(c_void_p))
)
tg_instance_unassign: Callable[..., int] = declare(
    "tg_instance_unassign", c_uint32, (c_void_p, c_char_p, POINTER(c_void_p))
)
tg_instances_json: Callable[..., int] = declare(
    "tg_instances_json", c_uint32, (c_void_p, POINTER(c_void_p))
)
tg_key_add: Callable[..., int] = declare("tg_key_add", c_uint32, (c_void_p, c_char_p, c_char_p))
tg_key_add_reserve: Callable[..., int] = declare(
    "tg_key_add_reserve", c_uint32, (c_void_p, c_char_p, c_char_p)
)
tg_key_replace: Callable[..., int] = declare(
    "tg_key_replace", c_uint32, (c_void_p, c_char_p, c_char_p)
)
tg_key_remove_reserve: Callable[..., int] = declare(
    "tg_key_remove_reserve", c_uint32, (c_void_p, c_char_p, c_char_p)
)
tg_keys_json: Callable[..., int] = declare(
    "tg_keys_json", c_uint32, (c_void_p, c_char_p, POINTER(c_void_p))
)
tg_key_periods_json: Callable[..., int] = declare(
    "tg_key_periods_json", c_uint32, (c_void_p, c_char_p, POINTER(c_void_p))
)
tg_pool_buy: Callable[..., int] = declare(
    "tg_pool_buy", c_uint32, (c_void_p, c_char_p, POINTER(c_void_p))
)
tg_pool_list_json: Callable[..., int] = declare(
    "tg_pool_list_json", c_uint32, (c_void_p, c_char_p, POINTER(c_void_p))
)
tg_pool_shortfall_json: Callable[..., int] = declare(
    "tg_pool_shortfall_json", c_uint32, (c_void_p, c_uint32, POINTER(c_void_p))
)
tg_project_create: Callable[..., int] = declare("tg_project_create", c_uint32, (c_void_p, c_char_p))
tg_project_list_json: Callable[..., int] = declare(
    "tg_project_list_json", c_uint32, (c_void_p, POINTER(c_void_p))
)
tg_project_view_json: Callable[..., int] = declare(
    "tg_project_view_json", c_uint32, (c_void_p, c_char_p, POINTER(c_void_p))
)
tg_project_open: Callable[..., int] = declare(
    "tg_project_open", c_uint32, (c_void_p, c_char_p, POINTER(c_void_p))
)
tg_project_close: Callable[..., None] = declare("tg_project_close", None, (c_void_p,))
tg_consume: Callable[..., int] = declare("tg_consume", c_uint32, (c_void_p, c_uint64))
tg_consume_partial: Callable[..., int] = declare(
    "tg_consume_partial", c_uint32, (c_void_p, c_uint64, POINTER(c_uint64))
)
tg_consume_batch: Callable[..., int] = declare(
    "tg_consume_batch", c_uint32, (c_void_p, c_void_p, c_size_t, POINTER(c_size_t))
)
tg_usage_get: Callable[..., int] = declare("tg_usage_get", c_uint32, (c_void_p, POINTER(Usage)))
tg_usage_v2_get: Callable[..., int] = declare(
    "tg_usage_v2_get", c_uint32, (c_void_p, POINTER(UsageV2))
)
tg_engine_enable_renewal: Callable[..., int] = declare(
    "tg_engine_enable_renewal", c_uint32, (c_void_p, c_char_p, POINTER(RenewalOptions))
)
tg_renew_now: Callable[..., int] = declare(
    "tg_renew_now", c_uint32, (c_void_p, c_char_p, POINTER(c_void_p))
)
tg_renewal_status_json: Callable[..., int] = declare(
    "tg_renewal_status_json", c_uint32, (c_void_p, POINTER(c_void_p))
)
tg_seats_open: Callable[..., int] = declare(
    "tg_seats_open", c_uint32, (c_void_p, c_char_p, c_char_p, POINTER(c_void_p))
)
tg_seats_close: Callable[..., None] = declare("tg_seats_close", None, (c_void_p,))
tg_seat_acquire: Callable[..., int] = declare("tg_seat_acquire", c_uint32, (c_void_p, c_uint64))
tg_seat_release: Callable[..., int] = declare("tg_seat_release", c_uint32, (c_void_p, c_uint64))
tg_seat_held: Callable[..., int] = declare("tg_seat_held", c_uint32, (c_void_p, POINTER(c_uint64)))
tg_seat_usage_get: Callable[..., int] = declare(
    "tg_seat_usage_get", c_uint32, (c_void_p, POINTER(SeatUsage))
)
tg_seats_reclaim_json: Callable[..., int] = declare(
    "tg_seats_reclaim_json", c_uint32, (c_void_p, POINTER(c_void_p))
)
tg_status_name: Callable[..., Optional[bytes]] = declare("tg_status_name", c_char_p, (c_uint32,))
tg_status_message: Callable[..., Optional[bytes]] = declare(
    "tg_status_message", c_char_p, (c_uint32,)
)
tg_thread_project_open: Callable[..., int] = declare(
    "tg_thread_project_open", c_uint32, (c_void_p, POINTER(c_void_p))
)
tg_thread_project_close: Callable[..., None] = declare("tg_thread_project_close", None, (c_void_p,))
tg_thread_consume: Callable[..., int] = declare("tg_thread_consume", c_uint32, (c_void_p, c_uint64))
tg_thread_consume_partial: Callable[..., int] = declare(
    "tg_thread_consume_partial", c_uint32, (c_void_p, c_uint64, POINTER(c_uint64))
)
tg_thread_project_fast: Callable[..., int] = declare(
    "tg_thread_project_fast", c_uint32, (c_void_p, POINTER(ThreadFast))
)
tg_thread_project_room: Callable[..., int] = declare(
    "tg_thread_project_room", c_uint32, (c_void_p, POINTER(c_uint64))
)
tg_engine_open_trusted: Callable[..., int] = declare(
    "tg_engine_open_trusted",
    c_uint32,
    (c_char_p, POINTER(OpenOptions), POINTER(c_char_p), c_size_t, POINTER(c_void_p)),
)
tg_engine_trust: Callable[..., int] = declare("tg_engine_trust", c_uint32, (c_void_p, c_char_p))
tg_trusted_keys_json: Callable[..., int] = declare(
    "tg_trusted_keys_json", c_uint32, (c_void_p, POINTER(c_void_p))
)
