"""View code (flux_ui.client.snippets): every snippet is run for real against the emulator.

Each route's curl script runs under bash (one under dash too), each Python script under this
interpreter, beside reference files written into a temporary folder; the test then reads the image
it saved and the emulator's log of what it received. Entra ID runs with a stand-in ``az`` and a
stand-in ``azure.identity`` that hand out an emulator-shaped token.
"""

from __future__ import annotations

import base64
import io
import os
import random
import subprocess
import sys
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from conftest import RED, solid_image
from emulator_fixtures import *  # noqa: F403  (fixtures: emu, http, module_emulator)
from emulator_fixtures import KEY
from flux_ui.client import GenerationRequest, validate
from flux_ui.client import snippets as snippets_module
from flux_ui.client.snippets import build_plan, form_snippets, request_snippets
from flux_ui.client.wire import WireRequest, build_request
from flux_ui.emulator import Emulator
from flux_ui.emulator.auth import make_entra_token
from flux_ui.errors import ValidationError
from flux_ui.registry import Route
from flux_ui.settings import Settings, load_settings

#: Quotes, $, backticks, a backslash, a newline and non-ASCII text: what a shell or a literal could mangle.
TRICKY = 'A "red" fox at $HOME, `date` 50% off \\ it\'s ünïcode 🦊\nsecond line'
BLUE = (30, 60, 200)
RUN_TIMEOUT_S = 60
JPEG_SIGNATURE = b"\xff\xd8\xff"


@dataclass(frozen=True)
class Case:
    request: GenerationRequest
    output: str  # the file the snippet saves
    fmt: str  # Pillow's name for its format


def _refs(*formats: str) -> tuple[bytes, ...]:
    colours = [RED, BLUE]
    return tuple(solid_image(colours[i % 2], (256, 256), fmt) for i, fmt in enumerate(formats))


CASES = {
    "bfl-generate-pro": Case(GenerationRequest("FLUX.2-pro", TRICKY, (), {"width": 256, "height": 256}),
                             "output.jpg", "JPEG"),
    "bfl-edit-flex": Case(GenerationRequest("FLUX.2-flex", TRICKY, _refs("PNG", "JPEG"),
                                            {"width": 256, "height": 256, "steps": 4, "output_format": "png"}),
                          "output.png", "PNG"),
    "bfl-kontext": Case(GenerationRequest("FLUX.1-Kontext-pro", "make it blue", _refs("PNG"),
                                          {"aspect_ratio": "1:1"}), "output.png", "PNG"),
    "images-generations": Case(GenerationRequest("FLUX-1.1-pro", TRICKY, (), {"width": 256, "height": 256},
                                                 route=Route.IMAGES_GENERATIONS), "output.jpg", "JPEG"),
    "images-edits": Case(GenerationRequest("FLUX.1-Kontext-pro", TRICKY, _refs("JPEG"), {},
                                           route=Route.IMAGES_EDITS), "output.png", "PNG"),
    "aml-schnell": Case(GenerationRequest("FLUX.1-schnell", TRICKY, (), {"width": 256, "height": 256}),
                        "output.png", "PNG"),
}
RUNS = [(name, kind) for name, case in CASES.items() for kind in ("curl", "python", "openai")
        if kind != "openai" or case.request.route in (Route.IMAGES_GENERATIONS, Route.IMAGES_EDITS)]


# --- helpers -------------------------------------------------------------------------------------------------

def emulator_settings(emu: Emulator, **changes: Any) -> Settings:
    return replace(load_settings({}, dotenv_path=None).with_emulator(emu.base_url, emu.api_key), **changes)


def with_deployments(settings: Settings, **changes: Any) -> Settings:
    """Every deployment changed alike (its key header, its auth)."""
    return replace(settings, deployments={m: replace(d, **changes) for m, d in settings.deployments.items()})


def make(case: Case, settings: Settings) -> dict[str, str]:
    checked = validate(case.request, rng=random.Random(7))
    return request_snippets(checked, settings.deployments[case.request.model], settings)


def key_env(model: str) -> str:
    return "FLUX_SCHNELL_KEY" if model == "FLUX.1-schnell" else "AZURE_API_KEY"


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any key, loopback kept off any proxy, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_KEY") and "PROXY" not in k.upper()}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(extra)
    return env


