"""The Content-Security-Policy of every page (app/web/__init__.py), in a module of its own so
that a blueprint that varies it (app/web/sso.py) need not import the package that registers
it."""

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; "
       "object-src 'none'")
