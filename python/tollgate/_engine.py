"""The engine: an open state directory, its projects, keys, seats, instances, license pools,
groups, views and audit events."""

from __future__ import annotations

import json
import os
import weakref
from ctypes import byref, c_void_p, string_at
from datetime import date, datetime, timezone
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, TypeVar, Union, cast

from . import _bindings
from ._error import InvalidArgument, check
from ._events import EventStream, Listeners, Subscriber
from ._handle import EngineHandle, Handle, encode_text, opened
from ._instance import Instance
from ._project import Project
from ._seats import Seats

#: A license key: the key JSON as a ``dict``, or as a JSON string, or the text of a signed
#: license file (``KEY.lic``), which a state that trusts a vendor key requires for offline keys.
KeyLike = Union[Dict[str, Any], str]

#: A state directory path.
PathLike = Union[str, "os.PathLike[str]"]

#: A point in time: an aware ``datetime``, a ``date`` (its midnight UTC), or an RFC 3339 string.
TimeLike = Union[datetime, date, str]

_U32_MAX = 0xFFFF_FFFF
_U64_MAX = 0xFFFF_FFFF_FFFF_FFFF

_Child = TypeVar("_Child", bound=EngineHandle)


class Engine(Handle):
    """An open Tollgate state directory (created if needed).

    Every ``Engine``, thread and process that opens the same directory shares one set of
    counters. Use it as a context manager, or call :meth:`close`; closing the engine closes the
    :class:`Project`, :class:`Seats` and :class:`Instance` handles it opened.

    >>> with Engine("/var/lib/migrator/licenses") as engine:     # doctest: +SKIP
    ...     engine.create_project("warehouse")
    ...     engine.add_key("warehouse", {"id": "A-1", "delivery": "online",
    ...         "kind": "commercial", "edition": "standard",
    ...         "scheme": {"data_volume": {"limit_bytes": 1 << 30}}})
    ...     with engine.project("warehouse") as project:
    ...         project.consume(64 << 20)
    """

    __slots__ = ("_state_dir", "_handles", "_listeners", "_streams")

    KIND = "engine"

    def __init__(
        self,
        state_dir: PathLike,
        *,
        capacity: Optional[int] = None,
        flush_interval_ms: Optional[int] = None,
        trusted_keys: Optional[Iterable[str]] = None,
        activation_url: Optional[str] = None,
        installation_dir: Optional[PathLike] = None,
        open_existing: bool = False,
        admin_lock_timeout_ms: Optional[int] = None,
        store: Optional[str] = None,
        host: Optional[str] = None,
        fleet_lease_ttl_ms: Optional[int] = None,
    ) -> None:
        """Opens ``state_dir``, creating it if needed (unless ``open_existing``).

        ``capacity`` is the number of slot-pair records a new state file holds (one per project
        and license class; the library's default is 65,536); it is ignored for an existing
        state. ``flush_interval_ms`` starts a background thread that calls :meth:`flush` at
        that interval. ``trusted_keys`` are vendor public keys, each the text of a
        ``vendor.pub`` file, that the state records as trusted (see :meth:`trust`). Raises
        :class:`CorruptState` for a damaged state directory, :class:`Io` when it cannot be
        created or opened, and :class:`InvalidArgument` for a key text that is not a vendor
        public key. ``activation_url`` renews the state's online keys through the vendor's
        activation service with the default settings (see :meth:`enable_renewal`).

        ``installation_dir`` is where this installation keeps its ratchet key and anchors
        (every program opening the state must name the same one); the default comes from
        ``TOLLGATE_INSTALLATION``, else ``$XDG_STATE_HOME/tollgate``, else
        ``~/.local/state/tollgate``. With ``open_existing``, a directory holding no state is
        refused with :class:`NotFound` and nothing is created. ``admin_lock_timeout_ms`` bounds
        how long the open and each admin call wait while another process (or thread) makes an
        admin change: then they raise :class:`Busy` having changed nothing; the default waits
        as long as it takes.

        ``store`` and ``host`` open the state as a host of a fleet: many hosts, each with its
        own state directory, meter one license through the fleet store, a PostgreSQL database.
        ``store`` is its connection parameters, a ``postgresql://`` URL or ``key=value`` pairs
        (no TLS: a Unix socket or loopback), e.g. ``"host=/run/postgresql user=tollgate
        dbname=fleet"``; ``host`` is this host's name in the fleet (1 to 64 bytes), its
        identity across restarts. Give both or neither: one alone raises
        :class:`InvalidArgument` before anything is created. The state's data-volume keys are
        then metered from blocks that a background thread of the library leases from the store
        (it creates the schema and the keys' accounts there as needed, and settles its leases
        when the engine closes); metering never waits for the store. A consume that finds this
        host's leased stock spent while the store cannot be reached raises
        :class:`Unavailable`: nothing was granted, try again a moment later; :class:`Exhausted`
        means the whole fleet used the key up. A state directory is embedded or a fleet host's
        for its whole life: a fleet host starts from an empty one, and opening a fleet state
        without its store and host, or with another host's name, or an embedded state with
        them, raises :class:`InvalidArgument`. ``fleet_lease_ttl_ms`` is how long the store
        keeps each lease after its latest renewal (renewed every third of it; default 60000);
        it needs ``store`` and ``host``. See ``docs/fleet-store.md``.
        """
        self._state_dir = os.fspath(state_dir)
        self._handles: weakref.WeakSet[EngineHandle] = weakref.WeakSet()
        self._listeners = Listeners()
        self._streams: weakref.WeakSet[EventStream] = weakref.WeakSet()
        path = encode_text(self._state_dir, "state directory")
        if isinstance(trusted_keys, str):
            raise TypeError("trusted_keys must be an iterable of vendor.pub texts, not a str")
        keys = [encode_text(text, "vendor public key") for text in trusted_keys or ()]
        fleet = _fleet(store, host, fleet_lease_ttl_ms)
        installation = (
            None
            if installation_dir is None
            else encode_text(os.fspath(installation_dir), "installation directory")
        )
        settings = [
            (_bindings.tg_engine_options_set_capacity, _bounded(capacity, "capacity", 1, _U32_MAX)),
            (
                _bindings.tg_engine_options_set_flush_interval_ms,
                _bounded(flush_interval_ms, "flush_interval_ms", 1, _U64_MAX),
            ),
            (_bindings.tg_engine_options_set_installation_dir, installation),
            (_bindings.tg_engine_options_set_open_existing, bool(open_existing)),
        ]
        if admin_lock_timeout_ms is not None:
            timeout = _bounded(admin_lock_timeout_ms, "admin_lock_timeout_ms", 0, _U64_MAX)
            settings.append((_bindings.tg_engine_options_set_admin_lock_timeout_ms, timeout))
        options = c_void_p()
        check(_bindings.tg_engine_options_new(byref(options)))
        handle = c_void_p()
        try:
            for setter, value in settings:
                check(setter(options, value))
            if fleet is not None:
                store_text, host_text, ttl = fleet
                if ttl is not None:
                    check(_bindings.tg_engine_options_set_fleet_lease_ttl_ms(options, ttl))
                check(_bindings.tg_engine_options_set_fleet(options, store_text, host_text))
            for i, key in enumerate(keys):
                try:
                    check(_bindings.tg_engine_options_trust(options, key))
                except InvalidArgument as e:
                    message = f"invalid trusted_keys: element {i}: {e.message}"
                    raise InvalidArgument(message) from None
            check(_bindings.tg_engine_open_with_options(path, options, byref(handle)))
        finally:
            _bindings.tg_engine_options_free(options)
        super().__init__(opened(handle))
        if activation_url is not None:
            try:
                self.enable_renewal(activation_url)
            except BaseException:
                self.close()
                raise

    def _release(self, handle: int) -> None:
        for child in list(self._handles):
            child.close()
        _bindings.tg_engine_close(handle)
        self._listeners.closed()
        for stream in list(self._streams):
            stream.close()

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
        self._call(_bindings.tg_engine_flush)

    def trust(self, public_key: str) -> None:
        """Trusts a vendor public key, the text of a ``vendor.pub`` file, in this state from
        now on, for every process (an audit event ``vendor_key_trusted``).

        Once a state trusts any vendor key, every offline key added to it must be a license
        file signed by a trusted key and unchanged since, else :class:`BadSignature`; online
        keys are not affected. A state never forgets a key it trusts: opening it later without
        ``trusted_keys`` still enforces it. Trusting a key twice changes nothing. Raises
        :class:`InvalidArgument` for a text that is not a vendor public key.
        """
        self._call(_bindings.tg_engine_trust, encode_text(public_key, "vendor public key"))

    def trusted_keys(self) -> List[Dict[str, Any]]:
        """The vendor keys this state trusts, in the order it began to trust them: ``[{"key":
        base64 public key, "added_at": RFC 3339}, ...]``; empty in development mode, where
        unsigned keys are accepted."""
        return cast(List[Dict[str, Any]], self._json(_bindings.tg_trusted_keys_json))

    # --- Online renewal (rule R21 in docs/rules.md) ---------------------------------------------

    def enable_renewal(
        self,
        activation_url: str,
        *,
        lead_secs: Optional[int] = None,
        retry_secs: Optional[int] = None,
        check_every_ms: Optional[int] = None,
        timeout_ms: Optional[int] = None,
        attempts: Optional[int] = None,
    ) -> None:
        """Renews this state's online keys through the activation service at
        ``activation_url`` (``http://HOST:PORT`` as ``tollgate serve-activation`` prints it, or
        ``https://...``), from now on, in a background thread of the library.

        Each online Active key with an activation code and no reserve is renewed ``lead_secs``
        before it expires (default 7 days): its successor, a license the service signs and the
        engine verifies like any key, becomes the reserve, and metering switches to it at
        expiry. A failure changes nothing, is retried after ``retry_secs`` (default 1 hour),
        and :meth:`renewal_status` and a ``renewal_failed`` event say that manual renewal is
        needed. ``check_every_ms`` (default 60,000) is how often keys are looked at,
        ``timeout_ms`` (default 10,000) bounds one request, and ``attempts`` (default 5) is how
        many requests one renewal makes. Enabling again replaces the service and settings.
        Raises :class:`InvalidArgument` for a URL that is not one.
        """
        options = _bindings.RenewalOptions(
            lead_secs=_bounded(lead_secs, "lead_secs", 1, _U64_MAX),
            retry_secs=_bounded(retry_secs, "retry_secs", 1, _U64_MAX),
            check_every_ms=_bounded(check_every_ms, "check_every_ms", 1, _U64_MAX),
            timeout_ms=_bounded(timeout_ms, "timeout_ms", 1, _U64_MAX),
            attempts=_bounded(attempts, "attempts", 1, _U32_MAX),
        )
        url = encode_text(activation_url, "activation URL")
        self._call(_bindings.tg_engine_enable_renewal, url, byref(options))

    def renew_now(self, project: str) -> List[Dict[str, Any]]:
        """Renews ``project``'s online Active keys that have an activation code and no reserve
        now, whatever their expiry, and waits for the service. Returns what was renewed:
        ``[{"project", "old", "new", "role": "reserved" | "active"}, ...]``, empty when nothing
        needed it. Raises :class:`RenewalFailed`, whose message says that manual renewal is
        needed, when the service could not renew a key; nothing changed for that key."""
        renewed = self._json(_bindings.tg_renew_now, _project_name(project))
        return cast(List[Dict[str, Any]], renewed)

    def machine_id(self) -> str:
        """This installation's identity for the activation service: 64 hex digits derived
        one-way from the installation key (``$TOLLGATE_INSTALLATION``), the same for every
        engine of the installation. The service counts a code's activations by it."""
        return self._text(_bindings.tg_engine_machine_id)

    def activate(
        self,
        project: str,
        code: str,
        activation_url: str,
        *,
        reserve: bool = False,
        ca_file: Optional[Union[str, "os.PathLike[str]"]] = None,
    ) -> Dict[str, Any]:
        """Activates ``code`` through the activation service at ``activation_url`` and adds the
        key it issues for this machine (:meth:`machine_id`) to ``project``, like
        :meth:`add_key` (or :meth:`add_reserve` when ``reserve``): verified like any key, so a
        state that trusts vendor keys takes it only signed by one. ``ca_file`` is a PEM file
        whose certificates alone are trusted for ``https`` (the vendor's own authority, or the
        service's self-signed certificate). Activating the same code again from this machine
        gets the same key and spends no other activation.

        Returns ``{"key", "role": "active" | "reserved", "switched_from", "message"}``. Raises
        :class:`NotFound` for an unknown project (the service is not asked),
        :class:`ActivationFailed` when the service gives no license for the code (unknown, no
        activations left, unreachable), and the refusals of :meth:`add_key` for its key;
        nothing changes then."""
        activated = self._json(
            _bindings.tg_key_activate,
            _project_name(project),
            encode_text(code, "activation code"),
            encode_text(activation_url, "activation URL"),
            _ca_file(ca_file),
            reserve,
        )
        return cast(Dict[str, Any], activated)

    def activate_bulk(
        self,
        code: str,
        activation_url: str,
        *,
        all: bool = False,
        group: Optional[str] = None,
        project: Optional[str] = None,
        ca_file: Optional[Union[str, "os.PathLike[str]"]] = None,
    ) -> List[Dict[str, Any]]:
        """Activates ``code`` once, as :meth:`activate` does, and adds its key as the Reserved
        key of every targeted project — ``all=True``, the projects of ``group``, or one
        ``project`` — as :meth:`add_reserve_bulk` does, returning its outcomes (the
        activation task of rule R8 in docs/rules.md). Raises as :meth:`activate` does."""
        target = _bulk_target(all, group, project)
        outcomes = self._json(
            _bindings.tg_key_activate_bulk,
            target,
            encode_text(code, "activation code"),
            encode_text(activation_url, "activation URL"),
            _ca_file(ca_file),
        )
        return cast(List[Dict[str, Any]], outcomes)

    def renewal_status(self) -> List[Dict[str, Any]]:
        """The renewals that are due: each online Active key with an activation code that
        expires within the renewal lead, ``{"project", "key", "expires_at", "state":
        "pending" | "renewed" | "failed", "successor", "message"}``; a failed one's
        ``message`` says that manual renewal is needed. Empty when renewal is not enabled."""
        return cast(List[Dict[str, Any]], self._json(_bindings.tg_renewal_status_json))

    def create_project(self, name: str) -> None:
        """Creates a project with an empty data-volume slot pair.

        Raises :class:`AlreadyExists` if the name is taken, :class:`InvalidArgument` for a name
        that is empty, over 64 bytes, holds a NUL, control or format (Cf) character or is not in
        Unicode NFC, and :class:`Capacity` when the state's project table is full.
        """
        self._call(_bindings.tg_project_create, _project_name(name))

    def projects(self) -> List[str]:
        """Every project name, sorted."""
        return cast(List[str], self._json(_bindings.tg_project_list_json))

    def add_key(self, project: str, key: KeyLike) -> None:
        """Adds a license key to the slot pair of its class: the first key becomes Active, a
        second one Reserved, under rules R5–R7 in docs/rules.md.

        ``key`` is the key JSON as a ``dict`` or string, e.g. ``{"id": "A-1", "delivery":
        "online", "kind": "commercial", "edition": "standard", "scheme": {"data_volume":
        {"limit_bytes": 1073741824}}}``, optionally with ``expires_at`` (RFC 3339),
        ``auto_renew``, ``company`` and ``activation_code``; or the text of a signed license
        file (``KEY.lic``). A refused key raises the rule it breaks (:class:`TypeMismatch`,
        :class:`ReserveOccupied`, :class:`Expired`, …) and changes nothing; once the state
        trusts a vendor key (:meth:`trust`), an offline key that is not a license signed by a
        trusted key raises :class:`BadSignature`, here and in every method that adds a key.
        """
        self._call(_bindings.tg_key_add, _project_name(project), _key_json(key))

    def add_reserve(self, project: str, key: KeyLike) -> None:
        """Adds ``key`` as the Reserved key of an existing pair of its class (the
        activation task of rule R8 in docs/rules.md). It never becomes a pair's first key: without
        an Active key of its class this raises :class:`NoActiveKey` or :class:`SchemeMismatch`."""
        self._call(_bindings.tg_key_add_reserve, _project_name(project), _key_json(key))

    def replace_key(self, project: str, key: KeyLike) -> None:
        """Replaces the Active key of ``key``'s class (a renewal). A Reserved key that expires
        before the new key's term ends is removed, and an event says so."""
        self._call(_bindings.tg_key_replace, _project_name(project), _key_json(key))

    def remove_reserve(self, project: str, key_id: str) -> None:
        """Removes the Reserved key ``key_id`` before it is used; :class:`NotFound` if the
        project has no such reserve."""
        key = encode_text(key_id, "key id")
        self._call(_bindings.tg_key_remove_reserve, _project_name(project), key)

    def keys(self, project: str) -> List[Dict[str, Any]]:
        """Every key the project ever held: ``[{"key": {...}, "status": "active" | "reserved"
        | "retired" | "removed", "used": bytes}, ...]``."""
        keys = self._json(_bindings.tg_keys_json, _project_name(project))
        return cast(List[Dict[str, Any]], keys)

    def periods(self, key_id: str) -> List[Dict[str, Any]]:
        """The closed usage periods of a key with a ``reset`` term, oldest first (periods that
        have ended are closed first): ``[{"key", "starts_at", "ends_at", "used",
        "closed_at"}, ...]``, the times in Unix seconds but ``closed_at`` (RFC 3339), ``used``
        in bytes over every project. :class:`InvalidArgument` for a key the state never held."""
        periods = self._json(_bindings.tg_key_periods_json, encode_text(key_id, "key id"))
        return cast(List[Dict[str, Any]], periods)

    def view(self, project: str) -> Dict[str, Any]:
        """What a user interface shows for the project (rule R27 in docs/rules.md): ``{"project":
        name, "pairs": [{"class": "data_volume", "cards": [...], "add_license_available": bool}]}``.
        Each card has ``key``, ``type`` (Online/Offline), ``status`` ("active"/"reserved"),
        ``tooltip``, ``expiration``, ``used``, ``limit`` and ``expired``; data-volume texts are
        those of rule R28 in docs/rules.md, verbatim, and seat and instance keys get texts that name
        what they license. ``pairs`` lists the classes that hold a key (a project with none shows
        its empty pair); Add License is available when the pair holds one key and it is not a
        subscription."""
        view = self._json(_bindings.tg_project_view_json, _project_name(project))
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
        events = self._json(_bindings.tg_events_json, after, limit)
        return cast(List[Dict[str, Any]], events)

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Calls ``callback(event)`` for each event this process records on the state from now
        on, in order, with the same ``dict`` :meth:`events` lists, until the returned function
        is called or the engine is closed. A switch arrives once, a moment after the
        ``consume`` that made it returned.

        Callbacks run on the engine's event callback thread, never on a thread that is
        metering: ``consume`` neither waits for them nor runs them. They should return
        quickly; one that falls 4,096 events behind misses newer ones (they stay in the audit
        log, see :meth:`events`). An exception raised by a callback is logged on the
        ``tollgate`` logger and does not stop the others. Events of other processes sharing
        the state reach the audit log only.

        The returned function unsubscribes; when it returns, ``callback`` is not called any
        more. Calling it again, or after :meth:`close`, does nothing.
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {type(callback).__name__}")
        listeners = self._listeners
        listeners.add(self._live(), callback)
        # Weak: holding the function does not keep the engine open.
        engine = weakref.ref(self)

        def unsubscribe() -> None:
            live = engine()
            listeners.remove(None if live is None else live._handle, callback)

        return unsubscribe

    def events_stream(self, backlog: int = 4096) -> EventStream:
        """The events this process records from now on, as an iterator (see
        :class:`EventStream`): the same ``dict`` as :meth:`subscribe` gives, read on the
        caller's thread. Iteration ends when the stream or this engine is closed."""
        stream = EventStream(self.subscribe, _bounded(backlog, "backlog", 1, _U64_MAX))
        self._streams.add(stream)
        return stream

    def project(self, name: str) -> Project:
        """Looks the project up once and returns its hot-path handle (:class:`NotFound` if it
        does not exist). The handle is closed at the latest when this engine is."""
        handle = self._open(_bindings.tg_project_open, _project_name(name))
        return self._adopt(Project(handle, name, self))

    # --- Seats: per-machine, per-core and per-instance keys (rules R16, R17 in docs/rules.md) --

    def seats(self, project: str, seat_class: str) -> Seats:
        """The handle that takes and gives back seats on ``project``'s pair of ``seat_class``:
        ``"server"`` or ``"desktop"`` (per-machine keys of that OS class), ``"cores"``
        (per-core keys) or ``"instance"`` (per-instance keys). A project may hold a server pair
        and a desktop pair at once. Without a key of that class yet, the handle refuses with
        :class:`NoActiveKey` until one is added. Raises :class:`NotFound` for an unknown
        project and :class:`InvalidArgument` for another class name."""
        seat = encode_text(seat_class, "seat class")
        handle = self._open(_bindings.tg_seats_open, _project_name(project), seat)
        return self._adopt(Seats(handle, project, seat_class, self))

    def reclaim_seats(self) -> List[Dict[str, Any]]:
        """Takes back now the seats of every process that ended without releasing them and
        returns what was reclaimed: ``[{"project", "class", "pid", "units"}, ...]`` (each also
        goes to the audit log). Seats are also reclaimed on their own when a state or seat
        handle is opened and when an ``acquire`` finds too few free."""
        return cast(List[Dict[str, Any]], self._json(_bindings.tg_seats_reclaim_json))

    # --- Instances and license pools (rules R22–R26 in docs/rules.md) ----------------------------

    def add_instance(self, name: str, os: str, company: Optional[str] = None) -> None:
        """Registers an instance, a project licensed per instance: ``os`` is ``"windows"``,
        ``"macos"`` or ``"linux"``; ``company`` matches it to that company's license pool.
        Raises :class:`AlreadyExists` when a project of that name exists."""
        owner = None if company is None else encode_text(company, "company name")
        self._call(
            _bindings.tg_instance_add,
            encode_text(name, "instance name"),
            encode_text(os, "instance OS"),
            owner,
        )

    def instance(self, name: str) -> Instance:
        """Looks the instance up once and returns the handle a backup job checks before each run
        (:class:`NotFound` if there is no such instance)."""
        handle = self._open(_bindings.tg_instance_open, encode_text(name, "instance name"))
        return self._adopt(Instance(handle, name, self))

    def instances(self) -> List[Dict[str, Any]]:
        """Every instance, by name: ``[{"name", "os", "company", "license"}, ...]``, where
        ``license`` is the id of its pool license or None."""
        return cast(List[Dict[str, Any]], self._json(_bindings.tg_instances_json))

    def assign(self, name: str, license_type: Optional[str] = None) -> Dict[str, Any]:
        """Assigns a valid, unassigned pool license to instance ``name``: from its company's
        pool first, then the global pool; only types that fit its OS (macOS and Linux need
        ``"desktop"`` or ``"server"``), narrowest first; with ``license_type``, only that type.

        Returns ``{"instance", "license", "license_type", "from_company_pool",
        "replaced_expired"}`` (the last is the expired license the instance gave back, or
        None). Raises :class:`AlreadyAssigned` when it holds a valid license,
        :class:`LicenseTypeUnfit` when ``license_type`` does not fit its OS,
        :class:`NoLicenseAvailable` when no license fits."""
        wanted = None if license_type is None else encode_text(license_type, "license type")
        instance = encode_text(name, "instance name")
        return cast(Dict[str, Any], self._json(_bindings.tg_instance_assign, instance, wanted))

    def unassign(self, name: str) -> str:
        """Takes the pool license off instance ``name``, returns it to its pool, and returns
        its id; :class:`NotFound` when the instance holds none."""
        return self._text(_bindings.tg_instance_unassign, encode_text(name, "instance name"))

    def buy_licenses(
        self,
        license_type: str,
        quantity: int,
        payment_mode: str,
        *,
        kind: str = "commercial",
        company: Optional[str] = None,
        expires_at: Optional[TimeLike] = None,
        auto_renew: bool = False,
        premium_support: bool = False,
        onboarding: bool = False,
    ) -> List[str]:
        """Buys ``quantity`` licenses of ``license_type`` (``"server"``, ``"desktop"`` or
        ``"workstation"``) into the global pool, or into ``company``'s pool, and returns their
        ids.

        ``payment_mode`` is ``"monthly"`` or ``"annual"``: the first purchase fixes it and a
        later one with the other mode raises :class:`PaymentModeMismatch`. ``kind`` is
        ``"commercial"`` or ``"trial"``; ``expires_at`` ends the term (an aware ``datetime``, a
        ``date`` meaning its midnight UTC, or an RFC 3339 string; None never expires);
        ``premium_support`` and ``onboarding`` are the add-on services, recorded and listed."""
        purchase = {
            "license_type": license_type,
            "quantity": _integer(quantity, "quantity"),
            "payment_mode": payment_mode,
            "kind": kind,
            "company": company,
            "expires_at": _rfc3339(expires_at, "expires_at"),
            "auto_renew": auto_renew,
            "premium_support": premium_support,
            "onboarding": onboarding,
        }
        ids = self._json(_bindings.tg_pool_buy, _json_text(purchase, "purchase JSON"))
        return cast(List[str], ids)

    def list_licenses(
        self,
        *,
        license_type: Optional[str] = None,
        company: Optional[str] = None,
        kind: Optional[str] = None,
        valid: Optional[bool] = None,
        used: Optional[bool] = None,
        auto_renew_only: bool = False,
        search: Optional[str] = None,
    ) -> List[Dict[str, Any]]:
        """The pool licenses that pass every filter given, grouped by type: ``[{"license_type",
        "count", "used", "licenses": [...], "message"}, ...]``. ``message`` is rule R26's "You
        have not purchased licenses of this type" for a type never bought (as the ``kind``
        asked for, when one is), else None.

        Filters: ``license_type`` (list that type only), ``company`` (that company's pool and
        the licenses assigned to its instances),
        ``kind`` (``"commercial"`` or ``"trial"``), ``valid`` (True: unexpired, False:
        expired), ``used`` (True: assigned, False: unassigned; commercial licenses only, so it
        leaves trials out), ``auto_renew_only``, ``search`` (case-insensitive text in the id,
        type, company or assigned instance). Each license carries ``id``, ``license_type``,
        ``kind``, ``company``, ``expires_at``, ``valid``, ``auto_renew``, ``assigned_to``,
        ``purchase``, ``payment_mode``, ``premium_support`` and ``onboarding``."""
        given = {
            "license_type": license_type,
            "company": company,
            "kind": kind,
            "valid": valid,
            "used": used,
            "auto_renew_only": auto_renew_only or None,
            "search": search,
        }
        filters = {name: value for name, value in given.items() if value is not None}
        text = _json_text(filters, "filter JSON") if filters else None
        return cast(List[Dict[str, Any]], self._json(_bindings.tg_pool_list_json, text))

    def shortfall(self, days: int = 30) -> Dict[str, Any]:
        """How many licenses of each type to buy so that every instance stays licensed for the
        next ``days`` days: instances with no valid license, plus those whose license expires
        within ``days`` without auto-renew, less what unassigned licenses already cover.
        Returns ``{"days", "types": [{"license_type", "needed", "covered", "to_buy"}, ...],
        "needs": [{"instance", "reason", "license_type", "company", "covered_by"}, ...]}``."""
        horizon = _bounded(days, "days", 0, _U32_MAX)
        return cast(Dict[str, Any], self._json(_bindings.tg_pool_shortfall_json, horizon))

    # --- Groups and bulk activation (rule R8 in docs/rules.md) ----------------------------

    def add_to_group(self, group: str, projects: Iterable[str]) -> None:
        """Adds ``projects`` (names of existing projects) to ``group``, creating it; a project
        already in it stays once. An unknown project raises :class:`NotFound` and changes
        nothing."""
        if isinstance(projects, str):
            raise TypeError("projects must be an iterable of project names, not a str")
        members = _json_text(list(projects), "projects JSON")
        self._call(_bindings.tg_group_add, encode_text(group, "group name"), members)

    def groups(self) -> List[Dict[str, Any]]:
        """Every group with its projects, by name: ``[{"name", "projects"}, ...]``."""
        return cast(List[Dict[str, Any]], self._json(_bindings.tg_groups_json))

    def add_reserve_bulk(
        self,
        key: KeyLike,
        *,
        all: bool = False,
        group: Optional[str] = None,
        project: Optional[str] = None,
    ) -> List[Dict[str, Any]]:
        """Adds ``key`` as the Reserved key of every targeted project — ``all=True``, the
        projects of ``group``, or one ``project``; exactly one target — under the rules of
        :meth:`add_reserve`, each project on its own: a refusal on one never stops the others.

        Returns one outcome per project, by name: ``{"project", "status", "code", "role",
        "message"}`` where ``status`` is the library's status name (``"TG_OK"``,
        ``"TG_NO_ACTIVE_KEY"``, …), ``code`` its number (see :class:`Status`), ``role`` the slot
        the key took or None, and ``message`` the pop-up text or the refusal. The call itself
        raises only for an unknown group or project or a malformed key."""
        target = _bulk_target(all, group, project)
        outcomes = self._json(_bindings.tg_key_add_reserve_bulk, target, _key_json(key))
        return cast(List[Dict[str, Any]], outcomes)

    # --- Plumbing ----------------------------------------------------------------------------

    def _open(self, function: Callable[..., int], *args: Any) -> int:
        """Calls ``function(engine, *args, &out)`` and returns the handle left in ``out``."""
        handle = c_void_p()
        self._call(function, *args, byref(handle))
        return opened(handle)

    def _adopt(self, child: _Child) -> _Child:
        """Remembers a handle this engine opened, so that closing the engine closes it."""
        self._handles.add(child)
        return child

    def _forget(self, child: EngineHandle) -> None:
        """Called by a closing handle."""
        self._handles.discard(child)

    def _call(self, function: Callable[..., int], *args: Any) -> None:
        """Calls ``function(engine, *args)``, raising the error for a non-zero status."""
        check(function(self._live(), *args))

    def _text(self, function: Callable[..., int], *args: Any) -> str:
        """Calls ``function(engine, *args, &out)`` and returns the string left in ``out``."""
        out = c_void_p()
        self._call(function, *args, byref(out))
        try:
            return string_at(out).decode("utf-8")
        finally:
            _bindings.tg_string_free(out)

    def _json(self, function: Callable[..., int], *args: Any) -> Any:
        """Like :meth:`_text`, with the string decoded as JSON."""
        return json.loads(self._text(function, *args))


