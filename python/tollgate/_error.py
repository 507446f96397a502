"""Status codes of the C ABI (:class:`Status`, generated in ``_bindings``) and the exception
classes they become.

Every non-zero ``tg_status`` is raised as the subclass of :class:`TollgateError` named after it
in CamelCase, carrying the message the library recorded for the failing call
(``tg_last_error_message``). The table at the bottom of this module is the only place that
ties a status to a class.
"""

from __future__ import annotations

from typing import ClassVar, Dict, Optional, Type, Union

from . import _bindings
from ._bindings import Status


class TollgateError(Exception):
    """A Tollgate call failed. ``status`` says which rule or condition, ``message`` says why.

    Catch a subclass (``Exhausted``, ``TypeMismatch``, …) to handle one condition; this base
    class catches them all. A status this package does not know yet is raised as this class.
    """

    #: The status every instance of this class carries; None on the base class.
    STATUS: ClassVar[Optional[Status]] = None

    def __init__(self, message: str, status: Union[Status, int, None] = None) -> None:
        """Creates the error; ``status`` defaults to the class's :attr:`STATUS`."""
        if status is None:
            status = self.STATUS if self.STATUS is not None else -1
        try:
            status = Status(status)
        except ValueError:
            pass
        super().__init__(message, status)
        self.message: str = message
        self.status: Union[Status, int] = status

    def __str__(self) -> str:
        return self.message


class ClosedError(ValueError):
    """An :class:`~tollgate.Engine` or one of its handles (:class:`~tollgate.Project`,
    :class:`~tollgate.Seats`, :class:`~tollgate.Instance`) was used after ``close()``.

    A programming error rather than a licensing outcome, so it derives from ``ValueError`` (as
    Python's own files do), not from :class:`TollgateError`.
    """


class InvalidArgument(TollgateError, ValueError):
    """An argument is malformed: bad name, NUL byte, bad key JSON, amount out of range."""

    STATUS = Status.INVALID_ARGUMENT


class NotFound(TollgateError):
    """No such project, reserve key, instance or group, or an instance without a license to
    unassign."""

    STATUS = Status.NOT_FOUND


class AlreadyExists(TollgateError):
    """A project of that name already exists."""

    STATUS = Status.ALREADY_EXISTS


class Exhausted(TollgateError):
    """The request needs more than the keys have left (bytes, or free seats); nothing was
    charged or taken."""

    STATUS = Status.EXHAUSTED


class Expired(TollgateError):
    """Every key that could cover the request has expired, or the key being added has."""

    STATUS = Status.EXPIRED


class NoActiveKey(TollgateError):
    """The slot pair has no Active key."""

    STATUS = Status.NO_ACTIVE_KEY


class ReserveOccupied(TollgateError):
    """The pair already holds a Reserved key: one additional key per pair."""

    STATUS = Status.RESERVE_OCCUPIED


class TypeMismatch(TollgateError):
    """The reserve's delivery (online/offline) differs from the Active key's."""

    STATUS = Status.TYPE_MISMATCH


class EditionMismatch(TollgateError):
    """The reserve's edition differs from the Active key's."""

    STATUS = Status.EDITION_MISMATCH


class SchemeMismatch(TollgateError):
    """The reserve limits something else than the Active key (scheme or license class)."""

    STATUS = Status.SCHEME_MISMATCH


class Subscription(TollgateError):
    """A subscription key takes no reserve key."""

    STATUS = Status.SUBSCRIPTION


class DuplicateKey(TollgateError):
    """The key id is already used in this state directory."""

    STATUS = Status.DUPLICATE_KEY


class CorruptState(TollgateError):
    """The state directory is damaged, truncated or of another format; it was left untouched."""

    STATUS = Status.CORRUPT_STATE


class Io(TollgateError):
    """An operating-system or embedded-store error."""

    STATUS = Status.IO


class Capacity(TollgateError):
    """The state's project table is full (its capacity is fixed when it is created)."""

    STATUS = Status.CAPACITY


class Panic(TollgateError):
    """The library caught an internal panic at its boundary; the message says where."""

    STATUS = Status.PANIC


class Unsupported(TollgateError):
    """The operation is not available for the key's license class."""

    STATUS = Status.UNSUPPORTED


class NotHeld(TollgateError):
    """A seat release gave back more seats than the handle holds; nothing was released."""

    STATUS = Status.NOT_HELD


