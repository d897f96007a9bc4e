"""The fair queue shared through Redis, as the board and the UI see it: this process's tickets in the shared order.

The order itself is decided in Redis (:mod:`flux_ui.pacing_scripts`, for :class:`flux_ui.pacing_redis.SharedPacer`):
whose turn comes next is round-robin by user across every replica. What this process keeps is its own
people's tickets (with sticky sessions a person's page is on one replica) and the round as the last script
call returned it: every waiting user, in the order their turns come, with how many they have waiting. That
is enough for :class:`flux_ui.fair_queue.Board` to place each local ticket and estimate its start without
asking Redis: a user's ``j``-th ticket comes after everyone's first ``j`` and after the ``j+1``-th of the users
whose turns come before theirs. The per-user cap is counted in Redis, in the same step that joins a ticket.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flux_ui.fair_queue import Board, Ticket

if TYPE_CHECKING:
    from flux_ui.pacing_redis import SharedPacer


#: Whose an :class:`Elsewhere` ticket is, as the board sees it: nobody's (no user id holds a NUL), so a person's
#: list shows only the requests this process can show and cancel, placed among everyone's.
NOBODY = "\x00elsewhere"


@dataclass(frozen=True)
class Elsewhere:
    """A ticket waiting on another replica (or one of this process's that Redis has not placed yet)."""

    owner: str
    user: str = NOBODY
    id: str = ""
    label: str = ""
    joined_s: float = 0.0


class SharedQueue:
    """One deployment's queue on the client's :class:`Board`: the read side :class:`FairQueue` offers the UI
    (``order``, ``users``, ``waiting_of``, ``starts_in``, ``forecast``, ``clock``), from the shared round."""

    def __init__(self, pacer: SharedPacer, deployment: str, board: Board | None = None) -> None:
        self.pacer = pacer
        self.deployment = deployment
        self.board = board if board is not None else Board()
        self.board.queues.append(self)

    @property
    def waiting(self) -> list[Ticket]:
        """This process's tickets still waiting (the others' are in the round's counts)."""
        return [w.ticket for w in self.pacer._local.values()]

    def forecast(self, n: int) -> list[float]:
        return self.pacer.forecast(n)

    def clock(self) -> float:
        return self.pacer._clock()

    def round(self) -> list[tuple[str, int]]:
        """Every waiting user in the order their turns come, with their count: the last snapshot's, plus
        this process's tickets Redis has not seen yet (joining now, or while it does not answer)."""
        turns = dict(self.pacer._snap.round)
        for w in self.pacer._local.values():
            if w.mode != "w":
                turns[w.ticket.user] = turns.get(w.ticket.user, 0) + 1
        return list(turns.items())

    def order(self) -> list[Ticket | Elsewhere]:
        """Every waiting ticket in the order it would be granted if nobody else came (others' :class:`Elsewhere`)."""
        mine: dict[str, list[Ticket]] = {}
        for ticket in sorted(self.waiting, key=lambda t: (t.order, t.joined_s)):
            mine.setdefault(ticket.user, []).append(ticket)
        turns, out, depth = self.round(), [], 0
        while True:
            lap = [user for user, count in turns if count > depth]
            if not lap:
                return out
            for user in lap:
                own = mine.get(user, [])
                out.append(own[depth] if depth < len(own) else Elsewhere(user))
            depth += 1

    def place(self, user: str, index: int) -> int:
        """Where ``user``'s ``index``-th waiting ticket (0: their first) stands in the round, 0-based."""
        turns = self.round()
        at = next((i for i, (u, _) in enumerate(turns) if u == user), len(turns))
        return sum(min(count, index) for u, count in turns if u != user) + index + sum(
            1 for u, count in turns[:at] if count > index)

    def starts_in(self, user: str) -> float:
        """When one more request from ``user`` would be sent, from now (a user new to the round counts as last)."""
        place = self.place(user, self.waiting_of(user))
        return self.forecast(place + 1)[place]

    def starts_at(self, ticket: Ticket) -> float:
        """When this process's waiting ``ticket`` is expected to be sent, from now."""
        own = sorted((t for t in self.waiting if t.user == ticket.user), key=lambda t: (t.order, t.joined_s))
        index = own.index(ticket) if ticket in own else len(own)
        place = self.place(ticket.user, index)
        return self.forecast(place + 1)[place]

    def waiting_of(self, user: str) -> int:
        return dict(self.round()).get(user, 0)

    def users(self) -> set[str]:
        return {user for user, _ in self.round()}

    def count(self) -> int:
        return sum(count for _, count in self.round())

    def head(self) -> Ticket | None:
        first = next(iter(self.order()), None)
        return first if isinstance(first, Ticket) else None
