"""Settings about the people sharing an instance: who its owners are, and how many requests one person
may have waiting for one deployment's quota at once.

Both are off for a single user: without logins the one person on this machine is the owner
(:mod:`flux_ui.identity`), and nobody's queue is capped. ``FLUX_UI_OWNERS`` names logins, so it needs
``FLUX_UI_USERS``, and a name it lists that is not a login is reported (a typo would leave a team
without an owner).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

#: The most ``FLUX_UI_USER_MAX_QUEUED`` may be: a deployment never has more requests in progress at once
#: (``ui/quota_gate.MAX_IN_PROGRESS``), so a larger cap would cap nothing.
MAX_QUEUED_LIMIT = 64

VARIABLES: tuple[tuple[str, str, str, str], ...] = (
    ("FLUX_UI_OWNERS", "(none; without logins: this machine's own browser)", "alice",
     "Login names from FLUX_UI_USERS, comma-separated, who see every user's usage and the audit trail."),
    ("FLUX_UI_USER_MAX_QUEUED", "(no cap)", "8",
     "How many requests one user may have waiting for one deployment's quota at once; one more is refused at "
     "once, before anything is sent (a grid sends its cells in waves of at most this many)."),
)


@dataclass(frozen=True)
class UserSettings:
    """``owners``: login names; ``max_queued``: requests one user may have waiting for one deployment at once
    (None: no cap)."""

    owners: frozenset[str] = frozenset()
    max_queued: int | None = None


def load_users(env: Mapping[str, str], problems: list[str], logins: Collection[str]) -> UserSettings:
    """The two settings from ``env``; what is wrong with them goes into ``problems``."""
    owners = frozenset(name.strip() for name in env.get("FLUX_UI_OWNERS", "").split(",") if name.strip())
    if owners and not logins:
        problems.append("FLUX_UI_OWNERS names logins, but FLUX_UI_USERS sets none: set FLUX_UI_USERS too, for example "
                        "FLUX_UI_USERS=alice:long-passphrase-1 with FLUX_UI_OWNERS=alice (without logins, this "
                        "machine's own browser is the owner)")
    elif unknown := sorted(owners - set(logins)):
        problems.append(f"FLUX_UI_OWNERS names {', '.join(map(repr, unknown))}, not a login in FLUX_UI_USERS "
                        f"({', '.join(sorted(logins))}); for example FLUX_UI_OWNERS={sorted(logins)[0]}")
    return UserSettings(owners=owners, max_queued=_max_queued(env.get("FLUX_UI_USER_MAX_QUEUED", ""), problems))


def _max_queued(text: str, problems: list[str]) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or not 1 <= int(text) <= MAX_QUEUED_LIMIT:
        problems.append(f"FLUX_UI_USER_MAX_QUEUED={text!r} is not a whole number from 1 to {MAX_QUEUED_LIMIT}; "
                        "for example FLUX_UI_USER_MAX_QUEUED=8 (leave it out for no cap)")
        return None
    return int(text)
