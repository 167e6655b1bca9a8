"""The console's audit search (docs/admin.md, "Audit search"): a GET form, so that a search is
a link to share; results newest first, a page at a time (keyset: "Older" carries the last row's
cursor); "Download CSV" streams every match of the same search (app/core/audit_search.py)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import Response, current_app, render_template, request, stream_with_context, url_for

from app.core import audit, audit_search
from app.core.audit_search import AuditQuery, AuditSearchError
from app.core.context import Context
from app.core.spreadsheet import safe_cell
from app.extensions import core
from app.i18n import N_
from app.i18n.refusal import said
from app.models import AuditEvent
from app.web.admin.base import bp, console_origin, menu, requires

CSV_COLUMNS = ("at", "username", "door", "action", "result", "address", "device", "actor",
               "detail")
ARGS = (*audit_search.FIELDS, "since", "until", "size")

menu("admin.audit", N_("Audit search"), "audit.search")


def _zone() -> ZoneInfo:
    """The university's time zone: the console reads and shows the audit's times in it (the
    record itself, the CSV and the API stay UTC)."""
    return ZoneInfo(current_app.config["UM2FA"].timezone)


def _query(ctx: Context) -> AuditQuery:
    """The search typed into the form: a time without an offset is local time."""
    return audit_search.query_from(request.args, ctx.now(), zone=_zone())


def local_seconds(when: datetime) -> str:
    """"2026-12-01 16:04:00": a record's time in the university's time zone, to the second."""
    aware = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return aware.astimezone(_zone()).strftime("%Y-%m-%d %H:%M:%S")


@bp.get("/audit", endpoint="audit")
@requires("audit.search")
def audit_page():
    ctx = core.context()
    found, error = None, ""
    try:
        query = _query(ctx)
        size = audit_search.page_size(request.args.get("size", ""))
        after = audit_search.parse_cursor(request.args.get("after", ""))
        found = audit_search.page(ctx, query, size=size, after=after)
    except AuditSearchError as exc:
        error = said(exc)
    search = _search_args()
    older = (url_for("admin.audit", **search, after=str(found.next_cursor))
             if found is not None and found.next_cursor else "")
    page = render_template("admin/audit.html", found=found, error=error, search=search,
                           older=older, paged="after" in request.args,
                           csv_url=url_for("admin.audit_csv", **search),
                           local_seconds=local_seconds)
    return page, 400 if error else 200


@bp.get("/audit.csv")
@requires("audit.search")
def audit_csv():
    """Every match (newest first, at most audit_search.EXPORT_LIMIT rows), streamed; the
    export itself is audited with its search."""
    ctx = core.context()
    try:
        query = _query(ctx)
    except AuditSearchError as exc:
        page = render_template("admin/audit.html", found=None, error=said(exc),
                               search=_search_args(), older="", paged=False, csv_url="",
                               local_seconds=local_seconds)
        return page, 400
    audit.record(ctx, console_origin(), "audit.export", "ok", detail=describe(query))
    stamp = ctx.now().strftime("%Y%m%d-%H%M%S")
    response = Response(stream_with_context(_stream(ctx, query)), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="audit-{stamp}.csv"'
    return response


def _stream(ctx: Context, query: AuditQuery) -> Iterator[str]:
    """The CSV, read after the request's commit; its read-only transaction ends with it (a long
    export holds no transaction open past its last row)."""
    try:
        yield from csv_lines(audit_search.everything(ctx, query))
    finally:
        ctx.db.rollback()


def _search_args() -> dict[str, str]:
    """The search's own query parameters (not the page's cursor), to link it again."""
    return {name: value for name in ARGS if (value := request.args.get(name, "").strip())}


def describe(query: AuditQuery) -> str:
    """The search, for the audit record of an export."""
    parts = [f"{name}={value}" for name in audit_search.FIELDS
             if (value := getattr(query, name))]
    parts += [f"{name}={when.isoformat()}" for name in ("since", "until")
              if (when := getattr(query, name)) is not None]
    return "search: " + (" ".join(parts) or "everything")


def csv_lines(rows: Iterable[AuditEvent]) -> Iterator[str]:
    """The header, then one CSV line per record."""
    yield _line(CSV_COLUMNS)
    for row in rows:
        yield _line([row.at.isoformat(), row.username, row.door, row.action, row.result,
                     row.client_addr, row.device, row.actor, row.detail])


def _line(cells: Iterable[str]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow([safe_cell(str(cell)) for cell in cells])
    return out.getvalue()
