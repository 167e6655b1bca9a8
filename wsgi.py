"""The WSGI entry point for gunicorn (deploy/gunicorn.conf.py): `gunicorn wsgi:app`."""

from app import create_app
from app.logging_setup import configure

app = create_app()
configure(app.config["UM2FA"].log_format)
