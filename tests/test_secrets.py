"""Canary: a key configured for the client never appears in logs, errors, reprs or results."""

from __future__ import annotations

import dataclasses
import logging
import pickle

import httpx
import pytest

from conftest import FakeService, bfl_ok, foundry_env
from flux_ui.client import FoundryClient, GenerationRequest
from flux_ui.errors import FluxError
from flux_ui.secrets import RedactingFilter, Secret, redact
from flux_ui.settings import load_settings

CANARY = "canary-7f3e9a1c5b2d4e6f8a0b"


def test_secret_hides_itself() -> None:
    s = Secret(CANARY)
    assert CANARY not in repr(s) and CANARY not in str(s) and CANARY not in f"{s}" and CANARY not in f"{s!r}"
    assert s.reveal() == CANARY
    with pytest.raises(TypeError):
        pickle.dumps(s)


def test_redact_scrubs_remembered_values() -> None:
    Secret(CANARY)
    assert redact(f"key={CANARY}; again {CANARY}") == "key=***; again ***"
    assert redact("short") == "short"


def test_log_filter_scrubs_messages_arguments_and_tracebacks() -> None:
    Secret(CANARY)
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "sent %s", (CANARY,), None)
    try:
        raise RuntimeError(f"boom {CANARY}")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    assert RedactingFilter().filter(record)
    text = logging.Formatter().format(record)
    assert CANARY not in text and "sent ***" in text and "boom ***" in text


def every_string(obj: object, seen: set[int] | None = None) -> str:
    """repr of an object and, for dataclasses, of every field, recursively."""
    seen = seen or set()
    if id(obj) in seen:
        return ""
    seen.add(id(obj))
    parts = [repr(obj)]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if f.name != "image":
                parts.append(every_string(value, seen))
    return "\n".join(parts)


SCENARIOS = [
    [bfl_ok()],
    [httpx.Response(401, json={"error": {"code": "401", "message": f"bad key {CANARY}"}})],
    [httpx.Response(500, json={"error": {"message": f"echo Authorization: Bearer {CANARY}"}})] * 3,
    [httpx.Response(400, json={"error": {"code": "content_filter", "message": f"{CANARY}"}})],
    [httpx.Response(429, json={"error": {"message": CANARY}}, headers={"Retry-After": "9999"})],
    [httpx.Response(200, text=f"not json {CANARY}")] * 3,
    [httpx.ConnectError(f"cannot connect {CANARY}")] * 3,
]


@pytest.mark.parametrize("answers", SCENARIOS)
@pytest.mark.parametrize("header", ["bearer", "api-key"])
async def test_the_key_never_leaks(answers: list[object], header: str, caplog: pytest.LogCaptureFixture,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())
    fake = FakeService(queue=list(answers))  # type: ignore[arg-type]
    settings = load_settings(foundry_env(AZURE_API_KEY=CANARY, FLUX_KEY_HEADER=header), dotenv_path=None)

    async def no_wait(_: float) -> None:
        return None

    texts = [repr(settings), every_string(settings)]
    async with FoundryClient(settings, transport=fake.transport, sleep=no_wait) as client:
        texts.append(repr(client))
        try:
            result = await client.generate(GenerationRequest("FLUX.2-pro", "a fox", [], {}), lambda ev: texts.append(
                repr(ev)))
            texts.append(every_string(result))
        except FluxError as err:
            texts += [str(err), repr(err), repr(getattr(err, "body", None)), repr(err.args)]
            logging.getLogger("flux_ui.test").exception("request failed: %s", err)
    # the key did go out on the wire, so the canary test can fail
    sent = fake.requests[0].headers.get("authorization", "") + fake.requests[0].headers.get("api-key", "")
    assert CANARY in sent
    captured = capsys.readouterr()
    texts += [caplog.text, captured.out, captured.err]
    for record in caplog.records:
        texts.append(logging.Formatter().format(record))
    leaks = [t for t in texts if CANARY in t]
    assert leaks == []
