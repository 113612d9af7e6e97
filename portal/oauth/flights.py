"""In-process single flight: concurrent callers for one key share one call's outcome.

The database row lock already makes a refresh single-flight across processes and hosts; this
keeps the threads of one process from queueing on that lock (and for pooled database
connections) one after another. The first caller for a key runs the call; the others that
arrive while it runs wait (bounded) and get its result or its error.
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

    def run(self, key, call, wait_seconds):
        """``call()`` once for all concurrent callers of ``key``; followers wait ``wait_seconds``."""
        with self._lock:
            flight = self._running.get(key)
            leader = flight is None
            if leader:
                flight = self._running[key] = _Flight()
        if not leader:
            if not flight.done.wait(wait_seconds):
                raise RefreshBusy()
            if flight.error is not None:
                raise flight.error
            return flight.result
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
