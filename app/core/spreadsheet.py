"""CSV cells a spreadsheet shows as text: the audit's CSV (app/web/admin/audit_pages.py) and the
users export (app/cli/users.py) write every cell through `safe_cell`."""

from __future__ import annotations

# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(text: str) -> str:
    """A cell a spreadsheet shows as text: one that would start a formula gets a quote first."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text
