"""A small in-process cache of rendered fragments, keyed by everything they show.

The Settings status fragment is polled every 15 s by every open Settings page and mostly comes
out the same; rendering its rows was the larger part of its cost. The key is the data the
fragment is rendered from (frozen rows, the CSRF token, the user), so a hit returns exactly the
HTML a render would. One cache per app (``app.extensions``), least recently used out first.
"""
import threading
from collections import OrderedDict


class RenderCache:
    def __init__(self, size=128):
        self.size = size
        self._items = OrderedDict()
        self._lock = threading.Lock()

    def get_or_render(self, key, render):
        """The HTML cached under ``key``, or ``render()``'s, which is then cached."""
        with self._lock:
            html = self._items.get(key)
            if html is not None:
                self._items.move_to_end(key)
                return html
        html = render()
        with self._lock:
            self._items[key] = html
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return html
