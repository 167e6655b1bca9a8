"""The reference for benchmarks.web_nodes: a minimal Flask route, served by gunicorn with the
same deploy/gunicorn.conf.py (workers, threads, access log) as the web nodes."""

from flask import Flask

app = Flask(__name__)


@app.get("/healthz")
def healthz() -> str:
    return "ok"


@app.post("/hello")
def hello() -> str:
    return "hello"
