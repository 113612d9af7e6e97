"""In-process single flight: concurrent callers for one key share one call's outcome.

The database row lock already makes a refresh single-flight across processes and hosts; this
keeps the threads of one process from queueing on that lock one after another. The first
caller for a key runs the call; the others wait (bounded) and get its result or its error.
One ``Flights`` lives in ``app.extensions["portal.oauth.flights"]``.
"""
import threading

from portal.oauth.errors import RefreshBusy


class _Flight:
    def __init__(self):
        self.done = threading.Event()
        self.result = None
        self.error = None


class Flights:
    def __init__(self):
        self._lock = threading.Lock()
        self._running = {}

    def running(self, key):
        """The flight in progress for ``key``, or None."""
        with self._lock:
            return self._running.get(key)

    @staticmethod
    def join(flight, wait_seconds):
        """Wait for ``flight`` and share its outcome."""
        if not flight.done.wait(wait_seconds):
            raise RefreshBusy()
        if flight.error is not None:
            raise flight.error
        return flight.result

    def run(self, key, call, wait_seconds):
        """``call()`` once for all concurrent callers of ``key``; followers wait ``wait_seconds``."""
        with self._lock:
            flight = self._running.get(key)
            leader = flight is None
            if leader:
                flight = self._running[key] = _Flight()
        if not leader:
            return self.join(flight, wait_seconds)
        try:
            flight.result = call()
        except Exception as error:
            flight.error = error
            raise
        finally:
            with self._lock:
                del self._running[key]
            flight.done.set()
        return flight.result
