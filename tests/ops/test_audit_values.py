"""Every door and outcome the code writes into the audit is listed in app/core/audit.py (DOORS,
RESULTS): the console's timeline filters offer those and refuse others, so a value missing there
could not be filtered on. Read from the source (ast), so a new door or outcome fails here."""

from __future__ import annotations

import ast
from pathlib import Path

from app.core import audit
from app.core.push.answers import FINAL
from app.core.radius_auth.decision import Outcome

ROOT = Path(__file__).resolve().parents[2]


def _modules() -> list[tuple[Path, ast.Module]]:
    files = [p for folder in ("app", "radius", "saml") for p in (ROOT / folder).rglob("*.py")]
    return [(p, ast.parse(p.read_text(), str(p))) for p in sorted(files)]


def _strings(node: ast.AST | None) -> list[str]:
    """The string constants an expression can be (a literal, or either side of `a if c else b`)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.IfExp):
        return _strings(node.body) + _strings(node.orelse)
    return []


def _audit_call(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("record", "record_many", "log_only")
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "audit")


def _result_arg(call: ast.Call) -> ast.AST | None:
    position = 2 if call.func.attr == "log_only" else 3  # (ctx,) origin, action, result
    found = call.args[position] if len(call.args) > position else None
    for keyword in call.keywords:
        if keyword.arg == "result":
            found = keyword.value
    return found


def test_every_result_written_is_listed():
    written = set()
    for _path, tree in _modules():
        for node in ast.walk(tree):
            if _audit_call(node):
                written.update(_strings(_result_arg(node)))
    # the outcomes written from a variable: push answers, RADIUS decisions, mail delivery
    written |= set(FINAL.values()) | {"mismatch", "ok", "fail"}
    written |= {o.value for o in Outcome if o is not Outcome.PENDING}
    assert written, "no audit.record call found"
    assert written <= set(audit.RESULTS), sorted(written - set(audit.RESULTS))


def test_every_door_is_listed():
    doors = set()
    for _path, tree in _modules():
        for node in ast.walk(tree):
            door_constant = isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "DOOR" for t in node.targets)
            if door_constant or (isinstance(node, ast.keyword) and node.arg == "door"):
                doors.update(_strings(node.value))
            elif isinstance(node, ast.FunctionDef):  # def origin(door: str = "portal")
                args = node.args.args[len(node.args.args) - len(node.args.defaults):]
                for arg, default in zip(args, node.args.defaults, strict=True):
                    if arg.arg == "door":
                        doors.update(_strings(default))
    assert {"portal", "cli", "scheduler", "admin", "api"} <= doors  # the walk finds them
    assert doors <= set(audit.DOORS), sorted(doors - set(audit.DOORS))
