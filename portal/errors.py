"""Typed errors and the one handler that shows them safely.

Services raise ``PortalError`` subclasses with a message fit for the user and, where there is
one, the next step. The handler answers JSON for API callers, a fragment for HTMX, or a page;
details go to the log, never a traceback to the user.
"""
import logging

from flask import g, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

log = logging.getLogger("portal.errors")


class PortalError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message, next_step=None, provider=None):
        super().__init__(message)
        self.message = message
        self.next_step = next_step
        self.provider = provider


class BadInput(PortalError):
    status = 400
    code = "bad_input"


class NotFound(PortalError):
    """Also used for objects that exist but belong to someone else, so ids do not leak."""

    status = 404
    code = "not_found"


class Forbidden(PortalError):
    status = 403
    code = "forbidden"


class Conflict(PortalError):
    status = 409
    code = "conflict"


def wants_json():
    if request.path.startswith("/api/") or request.is_json:
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json" and request.accept_mimetypes[best] > request.accept_mimetypes["text/html"]


def error_response(status, code, message, next_step=None):
    body = {"error": code, "message": message}
    if next_step:
        body["next_step"] = next_step
    if wants_json():
        return jsonify(body), status
    if request.headers.get("HX-Request"):
        html = render_template("fragments/error.html", status=status, message=message, next_step=next_step)
        return html, status, {"HX-Retarget": "#flash", "HX-Reswap": "innerHTML"}
    return render_template("error.html", status=status, message=message, next_step=next_step), status


def handle_portal_error(error):
    return error_response(error.status, error.code, error.message, error.next_step)


def handle_csrf_error(error):
    return error_response(400, "csrf_failed", "The form was out of date or missing its security token.",
                          "Reload the page and try again.")


def handle_http_error(error):
    messages = {
        404: "That page or object does not exist.",
        405: "That action is not allowed here.",
        413: "The request was too large.",
    }
    message = messages.get(error.code) or error.description or error.name
    return error_response(error.code, error.name.lower().replace(" ", "_"), message)


def handle_unexpected(error):
    log.exception("unhandled error (request %s)", g.get("request_id"))
    from portal.extensions import db

    db.session.rollback()  # a failed flush leaves the session unusable; the error page must still render
    return error_response(500, "internal_error", "Something went wrong on our side.",
                          f"Try again; if it persists, give an admin the request id {g.get('request_id', '')}.")


def init_app(app):
    app.register_error_handler(PortalError, handle_portal_error)
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected)