def run(kind: str, text: str, folder: Path, references: tuple[bytes, ...], env: dict[str, str],
        shell: str = "bash") -> subprocess.CompletedProcess[str]:
    """Write the references (image1.png, image2.jpg, ...) and the snippet into ``folder`` and run it there."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(references, start=1):
        extension = "jpg" if data.startswith(JPEG_SIGNATURE) else "png"
        (folder / f"image{i}.{extension}").write_bytes(data)
    script = folder / ("request.sh" if kind == "curl" else f"request_{kind}.py")
    script.write_text(text, encoding="utf-8")
    command = [shell, script.name] if kind == "curl" else [sys.executable, script.name]
    done = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, f"{kind} snippet failed:\n{done.stderr}\n{done.stdout}\n--- snippet ---\n{text}"
    return done


def saved_image(folder: Path, case: Case) -> Image.Image:
    path = folder / case.output
    assert path.is_file() and path.stat().st_size > 0, f"{case.output} was not written"
    img = Image.open(io.BytesIO(path.read_bytes()))
    img.load()
    assert img.format == case.fmt
    return img


def generation(emu: Emulator) -> dict[str, Any]:
    """The one generation request the emulator received (polls and downloads aside)."""
    sent = [e for e in emu.requests() if e["route"] in ("bfl", "images/generations", "images/edits", "aml")]
    assert len(sent) == 1, sent
    return sent[0]


def check_received(emu: Emulator, case: Case, auth: str = "bearer-key") -> dict[str, Any]:
    entry = generation(emu)
    assert entry["status"] == 200, entry
    assert entry["model"] == case.request.model
    assert entry["prompt"] == case.request.prompt
    assert len(entry["references"]) == len(case.request.references)
    assert entry["auth"] == auth
    return entry


# --- every route, every snippet, run --------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "kind"), RUNS, ids=[f"{n}-{k}" for n, k in RUNS])
def test_snippet_runs_and_saves_the_image(emu: Emulator, tmp_path: Path, name: str, kind: str) -> None:
    case = CASES[name]
    text = make(case, emulator_settings(emu))[kind]
    assert KEY not in text
    run(kind, text, tmp_path, case.request.references, clean_env(**{key_env(case.request.model): KEY}))
    saved_image(tmp_path, case)
    entry = check_received(emu, case)
    sent_params = {k: v for k, v in case.request.params.items() if k not in ("output_format",)}
    for param, value in sent_params.items():
        if case.request.route not in (Route.IMAGES_GENERATIONS, Route.IMAGES_EDITS):
            assert entry["params"].get(param, entry["params"].get("parameters", {}).get(param)) == value


@pytest.mark.parametrize("kind", ["curl", "sh", "python"])
def test_bfl_polling_answer_is_followed(emu: Emulator, tmp_path: Path, kind: str) -> None:
    """A deployment that answers BFL's way (a task to poll) still gives the snippet its image."""
    emu.configure(bfl_style="polling", polling_pending_polls=1)
    case = CASES["bfl-edit-flex"]
    text = make(case, emulator_settings(emu))["python" if kind == "python" else "curl"]
    run("python" if kind == "python" else "curl", text, tmp_path, case.request.references,
        clean_env(AZURE_API_KEY=KEY), shell="sh" if kind == "sh" else "bash")
    saved_image(tmp_path, case)
    check_received(emu, case)
    routes = [e["route"] for e in emu.requests()]
    assert routes.count("poll") >= 2, routes  # Pending at least once, then Ready
    assert "delivery" in routes


@pytest.mark.parametrize("kind", ["curl", "python", "openai"])
def test_image_api_link_results_are_fetched(emu: Emulator, tmp_path: Path, kind: str) -> None:
    emu.configure(image_api_result="url")
    case = CASES["images-edits"]
    run(kind, make(case, emulator_settings(emu))[kind], tmp_path, case.request.references,
        clean_env(AZURE_API_KEY=KEY))
    saved_image(tmp_path, case)
    check_received(emu, case)
    assert "delivery" in [e["route"] for e in emu.requests()]


@pytest.mark.parametrize("name", ["images-generations", "images-edits"])
@pytest.mark.parametrize("kind", ["curl", "python", "openai"])
def test_image_api_model_in_body(emu: Emulator, tmp_path: Path, name: str, kind: str) -> None:
    """FLUX_IMAGE_API_PATH=model: /openai/images/... with the deployment in the body, as Microsoft's sample."""
    case = CASES[name]
    text = make(case, emulator_settings(emu, image_api_path="model"))[kind]
    assert "/openai/deployments/" not in text
    run(kind, text, tmp_path, case.request.references, clean_env(AZURE_API_KEY=KEY))
    saved_image(tmp_path, case)
    entry = check_received(emu, case)
    assert entry["path"].startswith("/openai/images/")


