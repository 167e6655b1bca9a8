"""Input no door takes, refused in one place instead of in every lookup: a NUL character,
anywhere in the path, the query, a form or a JSON body (nothing we read may hold one, and
PostgreSQL refuses it in a text parameter: a 500 where a 400 belongs), and an id in a URL
beyond the database's integer (an `<int:…>` that no row can have is a 404, not an overflow)."""

from __future__ import annotations

from flask import abort, request
from werkzeug.routing import IntegerConverter

from app.i18n import N_

NUL = "\x00"
# a msgid: the error page translates it, the JSON answers keep it in English
MESSAGE = N_("The request holds a NUL character, which nothing here accepts.")


def _in_values(values) -> bool:
    return any(NUL in value for _, value in values.items(multi=True))


def refuse_nul() -> None:
    """before_request hook for the whole app."""
    if NUL in request.path or _in_values(request.args):
        abort(400, MESSAGE)
    if request.method in ("POST", "PUT", "PATCH", "DELETE"):
        if request.is_json:
            # JSON writes a NUL as \u0000 (a raw one is not JSON at all)
            if b"\\u0000" in request.get_data(cache=True).lower():
                abort(400, MESSAGE)
        elif _in_values(request.form):
            abort(400, MESSAGE)


ID_MAX = 2**31 - 1  # the database's INTEGER


class BoundedInt(IntegerConverter):
    """`<int:…>` in every route: 0 to ID_MAX unless the route says otherwise."""

    def __init__(self, url_map, *args, **kwargs) -> None:
        kwargs.setdefault("max", ID_MAX)
        super().__init__(url_map, *args, **kwargs)