def _bulk_target(all: bool, group: Optional[str], project: Optional[str]) -> bytes:
    targets = {"all": True if all else None, "group": group, "project": project}
    chosen = {name: value for name, value in targets.items() if value is not None}
    if len(chosen) != 1:
        raise InvalidArgument(
            "invalid target: give exactly one of all=True, group=... or project=..."
        )
    return _json_text(chosen, "target JSON")


def _ca_file(path: Optional[Union[str, "os.PathLike[str]"]]) -> Optional[bytes]:
    return None if path is None else encode_text(os.fspath(path), "CA file")


def _project_name(name: str) -> bytes:
    return encode_text(name, "project name")


def _key_json(key: KeyLike) -> bytes:
    if isinstance(key, dict):
        return _json_text(key, "key JSON")
    if isinstance(key, str):
        return encode_text(key, "key JSON")
    raise TypeError(
        f"key must be a dict, a JSON str or a license file's text, not {type(key).__name__}"
    )


def _json_text(value: Any, what: str) -> bytes:
    """``value`` as JSON text for the C ABI; a value JSON cannot hold raises ``TypeError``."""
    return encode_text(json.dumps(value), what)


def _integer(value: Any, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    return value


def _fleet(
    store: Optional[str], host: Optional[str], lease_ttl_ms: Optional[int]
) -> Optional[Tuple[bytes, bytes, Optional[int]]]:
    """The fleet options as the C ABI takes them, or None for an embedded engine; refuses
    ``store`` without ``host`` and the reverse, and a lease TTL without either."""
    if store is None and host is None:
        if lease_ttl_ms is not None:
            raise InvalidArgument(
                "invalid fleet_lease_ttl_ms: it is the lease TTL of a fleet engine; "
                "give store and host too"
            )
        return None
    if store is None or host is None:
        given, missing = ("store", "host") if host is None else ("host", "store")
        raise InvalidArgument(
            f"invalid fleet options: {given} without {missing}: a fleet engine needs both "
            "the fleet store and this host's name, an embedded one neither"
        )
    ttl = (
        None if lease_ttl_ms is None else _bounded(lease_ttl_ms, "fleet_lease_ttl_ms", 1, _U64_MAX)
    )
    return encode_text(store, "store"), encode_text(host, "host"), ttl


def _bounded(value: Optional[int], what: str, low: int, high: int) -> int:
    """``value`` checked to be an int in ``low..=high``; None becomes 0 (the C default)."""
    if value is None:
        return 0
    if not low <= _integer(value, what) <= high:
        raise InvalidArgument(f"invalid {what}: {value} is outside {low}..={high}")
    return value


def _rfc3339(value: Optional[TimeLike], what: str) -> Optional[str]:
    """``value`` as RFC 3339 text in UTC; a ``datetime`` without a time zone is refused rather
    than guessed at."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise InvalidArgument(f"invalid {what}: {value.isoformat()} has no time zone")
        return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return f"{value.isoformat()}T00:00:00Z"
    raise TypeError(f"{what} must be a datetime, date or str, not {type(value).__name__}")
