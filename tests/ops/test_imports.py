"""No import cycles among app/, radius/ and saml/ (scripts/check-imports), and the entry
points that depend on the import order."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "scripts" / "check-imports"


def check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CHECK), *args], capture_output=True, text=True,
                          timeout=120)


def test_no_import_cycles():
    result = check()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no new import cycles" in result.stdout


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_the_checker_finds_a_cycle_through_a_late_import(tmp_path):
    write(tmp_path, {
        "app/__init__.py": "",
        "app/a.py": "from app import b\n",
        "app/b.py": "def late():\n    from app.c import thing\n",
        "app/c.py": "import app.a\nthing = 1\n",
        "radius/__init__.py": "",
        "saml/__init__.py": "",
    })
    result = check("--root", str(tmp_path))
    assert result.returncode == 1
    assert "import cycle: app.a -> app.b -> app.c -> app.a" in result.stdout
    assert "app.b -> app.c (line 2, in a function)" in result.stdout


def test_the_checker_leaves_out_type_checking_imports(tmp_path):
    write(tmp_path, {
        "app/__init__.py": "",
        "app/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                    "    from app.b import B\n",
        "app/b.py": "from app.a import A\n",
        "radius/__init__.py": "",
        "saml/__init__.py": "from . import x\n",
        "saml/x.py": "from saml import y\n",
        "saml/y.py": "",
    })
    result = check("--root", str(tmp_path), "-v")
    assert result.returncode == 0, result.stdout
    assert "app.a -> app.b (line 3)" in result.stdout  # listed, not in the graph


@pytest.mark.parametrize("module", ["radius.cli", "saml.cli", "app.cli.common", "app.cli",
                                    "app.bootstrap", "radius.upstream"])
def test_a_module_can_be_imported_first(module):
    """A cycle through a package's __init__ (which the graph does not show) would fail here."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", f"import {module}"], env=env,
                            capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_um2fa_radius_does_not_build_the_flask_app(tmp_path):
    """`um2fa radius` gets its services from app/bootstrap.py: with create_app unusable, it
    still gets as far as checking the schema."""
    program = ("import sys, app\n"
               "def refuse(*a, **k): raise AssertionError('create_app called')\n"
               "app.create_app = refuse\n"
               "from app.cli import main\n"
               "sys.argv = ['um2fa', 'radius', '--port', '0']\n"
               "main()\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("UM2FA_")}
    env.update(PYTHONPATH=str(ROOT), UM2FA_INSTANCE_DIR=str(tmp_path / "instance"))
    result = subprocess.run([sys.executable, "-c", program], env=env, capture_output=True,
                            text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 1, result.stderr
    assert "the database schema is not current: run `um2fa db upgrade`" in result.stderr


def test_the_checker_keeps_doors_and_their_libraries_out_of_the_core(tmp_path):
    write(tmp_path, {
        "app/__init__.py": "",
        "app/core/__init__.py": "",
        "app/core/a.py": "import json\nfrom sqlalchemy import select\n",
        "app/core/b.py": "def late():\n    from flask import session\n",
        "app/core/c.py": "from radius import translate\n",
        "app/web.py": "from flask import Flask\nfrom app.core import a\n",
        "radius/__init__.py": "",
        "radius/translate.py": "import pyrad\n",
        "saml/__init__.py": "",
    })
    result = check("--root", str(tmp_path))
    assert result.returncode == 1
    assert "app.core.b imports flask (line 2)" in result.stdout
    assert "app.core.c imports radius" in result.stdout
    assert "app.core.a" not in result.stdout and "app.web imports" not in result.stdout
