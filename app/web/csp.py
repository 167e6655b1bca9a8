"""The Content-Security-Policy of every page (app/web/__init__.py), in a module of its own so
that a blueprint that varies it (app/web/sso.py) need not import the package that registers
it."""

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
       "object-src 'none'")


def policy(connect: str = "") -> str:
    """The CSP, with `connect` (an origin: the push event stream's when it is not the page's,
    app/web/push_stream.py) allowed in connect-src too."""
    if not connect:
        return CSP
    return CSP.replace("connect-src 'self';", f"connect-src 'self' {connect};")
