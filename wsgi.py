"""The WSGI entry point for gunicorn (deploy/gunicorn.conf.py): `gunicorn wsgi:app`."""

from app import create_app
from app.config import ConfigError
from app.logging_setup import configure


def _configuration_error(exc: ConfigError) -> BaseException:
    """A bad configuration (keys missing on a node of a shared database, …) as one clear line:
    gunicorn prints an AppImportError's message without a traceback and stops at once."""
    message = f"Error: configuration: {exc}"
    try:
        from gunicorn.errors import AppImportError
    except ImportError:  # another WSGI server
        return SystemExit(message)
    return AppImportError(message)


try:
    app = create_app()
except ConfigError as exc:
    raise _configuration_error(exc) from None
configure(app.config["UM2FA"].log_format)
