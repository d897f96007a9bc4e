"""Fault injection, the BFL polling flow and the control routes."""

from __future__ import annotations

import logging
import threading
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.testclient import TestClient

from emulator_fixtures import *  # noqa: F403  (fixtures: emu, http, module_emulator)
from emulator_fixtures import bearer, bfl_url, decode_image, start_emulator
from flux_ui.emulator import Emulator, Fault, create_app
from flux_ui.emulator.config import EmulatorConfig
from flux_ui.emulator.control import CONTROL_TOKEN_HEADER

PRO = {"model": "FLUX.2-pro", "prompt": "a small boat", "width": 256, "height": 256}


def send(http: httpx.Client, emu: Emulator, body: dict[str, object] | None = None,
         path: str = "flux-2-pro") -> httpx.Response:
    return http.post(bfl_url(emu.base_url, path), json=body or PRO, headers=bearer())


# --- each kind ------------------------------------------------------------------------------------


def test_status_fault_counts_down(emu: Emulator, http: httpx.Client) -> None:
    emu.set_faults("FLUX.2-pro", [Fault("status", status=503, count=2)])
    first = send(http, emu)
    assert first.status_code == 503 and first.json()["error"]["code"] == "ServiceUnavailable"
    assert emu.faults()["FLUX.2-pro"][0]["count"] == 1
    assert send(http, emu).status_code == 503
    assert send(http, emu).status_code == 200
    assert [e["fault"] for e in emu.requests()] == ["status:503", "status:503", None]


@pytest.mark.parametrize("status", [500, 502, 408, 409])
def test_status_faults_use_the_azure_shape(emu: Emulator, http: httpx.Client, status: int) -> None:
    emu.set_faults("*", [Fault("status", status=status, count=1)])
    r = send(http, emu)
    assert r.status_code == status
    assert set(r.json()["error"]) >= {"code", "message"}


def test_429_fault_with_a_long_retry_after(emu: Emulator, http: httpx.Client) -> None:
    emu.set_faults("FLUX.2-pro", [Fault("status", status=429, retry_after_s=300, count=1),
                                  Fault("status", status=429, retry_after=False, count=1)])
    long_wait = send(http, emu)
    assert long_wait.status_code == 429
    assert long_wait.headers["Retry-After"] == "300" and long_wait.headers["retry-after-ms"] == "300000"
    assert "Please retry after 300 seconds" in long_wait.json()["error"]["message"]
    bare = send(http, emu)
    assert bare.status_code == 429 and "Retry-After" not in bare.headers


