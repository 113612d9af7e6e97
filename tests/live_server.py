"""Serve a WSGI app on 127.0.0.1 from a background thread, for browser tests.

The socket is bound when the server is built, before the app is known, so the app can be
created with its final base URL (the OAuth redirect URI names the port).
"""
import threading

from werkzeug.serving import WSGIRequestHandler, make_server

HOST = "127.0.0.1"


class QuietHandler(WSGIRequestHandler):
    """No access log on stderr; errors still go to the ``werkzeug`` logger."""

    def log_request(self, code="-", size="-"):
        pass


class LiveServer:
    """``start()`` binds a free port; ``serve(app)`` answers with ``app``; ``stop()`` shuts down.

    Requests that arrive before ``serve`` get a 503. ``stop`` is idempotent and joins the thread.
    """

    def __init__(self):
        self.app = None
        self._server = None
        self._thread = None
        self.url = None

    def start(self):
        self._server = make_server(HOST, 0, self._dispatch, threaded=True, request_handler=QuietHandler)
        self.url = f"http://{HOST}:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"live-server:{self._server.server_port}", daemon=True)
        self._thread.start()
        return self.url

    def serve(self, app):
        self.app = app
        return self

    def stop(self):
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        thread.join(10)
        server.server_close()

    def _dispatch(self, environ, start_response):
        if self.app is None:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"not serving yet"]
        return self.app(environ, start_response)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
