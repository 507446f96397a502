"""The hot-path handle on one instance's pool license (rule R23 in docs/rules.md)."""

from __future__ import annotations

from . import _bindings, _error
from ._handle import EngineHandle


class Instance(EngineHandle):
    """The license gate of one instance, from :meth:`Engine.instance`: a backup job calls
    :meth:`check` before each run.

    The check is lock-free in the library, keeps the GIL for its few nanoseconds, and sees an
    assignment, unassignment or expiry made by any process at once.

    >>> with engine.instance("web-01") as instance:     # doctest: +SKIP
    ...     instance.check()        # raises tollgate.NoActiveKey or tollgate.Expired if refused
    """

    __slots__ = ()

    KIND = "instance"

    def _free(self, handle: int) -> None:
        _bindings.tg_instance_close(handle)

    def check(self) -> None:
        """Returns when a valid license covers the instance now; otherwise raises
        :class:`NoActiveKey` (no license assigned) or :class:`Expired` (its license expired)."""
        _error.check(_bindings.tg_instance_check(self._live()))
