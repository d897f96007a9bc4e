"""Fair share through the API: two people signed in with gradio_client against the app on the emulator.

Alice runs a grid on FLUX.2 [flex]; Bob asks for one image while it runs. Bob's request goes out at the
next slot, not after the whole grid, and Alice's cells all arrive, in order, with no 429. The quota is
one request a second on both sides (the emulator enforces it), so the test takes seconds, not minutes.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from app_fixtures import running_app
from flux_ui.pacing import Pacer, Quota, pacing_margin

FLEX = "FLUX.2-flex"
QUOTA = Quota(1, 1.0)
SLOT_S = QUOTA.window_s + pacing_margin(QUOTA)
PASSWORD = f"fair-{secrets.token_hex(8)}"
LOGINS = {"FLUX_UI_USERS": f"alice:{PASSWORD}-a,bob:{PASSWORD}-b"}
CELLS = 6


def grant_times(pacer: Pacer) -> list[tuple[str, str, float]]:
    """(user, label, when) for each slot ``pacer`` grants, as it grants it."""
    grants: list[tuple[str, str, float]] = []
    granted = pacer.queue.granted

    def recorded(ticket: object) -> None:
        grants.append((ticket.user, ticket.label, time.monotonic()))  # type: ignore[attr-defined]
        granted(ticket)  # type: ignore[arg-type]

    pacer.queue.granted = recorded  # type: ignore[method-assign]
    return grants


def signed_in(url: str, user: str) -> Client:
    return Client(url, auth=(user, f"{PASSWORD}-{user[0]}"), verbose=False)


def test_bobs_one_image_goes_out_next_while_alices_grid_waits_its_turns(tmp_path: Path) -> None:
    with running_app(tmp_path / "outputs", env=LOGINS, quotas={FLEX: QUOTA}) as app:
        alice, bob = signed_in(app.url, "alice"), signed_in(app.url, "bob")
        grants = grant_times(app.runtime.client._pacers[FLEX])
        # Alice just used the deployment, so every cell of her grid joins the queue before the next slot.
        assert alice.predict(model=FLEX, prompt="alice, earlier", api_name="/generate")[2] == ""
        seeds = ", ".join(str(s) for s in range(1, CELLS + 1))
        grid = alice.submit(prompt="alice's grid", model=FLEX, x_axis="seed", x_values=seeds, api_name="/grid")
        deadline = time.monotonic() + 20
        while not any(label == "alice's grid" for _, label, _ in grants) and time.monotonic() < deadline:
            time.sleep(0.01)
        asked = time.monotonic()
        one = bob.submit(model=FLEX, prompt="bob's one", api_name="/generate")
        image, _, message, _ = one.result(timeout=30)
        _, _, cells, grid_message = grid.result(timeout=60)
        log = app.emulator.requests()
    assert image and message == "" and grid_message == ""
    assert [c["outcome"] for c in cells["cells"]] == ["ok"] * CELLS
    assert [r["status"] for r in log] == [200] * (CELLS + 2)  # the emulator enforced the quota: no 429
    order = [(r["prompt"], r["params"].get("seed")) for r in log][1:]
    alices = [seed for prompt, seed in order if prompt == "alice's grid"]
    assert alices == list(range(1, CELLS + 1))  # her cells in order
    bob_at = next(i for i, (prompt, _) in enumerate(order) if prompt == "bob's one")
    assert bob_at <= 2, order  # within one slot of Alice's next cell, not after all of them
    bob_granted = next(t for user, _, t in grants if user == "bob")
    assert bob_granted - asked <= 2 * SLOT_S, f"{bob_granted - asked:.2f} s"


def test_the_per_user_cap_refuses_at_once_and_the_other_user_still_generates(tmp_path: Path) -> None:
    env = {**LOGINS, "FLUX_UI_USER_MAX_QUEUED": "2"}
    with running_app(tmp_path / "outputs", env=env, quotas={FLEX: Quota(1, 1.5)}) as app:
        alice, bob = signed_in(app.url, "alice"), signed_in(app.url, "bob")
        board = app.runtime.client.board
        jobs = [alice.submit(model=FLEX, prompt=f"alice {i}", api_name="/generate") for i in range(3)]
        deadline = time.monotonic() + 20
        while board.waiting_of("alice", FLEX) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        start = time.monotonic()
        with pytest.raises(AppError) as refused:  # the gate's gr.Error: the caller sees it as the API's error
            alice.predict(model=FLEX, prompt="alice, one too many", api_name="/generate")
        took = time.monotonic() - start
        bobs = bob.submit(model=FLEX, prompt="bob's one", api_name="/generate")
        assert all(job.result(timeout=30)[2] == "" for job in jobs)
        assert bobs.result(timeout=30)[2] == ""
        prompts = [r["prompt"] for r in app.emulator.requests()]
    message = str(refused.value)
    assert "You already have 2 requests waiting for FLUX.2 [flex]'s quota" in message
    assert "FLUX_UI_USER_MAX_QUEUED=2" in message and "Nothing was sent, so nothing is billed." in message
    assert took < 2.0  # refused at once, not after a wait
    assert "alice, one too many" not in prompts and "bob's one" in prompts and len(prompts) == 4
