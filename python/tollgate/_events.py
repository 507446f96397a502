"""Event subscribers: the one C callback an engine gets (``tg_engine_on_event``), shared by every
Python callback subscribed to it.

The library calls the callback on the engine's event callback thread, never on a thread that
is metering; ctypes takes the GIL for each call. Every subscriber gets each event as the same
``dict`` that :meth:`Engine.events` lists.
"""

from __future__ import annotations

import atexit
import ctypes
import json
import logging
import queue
import threading
import weakref
from typing import Any, Callable, Dict, Optional, Tuple, cast

from . import _bindings
from ._error import check

#: A subscriber: called with each event, as :meth:`Engine.events` lists it.
Subscriber = Callable[[Dict[str, Any]], None]

_log = logging.getLogger("tollgate")


class Listeners:
    """The subscribers of one engine and the C callback that feeds them."""

    __slots__ = ("_lock", "_subscribers", "_callback", "_installed", "__weakref__")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # Replaced, never changed in place: the callback thread reads it without the lock.
        self._subscribers: Tuple[Subscriber, ...] = ()
        # Made once and kept for this object's life, installed or not: a subscriber that
        # unsubscribes or closes the engine from inside a call must not free the code that call
        # returns through.
        self._callback: Optional[Any] = None
        self._installed = False

    def add(self, engine: int, subscriber: Subscriber) -> None:
        """Adds ``subscriber``; the first one installs the C callback on ``engine``."""
        with self._lock:
            if not self._installed:
                if self._callback is None:
                    self._callback = _bindings.EventCallback(self._deliver)
                address = ctypes.cast(self._callback, ctypes.c_void_p)
                check(_bindings.tg_engine_on_event(engine, address, None))
                self._installed = True
                _engines_with_callbacks[self] = engine
            self._subscribers = self._subscribers + (subscriber,)

    def remove(self, engine: Optional[int], subscriber: Subscriber) -> None:
        """Removes ``subscriber`` (once); the last one removes the C callback from ``engine``
        (``None``: the engine is closed, which removed it)."""
        with self._lock:
            subscribers = list(self._subscribers)
            if subscriber not in subscribers:
                return
            subscribers.remove(subscriber)
            self._subscribers = tuple(subscribers)
            if not subscribers and self._installed:
                if engine is not None:
                    check(_bindings.tg_engine_on_event(engine, None, None))
                self._forget()

    def closed(self) -> None:
        """The engine was closed, which stopped its callback thread."""
        with self._lock:
            self._subscribers = ()
            self._forget()

    def _forget(self) -> None:
        """The library calls the callback no more (bar a call in progress that removed it)."""
        self._installed = False
        _engines_with_callbacks.pop(self, None)

    def _deliver(self, event: Any, _user_data: Optional[int]) -> None:
        try:
            decoded = json.loads(event.contents.json.decode("utf-8"))
        except Exception:
            _log.exception("tollgate: an event could not be decoded")
            return
        for subscriber in self._subscribers:
            try:
                subscriber(decoded)
            except Exception:
                _log.exception("tollgate: event subscriber %r raised", subscriber)


#: Engines whose C callback is installed, so that it is removed before the interpreter exits:
#: a callback must not run while Python is finalising.
_engines_with_callbacks: "weakref.WeakKeyDictionary[Listeners, int]" = weakref.WeakKeyDictionary()


@atexit.register
def _remove_callbacks_at_exit() -> None:
    for listeners, engine in list(_engines_with_callbacks.items()):
        _bindings.tg_engine_on_event(engine, None, None)
        listeners._forget()


class _Closed:
    """Ends an :class:`EventStream`'s iteration."""


_CLOSED = _Closed()


class EventStream:
    """The events of an engine as an iterator, from :meth:`Engine.events_stream`::

        with engine.events_stream() as events:
            for event in events:            # blocks until the next event
                if event["kind"] == "switched":
                    break

    Events wait in the stream until read; once ``backlog`` of them wait, newer ones are
    dropped and counted in :attr:`dropped` (they stay in the audit log). Iteration ends when
    the stream or its engine is closed.
    """

    __slots__ = ("_queue", "_backlog", "_unsubscribe", "dropped", "__weakref__")

    def __init__(self, subscribe: Callable[[Subscriber], Callable[[], None]], backlog: int) -> None:
        """Subscribes through ``subscribe``; :meth:`Engine.events_stream` is the usual way."""
        self._queue: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        self._backlog = backlog
        #: Events dropped because ``backlog`` events were waiting.
        self.dropped = 0
        self._unsubscribe: Optional[Callable[[], None]] = subscribe(self._put)

    def _put(self, event: Dict[str, Any]) -> None:
        if self._queue.qsize() >= self._backlog:
            self.dropped += 1
        else:
            self._queue.put(event)

    def get(self, timeout: Optional[float] = None) -> Optional[Dict[str, Any]]:
        """The next event, waiting at most ``timeout`` seconds (``None``: until one comes);
        ``None`` when none came in time or the stream is closed."""
        try:
            event = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if event is _CLOSED:
            self._queue.put(_CLOSED)  # every later call ends too
            return None
        return cast(Dict[str, Any], event)

    def __iter__(self) -> "EventStream":
        return self

    def __next__(self) -> Dict[str, Any]:
        event = self.get()
        if event is None:
            raise StopIteration
        return event

    def close(self) -> None:
        """Unsubscribes; iteration ends after the events already waiting. Calling it again
        does nothing."""
        unsubscribe, self._unsubscribe = self._unsubscribe, None
        if unsubscribe is not None:
            unsubscribe()
            self._queue.put(_CLOSED)

    def __enter__(self) -> "EventStream":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
