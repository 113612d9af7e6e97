"""The audit page: newest first, filters that combine, keyset "load more", CSV / JSON Lines export.

Admins see their whole team's events; members only events where they are the actor or the
target user. Bad filters answer 400 with the parameter's name; every query is bounded.
"""
import json
from datetime import datetime, timezone

from flask import Blueprint, Response, g, render_template, request, stream_with_context
from flask_login import current_user, login_required
from jinja2_fragments.flask import render_block

from portal import audit_export, audit_query
from portal.audit import OUTCOMES, Action
from portal.extensions import db

bp = Blueprint("audit", __name__, url_prefix="/audit")
TEMPLATE = "audit/index.html"
ACTION_CHOICES = sorted({a.value.split(".")[0] + "." for a in Action} | {a.value for a in Action})


@bp.before_request
@login_required
def private():
    g.no_store = True  # audit pages name people and addresses: no shared caches


def scope():
    """Admins: the team. Members: events about themselves."""
    return audit_query.Scope(current_user.team_id, None if current_user.is_admin else current_user.id)


@bp.get("")
def index():
    """One page of events; an HTMX "load more" gets only the next rows, a filter only the results."""
    filters, prefix, before, limit = audit_query.parse(request.args)
    rows, next_before = audit_query.page(db.session, scope(), filters, before, limit)
    args = filters.args(prefix)
    if limit != audit_query.DEFAULT_LIMIT:
        args["limit"] = limit
    context = {"rows": rows, "next_before": next_before, "filters": filters, "prefix": prefix, "args": args,
               "export_args": filters.args(prefix), "outcomes": OUTCOMES, "action_choices": ACTION_CHOICES}
    if request.headers.get("HX-Request") and not request.headers.get("HX-History-Restore-Request"):
        return render_block(TEMPLATE, "rows" if before else "results", **context)
    return render_template(TEMPLATE, **context)


def _export(chunks, mimetype, extension):
    filters, _prefix, _before, _limit = audit_query.parse(request.args, allowed=audit_query.FILTERS)
    batches = audit_query.batches(db.session, scope(), filters, columns=audit_export.EXPORT_COLUMNS)
    name = f"audit-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.{extension}"
    return Response(stream_with_context(chunks(batches)), mimetype=mimetype,
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@bp.get("/export.csv")
def export_csv():
    """The current filter as CSV, streamed."""
    return _export(audit_export.csv_chunks, "text/csv", "csv")


@bp.get("/export.jsonl")
def export_jsonl():
    """The current filter as JSON Lines, streamed."""
    return _export(audit_export.jsonl_chunks, "application/jsonl", "jsonl")


@bp.app_template_filter("audit_details")
def audit_details(text):
    """Details JSON, indented for reading."""
    try:
        return json.dumps(json.loads(text or "{}"), indent=2, sort_keys=True)
    except ValueError:
        return text