@pytest.mark.parametrize(("name", "kind"), [("bfl-kontext", "curl"), ("bfl-kontext", "python"),
                                            ("images-generations", "curl"), ("images-generations", "openai")])
def test_api_key_header(emu: Emulator, tmp_path: Path, name: str, kind: str) -> None:
    case = CASES[name]
    settings = with_deployments(emulator_settings(emu), key_header="api-key")
    text = make(case, settings)[kind]
    run(kind, text, tmp_path, case.request.references, clean_env(AZURE_API_KEY=KEY))
    saved_image(tmp_path, case)
    # The openai package sends the key as Bearer whatever flux-ui's header; the snippet says so.
    check_received(emu, case, auth="bearer-key" if kind == "openai" else "api-key")


# --- Entra ID ---------------------------------------------------------------------------------------------------

def entra_tools(folder: Path, token: str) -> dict[str, str]:
    """An ``az`` and an ``azure.identity`` that hand out ``token`` for the Cognitive Services scope only."""
    tools = folder / "tools"
    tools.mkdir()
    az = tools / "az"
    az.write_text(textwrap.dedent("""\
        #!/bin/sh
        expected="account get-access-token --resource https://cognitiveservices.azure.com --query accessToken -o tsv"
        [ "$*" = "$expected" ] || { echo "unexpected: az $*" >&2; exit 2; }
        echo "$FAKE_ENTRA_TOKEN"
        """))
    az.chmod(0o755)
    (tools / "sitecustomize.py").write_text(textwrap.dedent("""\
        import os, sys, types

        class DefaultAzureCredential:
            def get_token(self, *scopes):
                assert scopes == ("https://cognitiveservices.azure.com/.default",), scopes
                return types.SimpleNamespace(token=os.environ["FAKE_ENTRA_TOKEN"], expires_on=0)

        identity = types.ModuleType("azure.identity")
        identity.DefaultAzureCredential = DefaultAzureCredential
        sys.modules["azure.identity"] = identity
        """))
    return clean_env(PATH=f"{tools}{os.pathsep}{os.environ['PATH']}", PYTHONPATH=str(tools), FAKE_ENTRA_TOKEN=token)


@pytest.mark.parametrize(("name", "kind"), [("bfl-edit-flex", "curl"), ("bfl-edit-flex", "python"),
                                            ("images-edits", "openai")])
def test_entra_snippets_get_a_token(emu: Emulator, tmp_path: Path, name: str, kind: str) -> None:
    case = CASES[name]
    text = make(case, with_deployments(emulator_settings(emu), auth="entra", api_key=None))[kind]
    assert "AZURE_API_KEY" not in text
    if kind == "curl":
        assert "az account get-access-token --resource https://cognitiveservices.azure.com" in text
    else:
        assert 'DefaultAzureCredential().get_token("https://cognitiveservices.azure.com/.default")' in text
    run(kind, text, tmp_path, case.request.references, entra_tools(tmp_path, make_entra_token()))
    saved_image(tmp_path, case)
    check_received(emu, case, auth="entra")


# --- what a snippet must never hold ---------------------------------------------------------------------------

def all_snippets(emu: Emulator) -> list[str]:
    base = emulator_settings(emu)
    variants = [base, with_deployments(base, key_header="api-key"), replace(base, image_api_path="model")]
    return [text for settings in variants for case in CASES.values() for text in make(case, settings).values()]


def test_no_snippet_holds_the_key_or_the_image_bytes(emu: Emulator) -> None:
    texts = all_snippets(emu)
    assert len(texts) == 3 * (len(CASES) * 2 + 2)
    for text in texts:
        assert KEY not in text
        assert len(text) < 8_000  # file names, never megabytes of base64
    for case in CASES.values():
        for ref in case.request.references:
            marker = base64.b64encode(ref).decode()[40:120]
            assert not any(marker in text for text in texts)


def test_key_in_a_prompt_is_masked(emu: Emulator) -> None:
    case = CASES["images-edits"]
    leaky = Case(replace(case.request, prompt=f"a fox, key {KEY}"), case.output, case.fmt)
    for text in make(leaky, emulator_settings(emu)).values():
        assert KEY not in text
        assert "***" in text


