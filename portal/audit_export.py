"""Audit exports as CSV and JSON Lines, produced a keyset batch at a time.

The rows come from ``audit_query.batches(..., columns=EXPORT_COLUMNS)``: plain tuples with the
time as naive UTC, formatted here without building an object per event, so an export of a
million events runs at tens of thousands of events a second in flat memory.
"""
import csv
import io
import json
from json.encoder import encode_basestring_ascii as _escape

from sqlalchemy import DateTime, type_coerce

from portal.models import AuditEvent

_TABLE = AuditEvent.__table__
EXPORT_FIELDS = [column.name for column in _TABLE.columns]
EXPORT_COLUMNS = [type_coerce(column, DateTime()).label(column.name) if column.name == "created_at" else column
                  for column in _TABLE.columns]
_TIME = EXPORT_FIELDS.index("created_at")
_DETAILS = EXPORT_FIELDS.index("details")
# Free text a user or a client can influence; a spreadsheet runs a cell starting with one of
# these characters as a formula (CSV injection), so such a cell gets a leading quote.
_FREE_TEXT = [EXPORT_FIELDS.index(name) for name in
              ("actor_name", "target_type", "target_id", "target_label", "provider", "user_agent")]
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_FORMULA_CHARS = "".join(_FORMULA_START)


def defused(text):
    """``text`` made inert for spreadsheets: a leading formula character gets a quote."""
    return "'" + text if text and text.startswith(_FORMULA_START) else text


def _values(row):
    values = list(row)
    values[_TIME] = values[_TIME].isoformat() + "+00:00"
    return values


def csv_chunks(row_batches):
    """CSV text: a header, then one chunk per batch."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_FIELDS)
    yield buffer.getvalue()
    for rows in row_batches:
        buffer.seek(0)
        buffer.truncate()
        lines = []
        for row in rows:
            values = _values(row)
            for index in _FREE_TEXT:  # defused(), inlined: this loop runs millions of times
                value = values[index]
                if value and value[0] in _FORMULA_CHARS:
                    values[index] = "'" + value
            lines.append(values)
        writer.writerows(lines)
        yield buffer.getvalue()


def _details(text):
    # record() writes details as canonical JSON (and the chain covers it), so it is copied as is;
    # anything else (a row edited behind the portal's back) is passed as a JSON string.
    if text and text.startswith("{") and text.endswith("}"):
        return text
    return json.dumps(text)


_KEYS = [("{" if number == 0 else ",") + f'"{name}":' for number, name in enumerate(EXPORT_FIELDS) if name != "details"]


def jsonl_chunks(row_batches):
    """JSON Lines: one object per event (``details`` as an object), one chunk per batch.

    Each line is assembled from escaped values (twice as fast as a dict through json.dumps);
    ``_escape`` is the json module's C string encoder.
    """
    for rows in row_batches:
        lines = []
        for row in rows:
            values = _values(row)
            details = values.pop(_DETAILS)
            lines.append("".join([key + ("null" if value is None else str(value) if value.__class__ is int
                                         else _escape(value)) for key, value in zip(_KEYS, values)])
                         + ',"details":' + _details(details) + "}")
        yield "\n".join(lines) + "\n"
