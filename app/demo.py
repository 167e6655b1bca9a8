"""Demo users for `um2fa demo seed` (the README's first command)."""

from __future__ import annotations

from app.core import admins, users
from app.core.context import Context, Origin

DEMO_USERS = [
    users.NewUser("alice", "alice-password", "2001-02-03", "123A", "student",
                  "Alice Chan", "alice@example.edu", "Alice", "Chan"),
    users.NewUser("bob", "bob-password", "1985-06-07", "B456", "staff",
                  "Bob Wong", "bob@example.edu", "Bob", "Wong"),
]


DEMO_ADMIN = "bob"


def seed(ctx: Context, origin: Origin) -> list[str]:
    lines = []
    for new in DEMO_USERS:
        if users.find(ctx, new.username) is None:
            users.add(ctx, origin, users.NewUser(**vars(new)))
        lines.append(f"demo user {new.username}: password {new.password}, "
                     f"date of birth {new.dob}, ID last 4 {new.id_last4}, role {new.role}")
    if DEMO_ADMIN not in {a.username for a in admins.all_admins(ctx)}:
        admins.add(ctx, origin, DEMO_ADMIN, admins.ADMIN)
    lines.append(f"demo administrator {DEMO_ADMIN}: the help-desk console at /admin/ "
                 "(after adding a device)")
    return lines