class PaymentModeMismatch(TollgateError):
    """A purchase chose another payment mode than the first purchase fixed."""

    STATUS = Status.PAYMENT_MODE_MISMATCH


class NoLicenseAvailable(TollgateError):
    """No valid, unassigned license of a fitting type is in the instance's company pool or the
    global pool."""

    STATUS = Status.NO_LICENSE_AVAILABLE


class LicenseTypeUnfit(TollgateError):
    """The license type asked for cannot license the instance's OS (macOS and Linux need a
    desktop or server license)."""

    STATUS = Status.LICENSE_TYPE_UNFIT


class AlreadyAssigned(TollgateError):
    """The instance already holds a valid license."""

    STATUS = Status.ALREADY_ASSIGNED


class BadSignature(TollgateError):
    """The state trusts vendor keys and the key lacks a valid signature: an unsigned offline
    key, a license altered after signing, one signed by a key the state does not trust, or a
    malformed license file (the message says which). Nothing changed."""

    STATUS = Status.BAD_SIGNATURE


class Tampered(TollgateError):
    """The state directory was restored from an older copy, its hot file from an older one, or
    its ratchets were edited; it is refused until an operator accepts it (``tollgate state
    accept-rollback``). Nothing changed."""

    STATUS = Status.TAMPERED


class RenewalFailed(TollgateError):
    """The automatic renewal of an online key failed: the activation service was unreachable,
    slow, refused or answered garbage, or its license was refused. Nothing changed; the message
    says that manual renewal is needed."""

    STATUS = Status.RENEWAL_FAILED


class ActivationFailed(TollgateError):
    """An activation code could not be activated: the activation service was unreachable, slow,
    refused the code (unknown, no activations left) or answered with something that is not a
    license for it. Nothing changed; the message gives the service's reason."""

    STATUS = Status.ACTIVATION_FAILED


class Busy(TollgateError):
    """Another process, or another thread, held the state's admin lock for longer than the
    engine's ``admin_lock_timeout_ms``. Nothing changed; try again later."""

    STATUS = Status.BUSY


class InstallationMismatch(TollgateError):
    """The state was made by another installation than the one it was opened with (the
    engine's ``installation_dir``, else ``TOLLGATE_INSTALLATION``); the message names both
    directories. Open it with the installation directory that made it. Nothing changed."""

    STATUS = Status.INSTALLATION_MISMATCH


class Unavailable(TollgateError):
    """Fleet mode: this host's leases of the key are spent and the fleet store could not be
    reached (or has not answered yet) to lease more. Nothing was granted; this is not a license
    decision, so try again. Never an unmetered grant."""

    STATUS = Status.UNAVAILABLE


#: The one table from status to exception class.
ERRORS: Dict[int, Type[TollgateError]] = {
    int(cls.STATUS): cls
    for cls in (
        InvalidArgument,
        NotFound,
        AlreadyExists,
        Exhausted,
        Expired,
        NoActiveKey,
        ReserveOccupied,
        TypeMismatch,
        EditionMismatch,
        SchemeMismatch,
        Subscription,
        DuplicateKey,
        CorruptState,
        Io,
        Capacity,
        Panic,
        Unsupported,
        NotHeld,
        PaymentModeMismatch,
        NoLicenseAvailable,
        LicenseTypeUnfit,
        AlreadyAssigned,
        BadSignature,
        Tampered,
        RenewalFailed,
        ActivationFailed,
        Busy,
        InstallationMismatch,
        Unavailable,
    )
    if cls.STATUS is not None
}


def status_name(status: int) -> str:
    """The library's name for a status code, e.g. ``TG_EXHAUSTED``."""
    name = _bindings.tg_status_name(status)
    return name.decode("utf-8", "replace") if name else f"status {status}"


def error_for(status: int) -> TollgateError:
    """The exception for a non-zero status just returned on this thread, with its message.

    Must be called on the thread that made the failing call, before any other library call:
    the message is the library's thread-local last error.
    """
    raw = _bindings.tg_last_error_message()
    message = raw.decode("utf-8", "replace") if raw else status_name(status)
    cls = ERRORS.get(status, TollgateError)
    return cls(message, status)


def check(status: int) -> None:
    """Raises the exception for ``status`` unless it is ``TG_OK``."""
    if status:
        raise error_for(status)