def test_credential_headers_from_the_wire_are_replaced(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even if the wire builder put the key in a header, the snippet shows only the variable."""
    def leaky_builder(*args: Any, **kwargs: Any) -> WireRequest:
        wire = build_request(*args, **kwargs)
        return replace(wire, headers={**wire.headers, "Authorization": f"Bearer {KEY}", "api-key": KEY})

    monkeypatch.setattr(snippets_module, "build_request", leaky_builder)
    for name in CASES:
        texts = make(CASES[name], emulator_settings(emu))
        for text in texts.values():
            assert KEY not in text
        assert 'AUTH="Authorization: Bearer $' in texts["curl"] and "api-key" not in texts["curl"]


def test_entra_snippets_name_no_key(emu: Emulator) -> None:
    settings = with_deployments(emulator_settings(emu), auth="entra", api_key=None)
    for name, case in CASES.items():
        if name == "aml-schnell":
            continue  # an Azure ML endpoint is reached with its key
        texts = make(case, settings)
        assert set(texts) == ({"curl", "python", "openai"} if name.startswith("images") else {"curl", "python"})
        for kind, text in texts.items():
            assert "AZURE_API_KEY" not in text and "os.environ" not in text, kind
            expected = "az account get-access-token" if kind == "curl" else "from azure.identity import"
            assert expected in text, kind


# --- the form before generating, and reference names ------------------------------------------------------------

def test_form_snippets_match_a_validated_request(emu: Emulator) -> None:
    settings = emulator_settings(emu)
    request = GenerationRequest("FLUX.2-flex", "two foxes", (b"", b""), {"width": 512, "height": 512})
    before = form_snippets(request, settings, rng=random.Random(3))
    checked = validate(request, rng=random.Random(3))
    assert before == request_snippets(checked, settings.deployments["FLUX.2-flex"], settings)
    assert "image1.png" in before["curl"] and "image2.png" in before["python"]
    named = form_snippets(request, settings, ["fox.jpg", "den.png"], rng=random.Random(3))
    assert "base64 < fox.jpg" in named["curl"] and 'file_b64("den.png")' in named["python"]


def test_form_snippets_refuse_what_a_click_would(emu: Emulator) -> None:
    settings = replace(emulator_settings(emu), deployments={})
    with pytest.raises(ValidationError, match="not deployed"):
        form_snippets(GenerationRequest("FLUX.2-pro", "a fox"), settings)
    with pytest.raises(ValidationError):
        form_snippets(GenerationRequest("FLUX-1.1-pro", "a fox", (b"",)), emulator_settings(emu))


def test_default_reference_names_follow_each_format(emu: Emulator) -> None:
    settings = emulator_settings(emu)
    case = CASES["bfl-edit-flex"]
    plan = build_plan(validate(case.request), settings.deployments["FLUX.2-flex"], settings)
    assert [ref.name for ref in plan.references] == ["image1.png", "image2.jpg"]
    assert [ref.mime for ref in plan.references] == ["image/png", "image/jpeg"]


@pytest.mark.parametrize("names", [["one.png"], ["a.png", "$(rm -rf x).png"], ["a b.png", "c.png"],
                                   ["same.png", "same.png"], ["../up.png", "b.png"]])
def test_reference_names_are_checked(emu: Emulator, names: list[str]) -> None:
    settings = emulator_settings(emu)
    checked = validate(CASES["bfl-edit-flex"].request)
    with pytest.raises(ValueError):
        request_snippets(checked, settings.deployments["FLUX.2-flex"], settings, names)


def test_openai_only_on_the_image_api(emu: Emulator) -> None:
    settings = emulator_settings(emu)
    for name, case in CASES.items():
        has_openai = case.request.route in (Route.IMAGES_GENERATIONS, Route.IMAGES_EDITS)
        assert ("openai" in make(case, settings)) is has_openai, name


# --- failures are reported, not saved ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["curl", "python"])
@pytest.mark.parametrize("name", ["bfl-generate-pro", "aml-schnell"])
def test_a_refused_request_fails_without_an_image(emu: Emulator, tmp_path: Path, name: str, kind: str) -> None:
    case = CASES[name]
    script = tmp_path / ("request.sh" if kind == "curl" else "request.py")
    script.write_text(make(case, emulator_settings(emu))[kind], encoding="utf-8")
    command = ["bash" if kind == "curl" else sys.executable, script.name]
    env = clean_env(**{key_env(case.request.model): "not-the-key-0000000000"})
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert done.returncode != 0
    assert "HTTP 401" in done.stderr
    assert not (tmp_path / case.output).exists()


def test_curl_says_which_variable_is_missing(emu: Emulator, tmp_path: Path) -> None:
    case = CASES["aml-schnell"]
    (tmp_path / "request.sh").write_text(make(case, emulator_settings(emu))["curl"], encoding="utf-8")
    done = subprocess.run(["sh", "request.sh"], cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S)
    assert done.returncode != 0 and "FLUX_SCHNELL_KEY" in done.stderr
    assert emu.requests() == []