def test_drop_cuts_the_connection(emu: Emulator, http: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    emu.set_faults("FLUX.2-pro", [Fault("drop", count=1)])
    with caplog.at_level(logging.DEBUG), pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
        send(http, emu)
    assert send(http, emu).status_code == 200  # the next request is served normally
    assert emu.requests()[0]["fault"] == "drop"
    assert not [r for r in caplog.records if r.exc_info], "an injected drop should not log a traceback"


def test_trickle_takes_its_time(emu: Emulator, http: httpx.Client) -> None:
    emu.set_faults("FLUX.2-pro", [Fault("trickle", seconds=0.6, count=1)])
    started = time.monotonic()
    r = send(http, emu)
    assert time.monotonic() - started >= 0.6
    assert r.status_code == 200 and decode_image(r.json()["data"][0]["b64_json"]).size == (256, 256)


def test_latency_and_jitter(emu: Emulator, http: httpx.Client) -> None:
    emu.set_faults("*", [Fault("latency", seconds=0.3, jitter_s=0.1, count=1)])
    started = time.monotonic()
    assert send(http, emu).status_code == 200
    assert 0.3 <= time.monotonic() - started < 2.0
    started = time.monotonic()
    send(http, emu)
    assert time.monotonic() - started < 0.3  # count=1: spent


def test_latency_stacks_with_another_fault(emu: Emulator, http: httpx.Client) -> None:
    emu.set_faults("*", [Fault("latency", seconds=0.2, count=1), Fault("status", status=500, count=1)])
    started = time.monotonic()
    assert send(http, emu).status_code == 500
    assert time.monotonic() - started >= 0.2
    assert emu.requests()[-1]["fault"] == "latency:0.2s+status:500"


@pytest.mark.parametrize(("variant", "data"), [(None, [{}]), ("list", [])])
def test_empty_result(emu: Emulator, http: httpx.Client, variant: str | None, data: list[object]) -> None:
    emu.set_faults("FLUX.2-pro", [Fault("empty", variant=variant, count=1)])
    r = send(http, emu)
    assert r.status_code == 200 and r.json()["data"] == data
    assert emu.requests()[-1]["output"] is None


def test_empty_on_the_image_api(emu: Emulator, http: httpx.Client) -> None:
    emu.set_faults("FLUX-1.1-pro", [Fault("empty", count=1)])
    r = http.post(f"{emu.base_url}/openai/images/generations?api-version=preview",
                  json={"model": "FLUX-1.1-pro", "prompt": "x"}, headers=bearer())
    assert r.status_code == 200 and r.json()["data"] == [{}]


def test_refuse_fault_both_styles(emu: Emulator, http: httpx.Client) -> None:
    emu.set_faults("FLUX.2-pro", [Fault("refuse", count=1), Fault("refuse", variant="finish_reason", count=1)])
    refused = send(http, emu)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "content_filter"
    filtered = send(http, emu)
    assert filtered.status_code == 200 and filtered.json()["data"][0]["finish_reason"] == "content_filter"


def test_malformed_body(emu: Emulator, http: httpx.Client) -> None:
    emu.set_faults("FLUX.2-pro", [Fault("malformed", count=1)])
    r = send(http, emu)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    with pytest.raises(ValueError):
        r.json()


def test_probability_replays_with_the_same_seed(http: httpx.Client) -> None:
    outcomes = []
    for _ in range(2):
        emu = start_emulator(rng_seed=1234, faults={"*": [Fault("status", status=500, probability=0.5)]})
        try:
            outcomes.append([send(http, emu).status_code for _ in range(16)])
        finally:
            emu.stop()
    assert outcomes[0] == outcomes[1]
    assert 2 <= outcomes[0].count(500) <= 14 and 200 in outcomes[0]


def test_specific_keys_win_and_routes_filter(emu: Emulator, http: httpx.Client) -> None:
    emu.set_faults("*", [Fault("status", status=502)])
    emu.set_faults("FLUX.2-pro", [Fault("status", status=503, count=1)])
    emu.set_faults("FLUX-1.1-pro", [Fault("status", status=409, routes=("images/generations",))])
    assert send(http, emu).status_code == 503
    assert send(http, emu).status_code == 502
    emu.set_faults("*", [])
    assert send(http, emu, {"model": "FLUX-1.1-pro", "prompt": "x"}, "flux-pro-1.1").status_code == 200
    r = http.post(f"{emu.base_url}/openai/images/generations?api-version=preview",
                  json={"model": "FLUX-1.1-pro", "prompt": "x"}, headers=bearer())
    assert r.status_code == 409


def test_faults_by_deployment_name(http: httpx.Client) -> None:
    emu = start_emulator(deployments={"night-shift": "FLUX.2-pro"},
                         faults={"night-shift": [Fault("status", status=500)]})
    try:
        assert send(http, emu, {**PRO, "model": "night-shift"}).status_code == 500
        assert send(http, emu).status_code == 200
    finally:
        emu.stop()


def test_schnell_faults(emu: Emulator, http: httpx.Client) -> None:
    emu.set_faults("FLUX.1-schnell", [Fault("status", status=503, count=1), Fault("malformed", count=1)])
    r = http.post(f"{emu.base_url}/score", json={"inputs": "x"}, headers=bearer() | {"Accept": "image/png"})
    assert r.status_code == 503 and isinstance(r.json()["error"], str)
    r = http.post(f"{emu.base_url}/score", json={"inputs": "x"}, headers=bearer() | {"Accept": "image/png"})
    assert r.status_code == 200 and not r.content.startswith(b"\x89PNG")


def test_fault_validation() -> None:
    with pytest.raises(ValueError):
        Fault("explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Fault("status", probability=1.5)
    with pytest.raises(ValueError):
        Fault("empty", variant="finish_reason")
    assert Fault.from_json({"kind": "drop", "routes": ["bfl"]}).routes == ("bfl",)


# --- polling flow ---------------------------------------------------------------------------------


@pytest.fixture
def polling(http: httpx.Client) -> Emulator:
    emu = start_emulator(bfl_style="polling", polling_pending_polls=2)
    yield emu  # type: ignore[misc]
    emu.stop()


def test_polling_flow_end_to_end(polling: Emulator, http: httpx.Client) -> None:
    r = send(http, polling, {**PRO, "seed": 99, "output_format": "png"})
    assert r.status_code == 200
    task = r.json()
    assert set(task) == {"id", "polling_url"}
    assert task["polling_url"] == f"{polling.base_url}/v1/get_result?id={task['id']}"
    statuses = [http.get(task["polling_url"]).json() for _ in range(3)]
    assert [s["status"] for s in statuses] == ["Pending", "Pending", "Ready"]
    result = statuses[-1]["result"]
    assert result["seed"] == 99 and result["prompt"] == PRO["prompt"]
    sample = http.get(result["sample"])
    assert sample.status_code == 200 and sample.headers["content-type"] == "image/png"
    assert decode_image(sample.content).size == (256, 256)
    expiry = int(parse_qs(urlsplit(result["sample"]).query)["se"][0])
    assert 590 <= expiry - time.time() <= 601
    assert [e["route"] for e in polling.requests()] == ["bfl", "poll", "poll", "poll", "delivery"]


def test_polling_moderated_and_unknown(polling: Emulator, http: httpx.Client) -> None:
    task = send(http, polling, {**PRO, "prompt": "refuse-me"}).json()
    statuses = [http.get(task["polling_url"]).json()["status"] for _ in range(3)]
    assert statuses == ["Pending", "Pending", "Request Moderated"]
    unknown = http.get(f"{polling.base_url}/v1/get_result?id=no-such-task")
    assert unknown.status_code == 200 and unknown.json()["status"] == "Task not found"


def test_expired_and_tampered_urls_are_403(polling: Emulator, http: httpx.Client) -> None:
    polling.set_faults("FLUX.2-pro", [Fault("expire_url", count=1)])
    task = send(http, polling).json()
    for _ in range(2):
        http.get(task["polling_url"])
    sample = http.get(task["polling_url"]).json()["result"]["sample"]
    expired = http.get(sample)
    assert expired.status_code == 403
    assert b"<Code>AuthenticationFailed</Code>" in expired.content and b"expired" in expired.content
    fresh = send(http, polling).json()
    for _ in range(2):
        http.get(fresh["polling_url"])
    good = http.get(fresh["polling_url"]).json()["result"]["sample"]
    assert http.get(good).status_code == 200
    assert http.get(good.replace("sig=", "sig=0")).status_code == 403


def test_url_results_expire_on_the_image_api(emu: Emulator, http: httpx.Client) -> None:
    emu.configure(image_api_result="url")
    emu.set_faults("FLUX-1.1-pro", [Fault("expire_url", count=1)])
    r = http.post(f"{emu.base_url}/openai/images/generations?api-version=preview",
                  json={"model": "FLUX-1.1-pro", "prompt": "x"}, headers=bearer())
    url = r.json()["data"][0]["url"]
    assert http.get(url).status_code == 403


def test_poll_faults_are_opt_in(polling: Emulator, http: httpx.Client) -> None:
    polling.set_faults("*", [Fault("status", status=500, count=1)])
    task = send(http, polling).json()  # the POST takes the fault...
    assert task["error"]["code"] == "InternalServerError"
    polling.set_faults("*", [Fault("status", status=502, count=1, routes=("poll",))])
    task = send(http, polling).json()
    assert http.get(task["polling_url"]).status_code == 502
    assert http.get(task["polling_url"]).json()["status"] == "Pending"


# --- control routes -------------------------------------------------------------------------------


def test_control_faults_round_trip(emu: Emulator, http: httpx.Client) -> None:
    ctl = emu.control_headers()  # these tests drive the routes themselves
    faults = {"FLUX.2-pro": [{"kind": "status", "status": 503, "count": 1}], "*": [{"kind": "latency",
                                                                                    "seconds": 0.01}]}
    r = http.put(f"{emu.base_url}/_emulator/faults", json=faults, headers=ctl)
    assert r.status_code == 200 and r.json()["FLUX.2-pro"][0]["status"] == 503
    assert send(http, emu).status_code == 503
    one = [{"kind": "status", "status": 409}]
    r = http.put(f"{emu.base_url}/_emulator/faults/FLUX.2-pro", json=one, headers=ctl)
    assert r.json()["FLUX.2-pro"][0]["count"] is None
    assert send(http, emu).status_code == 409
    assert http.delete(f"{emu.base_url}/_emulator/faults", headers=ctl).status_code == 204
    assert http.get(f"{emu.base_url}/_emulator/faults", headers=ctl).json() == {}
    assert send(http, emu).status_code == 200
    bad = http.put(f"{emu.base_url}/_emulator/faults", json={"*": [{"kind": "explode"}]}, headers=ctl)
    assert bad.status_code == 400 and "explode" in bad.json()["error"]["message"]
    bad = http.put(f"{emu.base_url}/_emulator/faults", json={"*": [{"kind": "drop", "colour": "red"}]},
                   headers=ctl)
    assert bad.status_code == 400 and "colour" in bad.json()["error"]["message"]


def test_control_requests_and_reset(emu: Emulator, http: httpx.Client) -> None:
    ctl = emu.control_headers()  # these tests drive the routes themselves
    send(http, emu)
    send(http, emu, {**PRO, "width": 8})
    log = http.get(f"{emu.base_url}/_emulator/requests", headers=ctl).json()
    assert [e["status"] for e in log] == [200, 422]
    assert log[0]["seq"] < log[1]["seq"] and log[0]["time"] <= log[1]["time"]
    expected = {"seq", "time", "route", "path", "deployment", "model", "auth", "params", "prompt", "unknown_params",
                "references", "status", "fault", "output", "notes"}
    assert set(log[0]) == expected
    assert http.delete(f"{emu.base_url}/_emulator/requests", headers=ctl).status_code == 204
    assert http.get(f"{emu.base_url}/_emulator/requests", headers=ctl).json() == []
    emu.set_faults("*", [Fault("status", status=500)])
    send(http, emu)
    assert http.post(f"{emu.base_url}/_emulator/reset", headers=ctl).status_code == 204
    assert http.get(f"{emu.base_url}/_emulator/requests", headers=ctl).json() == []
    assert http.get(f"{emu.base_url}/_emulator/faults", headers=ctl).json() == {}


def test_control_config_switches(emu: Emulator, http: httpx.Client) -> None:
    ctl = emu.control_headers()  # these tests drive the routes themselves
    r = http.patch(f"{emu.base_url}/_emulator/config", json={"bfl_style": "polling"}, headers=ctl)
    assert r.status_code == 200 and r.json()["bfl_style"] == "polling"
    assert "polling_url" in send(http, emu).json()
    bad = http.patch(f"{emu.base_url}/_emulator/config", json={"bfl_style": "carrier-pigeon"}, headers=ctl)
    assert bad.status_code == 400
    assert http.patch(f"{emu.base_url}/_emulator/config", json={"api_key": "x"}, headers=ctl).status_code == 400
    assert "api_key" not in http.get(f"{emu.base_url}/_emulator/config", headers=ctl).json()


def test_log_is_bounded(http: httpx.Client) -> None:
    with Emulator(EmulatorConfig(log_limit=3)) as emu:
        for _ in range(5):
            http.get(f"{emu.base_url}/nowhere")
        log = emu.requests()
        assert len(log) == 3 and [e["seq"] for e in log] == [3, 4, 5]


def test_control_routes_answer_loopback_only() -> None:
    # Starlette's TestClient presents the client address "testclient", which is not loopback.
    with TestClient(create_app(EmulatorConfig())) as client:
        assert client.get("/_emulator/requests").status_code == 403
        assert client.post("/_emulator/reset").status_code == 403
        assert client.get("/health").text == "Ok"


async def test_the_app_runs_in_process_over_asgi() -> None:
    # create_app is also usable without a socket, e.g. behind httpx's ASGITransport.
    app = create_app(EmulatorConfig(api_key="asgi-key-123456", control_token="asgi-control"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        r = await client.post("/providers/blackforestlabs/v1/flux-2-pro?api-version=preview",
                              json={"model": "FLUX.2-pro", "prompt": "x", "width": 64, "height": 64},
                              headers=bearer("asgi-key-123456"))
        assert r.status_code == 200
        log = (await client.get("/_emulator/requests", headers={CONTROL_TOKEN_HEADER: "asgi-control"})).json()
        assert log[-1]["status"] == 200


def test_a_request_answered_after_a_clear_stays_out_of_the_log(emu: Emulator, http: httpx.Client,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    emu.set_faults("FLUX.2-pro", [Fault("latency", seconds=0.4, count=1)])
    drawn = threading.Event()
    draw = emu.state.faults.draw

    def draw_and_tell(*args: object, **kwargs: object) -> object:
        try:
            return draw(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            drawn.set()

    monkeypatch.setattr(emu.state.faults, "draw", draw_and_tell)
    with httpx.Client(timeout=10) as other:
        slow = threading.Thread(target=send, args=(other, emu))
        slow.start()
        assert drawn.wait(timeout=10)  # the slow request has arrived and is waiting out its latency
        assert emu.faults()["FLUX.2-pro"][0]["count"] == 0
        emu.clear()
        slow.join()
    assert emu.requests() == []
    send(http, emu)
    assert len(emu.requests()) == 1
