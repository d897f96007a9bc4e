"""``python -m flux_ui.doctor`` against the emulator: each variant the contract leaves open is reported as the
emulator played it, each kind of mistake is a ✗ with its fix, nothing is billed without --generate, and no key
reaches the report."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from conftest import FakeService
from emulator_fixtures import KEY, own_emulator
from flux_ui.client.wire import probe_request
from flux_ui.doctor import Options, Report, diagnose, render_json, render_text
from flux_ui.doctor.probe import ROUTE_NAMES
from flux_ui.doctor.report import Check
from flux_ui.emulator import Emulator, Fault
from flux_ui.emulator.auth import make_entra_token
from flux_ui.registry import MODELS, Route
from flux_ui.settings import SettingsError, load_settings

REPO = Path(__file__).resolve().parents[1]
SCHNELL_KEY = "doctor-schnell-key-93c1d7e2"
#: One model on the BFL route alone, one on the BFL route and both Image API operations, and schnell.
DEPLOYED = "FLUX.2-pro:1000/1s,FLUX.1-Kontext-pro:1000/1s"


def env_for(emu: Emulator, tmp_path: Path, **extra: str) -> dict[str, str]:
    """Settings that point flux-ui at ``emu`` as if it were a Foundry resource and a schnell endpoint."""
    env = {"AZURE_ENDPOINT": emu.base_url, "AZURE_API_KEY": KEY, "FLUX_DEPLOYMENTS": DEPLOYED,
           "FLUX_SCHNELL_ENDPOINT": f"{emu.base_url}/score", "FLUX_SCHNELL_KEY": KEY, "FLUX_SCHNELL_RPM": "1000/1s",
           "FLUX_OUTPUT_DIR": str(tmp_path / "out")}
    env.update(extra)
    return {k: v for k, v in env.items() if v}


async def doctor(env: dict[str, str], **options: Any) -> tuple[Report, str]:
    report = await diagnose(Options(env=env, dotenv_path=None, **options))
    return report, render_text(report)


def check(report: Report, section: str, label: str) -> Check:
    """The one check of ``section`` (by title's start) whose label starts with ``label``."""
    found = [c for s in report.sections if s.title.startswith(section) for c in s.checks if c.label.startswith(label)]
    assert len(found) == 1, (label, [c.label for s in report.sections for c in s.checks])
    return found[0]


def generated(report: Report, model: str, route: Route) -> Check:
    return check(report, "Generation", f"{model}, {ROUTE_NAMES[route]}")


# --- the variants, as the emulator plays them ---------------------------------------------------------------

MODES = {
    "default": ({}, "b64_json", "b64_json", "seen"),
    "--polling": ({"bfl_style": "polling"}, "polled", "b64_json", "seen"),
    "--url-results": ({"image_api_result": "url"}, "b64_json", "url", "seen"),
    "--no-retry-after": ({"retry_after_header": False}, "b64_json", "b64_json", "absent"),
}
BFL_TEXT = {"b64_json": "delivery: synchronous, base64 in data[0].b64_json",
            "polled": "delivery: BFL-native task (id + polling_url), polled"}
IMAGE_API_TEXT = {"b64_json": "delivery: synchronous, base64 in data[0].b64_json",
                  "url": "delivery: synchronous, a link in data[0].url, downloaded"}
RETRY_TEXT = {"seen": "429: 1 happened, with a wait to honour (retry-after: 1",
              "absent": "429: 1 happened, without Retry-After or retry-after-ms"}


@pytest.mark.parametrize("mode", list(MODES))
async def test_each_emulator_mode_is_reported_as_played(mode: str, tmp_path: Path) -> None:
    config, bfl, image_api, retry_after = MODES[mode]
    with own_emulator(**config) as emu:
        emu.set_faults("FLUX.2-pro", [Fault("status", status=429, count=1)])  # one 429, then the image
        report, text = await doctor(env_for(emu, tmp_path), generate=True)
    assert report.ok, text

    pro = generated(report, "FLUX.2-pro", Route.BFL)
    assert pro.facts["delivery"] == bfl and pro.facts["retry_after"] == retry_after
    assert pro.facts["attempts"] == 2 and pro.facts["image"] == "64x64 jpeg"  # the smallest size, after a retry
    assert any(n.startswith(BFL_TEXT[bfl]) for n in pro.notes), pro.notes
    assert any(n.startswith(RETRY_TEXT[retry_after]) for n in pro.notes), pro.notes
    if bfl == "polled":
        assert pro.facts["polls"] >= 1 and pro.facts["last_status"] == "Ready"
        assert "request_meta: absent" in pro.notes  # the task's answers carry none
    else:
        assert pro.facts["request_meta"]["total_pixels"] == 64 * 64
        cost = next(n for n in pro.notes if n.startswith("cost:"))
        assert f"cost: {pro.facts['cost_raw']} as the service sent it; its unit is not documented" in cost

    for route in (Route.IMAGES_GENERATIONS, Route.IMAGES_EDITS):
        found = generated(report, "FLUX.1-Kontext-pro", route)
        assert found.facts["delivery"] == image_api, found.facts
        assert any(n.startswith(IMAGE_API_TEXT[image_api]) for n in found.notes), found.notes
        assert found.facts["retry_after"] == "no 429" and found.facts["request_meta"] is None
    schnell = generated(report, "FLUX.1-schnell", Route.AML)
    assert schnell.facts["delivery"] == "image-bytes" and schnell.facts["image"] == "256x256 png"
    assert "429: none happened, so whether this deployment's 429s carry Retry-After is still unknown" in schnell.notes
    assert text.rstrip().endswith(f"Result: ✓ all {len(report.checks)} checks passed")


# --- what is wrong, and what to do ---------------------------------------------------------------------------


async def test_a_wrong_key_fails_authentication_with_the_fix(tmp_path: Path) -> None:
    with own_emulator() as emu:
        report, text = await doctor(env_for(emu, tmp_path, AZURE_API_KEY="not-the-key-4e1f0a9b7c"))
    refused = check(report, "Endpoints", f"{emu.base_url}: API key AZURE_API_KEY")
    assert refused.status == "fail" and "refused (HTTP 401)" in refused.label
    assert "Check that AZURE_API_KEY belongs to the resource" in refused.fix
    assert check(report, "Deployments", "FLUX.2-pro, BFL route").status == "info"  # not judged without a key
    assert check(report, "Endpoints", f"{emu.base_url}/score: API key FLUX_SCHNELL_KEY").status == "pass"
    assert not report.ok and "✗ 1 of" in text


async def test_entra_id_accepted_or_refused_with_the_role_it_needs(tmp_path: Path) -> None:
    token = SimpleNamespace(token=make_entra_token(), expires_on=time.time() + 3600)
    entra = {"AZURE_API_KEY": "", "AZURE_AUTH": "entra", "FLUX_SCHNELL_ENDPOINT": ""}
    credential = SimpleNamespace(get_token=lambda *scopes, **kw: token)

    def no_sign_in(*scopes: str, **kw: object) -> object:
        raise RuntimeError("DefaultAzureCredential failed to retrieve a token")

    # A 403 (the identity lacks the role) comes from a scripted service: the emulator plays no role assignments.
    denied = FakeService(handler=lambda r: httpx.Response(403, json={"error": {"code": "PermissionDenied",
                                                                              "message": "no role"}}))
    endpoint = "https://doctor-test.services.ai.azure.com"
    with own_emulator(accept_entra=True) as emu:
        report, _ = await doctor(env_for(emu, tmp_path, **entra), credential=credential)
        signed_out, _ = await doctor(env_for(emu, tmp_path, **entra), credential=SimpleNamespace(get_token=no_sign_in))
        probes = sum(len(MODELS[m].routes) for m in ("FLUX.2-pro", "FLUX.1-Kontext-pro"))
        assert [e["auth"] for e in emu.requests()] == ["entra"] * probes  # and none sent without a token
        forbidden_report, _ = await doctor({**env_for(emu, tmp_path, **entra), "AZURE_ENDPOINT": endpoint},
                                           credential=credential, transport=denied.transport)
    accepted = check(report, "Endpoints", f"{emu.base_url}: Microsoft Entra ID token")
    assert accepted.status == "pass" and "https://cognitiveservices.azure.com/.default" in accepted.label
    failed = check(signed_out, "Endpoints", f"{emu.base_url}: Microsoft Entra ID token")
    assert failed.status == "fail" and "nothing was sent" in failed.label and "az login" in failed.fix
    forbidden = check(forbidden_report, "Endpoints", f"{endpoint}: Microsoft Entra ID token")
    assert forbidden.status == "fail" and "HTTP 403" in forbidden.label
    assert "Cognitive Services User" in forbidden.fix and "az role assignment create" in forbidden.fix


async def test_a_missing_deployment_fails_and_the_others_pass(tmp_path: Path) -> None:
    with own_emulator() as emu:
        report, _ = await doctor(env_for(emu, tmp_path, FLUX_DEPLOYMENTS="FLUX.2-pro=no-such-deployment,"
                                                                         "FLUX.1-Kontext-pro"))
    missing = check(report, "Deployments", "FLUX.2-pro (deployment 'no-such-deployment'), BFL route")
    assert missing.status == "fail" and "not found (HTTP 404)" in missing.label
    assert "set FLUX_DEPLOYMENTS to the name you gave it" in missing.fix
    for route in MODELS["FLUX.1-Kontext-pro"].routes:
        assert check(report, "Deployments", f"FLUX.1-Kontext-pro, {ROUTE_NAMES[route]}").status == "pass"
    assert [c.label for c in report.failures] == [missing.label]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_an_unreachable_endpoint_fails_naming_its_variable(tmp_path: Path) -> None:
    with own_emulator() as emu:
        dead = f"http://127.0.0.1:{_closed_port()}"
        report, _ = await doctor(env_for(emu, tmp_path, AZURE_ENDPOINT=dead))
    unreachable = check(report, "Endpoints", f"{dead} (AZURE_ENDPOINT): unreachable")
    assert unreachable.status == "fail" and "Could not connect" in unreachable.fix
    assert "Check AZURE_ENDPOINT's scheme, host and port" in unreachable.fix
    assert check(report, "Endpoints", f"{emu.base_url}/score (FLUX_SCHNELL_ENDPOINT): reachable").status == "pass"
    assert check(report, "Deployments", "FLUX.2-pro, BFL route").status == "info"


async def test_a_silent_endpoint_and_an_unexpected_failure_are_reported_not_raised(tmp_path: Path) -> None:
    def silent(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    def proxied(request: httpx.Request) -> httpx.Response:
        raise httpx.ProxyError("the proxy refused the tunnel")

    endpoint = "https://doctor-test.services.ai.azure.com"
    env = {"AZURE_ENDPOINT": endpoint, "AZURE_API_KEY": KEY, "FLUX_DEPLOYMENTS": "FLUX.2-pro",
           "FLUX_OUTPUT_DIR": str(tmp_path / "out")}
    report, _ = await doctor(env, transport=FakeService(handler=silent).transport, timeout_s=0.5)
    slow = check(report, "Endpoints", f"{endpoint} (AZURE_ENDPOINT): no answer in time")
    assert slow.status == "fail" and "did not answer in time" in slow.fix
    report, text = await doctor(env, transport=FakeService(handler=proxied).transport)
    broken = check(report, "Deployments", "FLUX.2-pro, BFL route: cannot be checked (ProxyError)")
    assert broken.status == "fail" and "the proxy refused the tunnel" in broken.fix and "Traceback" not in text


async def test_a_bad_variable_fails_naming_it_with_the_settings_own_words(tmp_path: Path) -> None:
    with own_emulator() as emu:
        env = env_for(emu, tmp_path, FLUX_KEY_HEADER="bearr", FLUX_DEPLOYMENTS="FLUX.2-pro:fast")
        report, text = await doctor(env)
    with pytest.raises(SettingsError) as raised:
        load_settings(env, None)
    problems = raised.value.problems
    assert [c.fix for c in report.failures] == problems  # the loader's own words, one ✗ each
    assert [c.label for c in report.failures] == ["FLUX_KEY_HEADER is wrong", "FLUX_DEPLOYMENTS is wrong"]
    assert "for example FLUX_KEY_HEADER=" in report.failures[0].fix
    assert "not checked: the configuration needs fixing first" in text and "Endpoints" not in text
    assert emu.requests() == []  # nothing was sent


async def test_a_model_not_configured_is_a_failure(tmp_path: Path) -> None:
    with own_emulator() as emu:
        report, _ = await doctor(env_for(emu, tmp_path), models=("FLUX.2-flex",))
    assert [c.label for c in report.failures] == ["FLUX.2-flex: not configured in this installation"]
    assert "FLUX_DEPLOYMENTS=FLUX.2-flex" in report.failures[0].fix
    assert emu.requests() == []


# --- what it spends, and what it shows ---------------------------------------------------------------------


async def test_without_generate_nothing_is_billed(tmp_path: Path) -> None:
    with own_emulator() as emu:
        report, _ = await doctor(env_for(emu, tmp_path))
        probes = emu.requests()
        assert report.ok
        emu.clear()
        await doctor(env_for(emu, tmp_path), generate=True)
        generations = emu.requests()
    routes = {(e["model"], e["route"]) for e in probes}
    assert routes == {(m, r.value) for m in ("FLUX.2-pro", "FLUX.1-Kontext-pro", "FLUX.1-schnell")
                      for r in MODELS[m].routes}
    assert all(e["output"] is None and e["status"] in (400, 422) for e in probes), probes
    assert sum(e["output"] is not None for e in generations) == len(routes)  # the log does show a generation


def test_the_probe_is_refused_even_where_a_prompt_is_optional(tmp_path: Path) -> None:
    """1.1-pro's BFL prompt is optional (contract §2): the probe's other fault must be refused on its own."""
    with own_emulator() as emu, httpx.Client() as http:
        settings = load_settings({}, None).with_emulator(emu.base_url, KEY)
        for model_id in ("FLUX-1.1-pro", "FLUX.1-Kontext-pro"):
            for route in MODELS[model_id].routes:
                wire = probe_request(settings.deployments[model_id], route, api_version="preview",
                                     image_api_path="deployment")
                shown = dict(wire.json_body or wire.form or {})
                assert "prompt" not in shown
                with_prompt = {**shown, "prompt": "a heron"}
                kwargs: dict[str, Any] = ({"json": with_prompt} if wire.json_body is not None else
                                          {"data": with_prompt, "files": wire.files})
                answer = http.post(wire.url, params=wire.query, headers={"Authorization": f"Bearer {KEY}"}, **kwargs)
                assert answer.status_code in (400, 422), (model_id, route, answer.text)
        assert all(e["output"] is None for e in emu.requests())


async def test_no_key_or_password_reaches_the_report(tmp_path: Path) -> None:
    canary_user = "alice:canary-passphrase-0d9e8f7a"
    with own_emulator(schnell_key=SCHNELL_KEY) as emu:
        env = env_for(emu, tmp_path, FLUX_SCHNELL_KEY=SCHNELL_KEY, FLUX_UI_USERS=canary_user)
        report, text = await doctor(env, generate=True)
        wrong = "wrong-canary-key-5a6b7c8d9e"
        bad_report, bad_text = await doctor(env_for(emu, tmp_path, AZURE_API_KEY=wrong))
    assert report.ok and not bad_report.ok
    outputs = [text, render_json(report), bad_text, render_json(bad_report)]
    for secret in (KEY, SCHNELL_KEY, canary_user.partition(":")[2], wrong):
        for output in outputs:
            assert secret not in output and secret[:12] not in output
    assert "AZURE_API_KEY is set (its value is not shown)" in text
    assert "FLUX_UI_USERS is set (its value is not shown)" in text


async def test_json_holds_the_same_findings(tmp_path: Path) -> None:
    with own_emulator(image_api_result="url") as emu:
        report, _ = await doctor(env_for(emu, tmp_path), generate=True, models=("FLUX.1-Kontext-pro",))
    data = json.loads(render_json(report))
    assert data["ok"] is True and data["environment"]["Python"].startswith("3.")
    facts = [c["facts"] for s in data["sections"] if s["title"].startswith("Generation") for c in s["checks"]]
    assert [f["delivery"] for f in facts] == ["b64_json", "url", "url"]


# --- the command ----------------------------------------------------------------------------------------------


def _command(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AZURE_", "FLUX_"))}
    base["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "flux_ui.doctor", *args], cwd=cwd, env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=90)


def test_on_a_fresh_clone_it_checks_its_own_emulator(tmp_path: Path) -> None:
    done = _command([], tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert out.startswith("flux-ui doctor report\nflux-ui ") and " · Python 3." in out and " · OS " in out
    assert "so flux-ui runs on its local emulator" in out and "The doctor started one of its own" in out
    for model_id, spec in MODELS.items():
        for route in spec.routes:
            assert f"✓ {model_id}, {ROUTE_NAMES[route]}: found" in out
    assert "not run: add --generate" in out and out.rstrip().endswith("checks passed")
    assert not (tmp_path / "outputs").exists()  # the doctor creates nothing


def test_the_command_fails_with_status_1_and_documents_itself(tmp_path: Path) -> None:
    with own_emulator() as emu:
        done = _command(["--json", "--model", "FLUX.2-pro"], tmp_path,
                        env_for(emu, tmp_path, AZURE_API_KEY="not-the-key-4e1f0a9b7c"))
    assert done.returncode == 1, done.stderr
    data = json.loads(done.stdout)
    assert data["ok"] is False and "not-the-key-4e1f0a9b7c" not in done.stdout
    helped = _command(["--help"], tmp_path)
    assert helped.returncode == 0
    for documented in ("--generate", "--json", "--model", "--env-file", "--timeout", "exit status: 0",
                       "nothing is billed", "never appear"):
        assert documented in helped.stdout, documented


def test_the_command_against_the_standalone_emulator_with_a_429_from_its_control_route(tmp_path: Path) -> None:
    """Both commands as a person runs them: the emulator with two variant switches, a 429 armed over HTTP."""
    emulator = subprocess.Popen([sys.executable, "-m", "flux_ui.emulator", "--port", "0", "--api-key", KEY,
                                 "--polling", "--no-retry-after"], cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        assert emulator.stdout is not None
        printed: dict[str, str] = {}
        for line in iter(emulator.stdout.readline, ""):
            if line.startswith("#"):  # it serves
                break
            name, _, value = line.strip().partition("=")
            printed[name] = value
        base = printed["AZURE_ENDPOINT"]
        armed = httpx.put(f"{base}/_emulator/faults/FLUX.2-pro", json=[{"kind": "status", "status": 429, "count": 1}])
        assert armed.status_code == 200, armed.text
        done = _command(["--generate", "--json", "--model", "FLUX.2-pro"], tmp_path,
                        {"AZURE_ENDPOINT": base, "AZURE_API_KEY": printed["AZURE_API_KEY"],
                         "FLUX_DEPLOYMENTS": "FLUX.2-pro:1000/1s", "FLUX_OUTPUT_DIR": str(tmp_path / "out")})
        log = httpx.get(f"{base}/_emulator/requests").json()
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(done.stdout)
    (facts,) = [c["facts"] for s in data["sections"] if s["title"].startswith("Generation") for c in s["checks"]]
    assert facts["delivery"] == "polled" and facts["retry_after"] == "absent" and facts["attempts"] == 2
    assert [(e["route"], e["status"]) for e in log][:3] == [("bfl", 422), ("bfl", 429), ("bfl", 200)]
    assert KEY not in done.stdout


# --- Content Safety ------------------------------------------------------------------------------------------

CS_KEY = "doctor-content-safety-key-7d3e9a1c"


def safety_checks(report: Report) -> list[Check]:
    return [c for s in report.sections if s.title.startswith("Content Safety") for c in s.checks]


async def test_content_safety_is_checked_with_one_text_record_when_configured(tmp_path: Path) -> None:
    with own_emulator(content_safety_key=CS_KEY) as emu:
        env = env_for(emu, tmp_path, CONTENT_SAFETY_ENDPOINT=emu.base_url, CONTENT_SAFETY_KEY=CS_KEY,
                      FLUX_UI_SAFETY_BLOCKLISTS="flux-ui-demo")
        report, text = await doctor(env)
        asked = [e for e in emu.requests() if e["route"].endswith(":analyze")]
    host = emu.base_url.removeprefix("http://")
    assert report.ok, text
    assert "Content Safety (one text:analyze of the word 'hello': the resource bills it as one text record" in text
    assert check(report, "Content Safety", f"{host}: reachable").status == "pass"
    assert check(report, "Content Safety", f"{host}: CONTENT_SAFETY_KEY").status == "pass"
    assert check(report, "Content Safety", "blocklists found: flux-ui-demo").status == "pass"
    assert "FLUX_UI_SAFETY_FAIL_OPEN=no" in check(report, "Content Safety", "highest severity").label
    assert [(e["route"], e["prompt"], e["auth"]) for e in asked] == [("text:analyze", "hello", "subscription-key")]
    assert CS_KEY not in text and CS_KEY not in render_json(report)


async def test_content_safety_off_sends_nothing_there(tmp_path: Path) -> None:
    with own_emulator() as emu:
        report, _ = await doctor(env_for(emu, tmp_path))
        logged = {e["route"] for e in emu.requests()}
    [off] = safety_checks(report)
    assert off.status == "info" and off.label.startswith("off: CONTENT_SAFETY_ENDPOINT is not set")
    assert not any(r.endswith(":analyze") for r in logged) and report.ok


@pytest.mark.parametrize(("extra", "failed", "fix"), [
    ({"CONTENT_SAFETY_KEY": "not-the-cs-key-1b2c3d4e"}, "CONTENT_SAFETY_KEY (sent as Ocp-Apim-Subscription-Key) "
     "refused (HTTP 401)", "Check CONTENT_SAFETY_KEY"),
    ({"FLUX_UI_SAFETY_BLOCKLISTS": "no-such-list"}, "a blocklist in FLUX_UI_SAFETY_BLOCKLISTS (no-such-list) is not on "
     "the resource", "every name in FLUX_UI_SAFETY_BLOCKLISTS"),
])
async def test_a_refused_content_safety_check_says_what_to_fix(tmp_path: Path, extra: dict[str, str], failed: str,
                                                              fix: str) -> None:
    with own_emulator(content_safety_key=CS_KEY) as emu:
        env = env_for(emu, tmp_path, **{"CONTENT_SAFETY_ENDPOINT": emu.base_url, "CONTENT_SAFETY_KEY": CS_KEY, **extra})
        report, text = await doctor(env)
    [refused] = [c for c in safety_checks(report) if c.status == "fail"]
    assert failed in refused.label and fix in refused.fix and not report.ok
    assert check(report, "Content Safety", f"{emu.base_url.removeprefix('http://')}: reachable").status == "pass"
    assert "not-the-cs-key-1b2c3d4e" not in text


async def test_an_unreachable_content_safety_endpoint_fails_naming_its_variable(tmp_path: Path) -> None:
    port = _closed_port()
    with own_emulator() as emu:
        report, _ = await doctor(env_for(emu, tmp_path, CONTENT_SAFETY_ENDPOINT=f"http://127.0.0.1:{port}",
                                         CONTENT_SAFETY_KEY=CS_KEY), timeout_s=2.0)
    failed = check(report, "Content Safety", f"127.0.0.1:{port} (CONTENT_SAFETY_ENDPOINT): unreachable")
    assert failed.status == "fail" and "Check CONTENT_SAFETY_ENDPOINT" in failed.fix


def test_on_the_emulator_it_checks_the_emulators_content_safety_for_nothing(tmp_path: Path) -> None:
    done = _command([], tmp_path, {"FLUX_UI_SAFETY": "emulator"})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Content Safety (one text:analyze of the word 'hello', on the emulator: nothing billed)" in done.stdout
    assert "on: prompts and results are checked by the local emulator's Content Safety" in done.stdout
    assert "the emulator's key accepted" in done.stdout
