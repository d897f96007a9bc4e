"""The project's client against the emulator over loopback: every model, route, response
shape and error of the contract, as the app meets them."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from types import SimpleNamespace

import pytest
from PIL import Image

from conftest import FAST, MULTI_REFERENCE_MODELS, solid_image
from emulator_fixtures import *  # noqa: F403  (fixtures: emu, http, module_emulator)
from emulator_fixtures import own_emulator, sample_bytes
from flux_ui import errors as e
from flux_ui.client import FoundryClient, GenerationRequest, ProgressEvent
from flux_ui.emulator import Emulator, Fault
from flux_ui.pacing import Quota
from flux_ui.registry import MODELS, Route
from flux_ui.settings import load_settings


def client_for(emu: Emulator, quotas: dict[str, Quota] | None = None, **options: object) -> FoundryClient:
    settings = load_settings({}, dotenv_path=None).with_emulator(emu.base_url, emu.api_key, {**FAST, **(quotas or {})})
    return FoundryClient(settings, **options)  # type: ignore[arg-type]


def req(model: str, prompt: str = "a lighthouse at dusk", refs: list[bytes] | None = None,
        route: Route | None = None, **params: object) -> GenerationRequest:
    return GenerationRequest(model, prompt, refs or [], params, route)


def generation_log(emu: Emulator) -> list[dict]:
    return [r for r in emu.requests() if r["route"] not in ("poll", "delivery")]


@pytest.mark.parametrize(("model", "params", "size"), [
    ("FLUX.2-pro", {"width": 1000, "height": 760}, (992, 752)),
    ("FLUX.2-flex", {"guidance": 2.5, "steps": 12, "prompt_upsampling": False}, (1024, 1024)),
    ("FLUX.1-Kontext-pro", {"aspect_ratio": "16:9"}, None),
    ("FLUX-1.1-pro", {"width": 1440, "height": 736}, (1440, 736)),
    ("FLUX.1-schnell", {"width": 768, "height": 512, "num_inference_steps": 2}, (768, 512)),
])
async def test_every_model_on_its_native_route(emu: Emulator, model: str, params: dict, size: tuple | None) -> None:
    async with client_for(emu) as client:
        result = await client.generate(req(model, seed=99, **params))
    logged = generation_log(emu)[-1]
    assert logged["status"] == 200 and logged["model"] == model
    assert logged["route"] == ("aml" if model == "FLUX.1-schnell" else "bfl")
    assert logged["params"]["seed"] == 99 and result.seed == 99
    for name, value in params.items():
        assert logged["params"][name] == (value if name not in ("width", "height") else logged["params"][name])
    if size:
        assert result.size == size == (logged["output"]["width"], logged["output"]["height"])
    else:
        assert result.size[0] > result.size[1]  # Kontext 16:9 is landscape
    img = Image.open(io.BytesIO(result.image))
    assert img.size == result.size and img.format.lower() == result.format.replace("jpg", "jpeg")


async def test_seeds_and_prompts_make_visibly_different_images(emu: Emulator) -> None:
    async with client_for(emu) as client:
        a = await client.generate(req("FLUX.2-pro", seed=1))
        b = await client.generate(req("FLUX.2-pro", seed=1))
        c = await client.generate(req("FLUX.2-pro", seed=2))
    assert a.image == b.image and a.image != c.image


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp"])
async def test_schnell_formats_by_accept(emu: Emulator, fmt: str) -> None:
    async with client_for(emu) as client:
        result = await client.generate(req("FLUX.1-schnell", output_format=fmt))
    assert result.format == fmt


@pytest.mark.parametrize("path_form", ["deployment", "model"])
@pytest.mark.parametrize("model", [m for m in MODELS if "generations" in MODELS[m].image_api])
async def test_image_api_generations_both_path_forms(emu: Emulator, path_form: str, model: str) -> None:
    settings = load_settings({"FLUX_IMAGE_API_PATH": path_form}, dotenv_path=None)
    settings = settings.with_emulator(emu.base_url, emu.api_key, FAST)
    from dataclasses import replace

    settings = replace(settings, image_api_path=path_form)
    async with FoundryClient(settings) as client:
        result = await client.generate(req(model, route=Route.IMAGES_GENERATIONS))
    logged = generation_log(emu)[-1]
    assert logged["route"] == "images/generations" and logged["status"] == 200
    expected = "/openai/deployments/" if path_form == "deployment" else "/openai/images/"
    assert logged["path"].startswith(expected)
    assert result.route is Route.IMAGES_GENERATIONS and result.size[0] >= 256


async def test_kontext_edit_on_the_image_api_and_the_url_result_switch(emu: Emulator) -> None:
    emu.configure(image_api_result="url")
    async with client_for(emu) as client:
        result = await client.generate(req("FLUX.1-Kontext-pro", "make it night", [sample_bytes("chelsea.png")],
                                           Route.IMAGES_EDITS))
    routes = [r["route"] for r in emu.requests()]
    assert routes == ["images/edits", "delivery"]  # the link was fetched at once
    assert generation_log(emu)[-1]["references"][0]["index"] == 1
    assert result.route is Route.IMAGES_EDITS and Image.open(io.BytesIO(result.image)).size == result.size


async def test_kontext_edit_on_the_bfl_route_matches_the_input_shape(emu: Emulator) -> None:
    async with client_for(emu) as client:
        result = await client.generate(req("FLUX.1-Kontext-pro", "add a hat", [sample_bytes("rocket.jpg")]))
    rocket = Image.open(io.BytesIO(sample_bytes("rocket.jpg")))
    assert (result.size[0] > result.size[1]) == (rocket.width > rocket.height)


@pytest.mark.parametrize(("model", "count"), [(m, MODELS[m].max_references) for m in MULTI_REFERENCE_MODELS])
async def test_references_arrive_in_the_order_given(emu: Emulator, model: str, count: int) -> None:
    colours = [(int(255 * i / (count - 1)), 40, 255 - int(255 * i / (count - 1))) for i in range(count)]
    async with client_for(emu) as client:
        await client.generate(req(model, "blend them", [solid_image(c) for c in colours]))
    refs = generation_log(emu)[-1]["references"]
    assert [r["index"] for r in refs] == list(range(1, count + 1))
    for ref, colour in zip(refs, colours, strict=True):
        assert all(abs(a - b) <= 3 for a, b in zip(ref["mean_rgb"], colour, strict=True))


async def test_big_photos_are_downscaled_before_sending(emu: Emulator) -> None:
    big = io.BytesIO()
    Image.open(io.BytesIO(sample_bytes("astronaut.png"))).convert("RGB").resize((3000, 2000)).save(big, "JPEG")
    async with client_for(emu) as client:
        result = await client.generate(req("FLUX.2-pro", "astronaut", [big.getvalue()]))
    ref = generation_log(emu)[-1]["references"][0]
    assert ref["width"] * ref["height"] <= 2048 * 2048 and ref["width"] % 16 == 0 and ref["height"] % 16 == 0
    assert result.references[0].startswith(f"<image 1: {ref['width']}×{ref['height']}")


async def test_polling_flow(emu: Emulator) -> None:
    emu.configure(bfl_style="polling")
    async with client_for(emu, poll_interval_s=0.01) as client:
        result = await client.generate(req("FLUX.2-pro", seed=5))
    routes = [r["route"] for r in emu.requests()]
    assert routes[0] == "bfl" and "poll" in routes and routes[-1] == "delivery"
    assert result.seed == 5 and Image.open(io.BytesIO(result.image)).size == (1024, 1024)


async def test_polling_flow_with_an_expired_link(emu: Emulator) -> None:
    emu.configure(bfl_style="polling")
    emu.set_faults("FLUX.2-pro", [Fault("expire_url", count=1)])
    async with client_for(emu, poll_interval_s=0.01) as client:
        with pytest.raises(e.GenerationFailedError, match="expired"):
            await client.generate(req("FLUX.2-pro"))
    assert [r["route"] for r in emu.requests()].count("bfl") == 1  # not re-billed behind the person's back


@pytest.mark.parametrize(("model", "route"), [
    ("FLUX.2-pro", None), ("FLUX.1-Kontext-pro", Route.IMAGES_GENERATIONS), ("FLUX-1.1-pro", None),
])
async def test_content_refusal_on_each_route(emu: Emulator, model: str, route: Route | None) -> None:
    async with client_for(emu) as client:
        with pytest.raises(e.ContentRefusedError, match="Rephrase"):
            await client.generate(req(model, "please refuse-me now", route=route))
    assert len(generation_log(emu)) == 1  # a refusal is not retried


async def test_a_self_hosted_schnell_has_no_moderation(emu: Emulator) -> None:
    async with client_for(emu) as client:
        result = await client.generate(req("FLUX.1-schnell", "please refuse-me now"))
    assert result.attempts == 1


async def test_refusal_as_finish_reason(emu: Emulator) -> None:
    emu.configure(refuse_style="finish_reason")
    try:
        async with client_for(emu) as client:
            with pytest.raises(e.ContentRefusedError):
                await client.generate(req("FLUX.2-pro", "refuse-me"))
    finally:
        emu.configure(refuse_style="status")
    assert len(generation_log(emu)) == 1


async def test_wrong_key_is_401_and_not_retried(emu: Emulator) -> None:
    async with client_for(emu) as client:
        emu.rotate_key("rotated-key-0000000000")
        with pytest.raises(e.AuthenticationError, match="AZURE_API_KEY"):
            await client.generate(req("FLUX.2-pro"))
    assert len(generation_log(emu)) == 1 and generation_log(emu)[0]["status"] == 401


async def test_a_deployment_that_does_not_exist_is_404(emu: Emulator) -> None:
    settings = load_settings({"AZURE_ENDPOINT": emu.base_url, "AZURE_API_KEY": emu.api_key,
                              "FLUX_DEPLOYMENTS": "FLUX.2-pro=not-deployed:1000/1s"}, dotenv_path=None)
    async with FoundryClient(settings) as client:
        with pytest.raises(e.DeploymentNotFoundError, match="not-deployed"):
            await client.generate(req("FLUX.2-pro"))


async def test_wrong_api_version_is_a_clear_404(emu: Emulator) -> None:
    settings = load_settings({"AZURE_ENDPOINT": emu.base_url, "AZURE_API_KEY": emu.api_key,
                              "FLUX_API_VERSION": "2024-01-01", "FLUX_DEPLOYMENTS": "FLUX.2-pro:1000/1s"},
                             dotenv_path=None)
    async with FoundryClient(settings) as client:
        with pytest.raises(e.ServiceError) as info:
            await client.generate(req("FLUX.2-pro"))
    assert info.value.status in (400, 404)


@pytest.mark.parametrize("status", [500, 502, 503, 408, 409])
async def test_transient_statuses_are_retried_to_success(emu: Emulator, status: int) -> None:
    emu.set_faults("FLUX.2-pro", [Fault("status", status=status, count=2)])
    async with client_for(emu, sleep=_no_sleep) as client:
        result = await client.generate(req("FLUX.2-pro"))
    assert result.attempts == 3 and [r["status"] for r in generation_log(emu)] == [status, status, 200]


@pytest.mark.parametrize("kind", ["drop", "empty", "malformed"])
async def test_broken_answers_are_retried_to_success(emu: Emulator, kind: str) -> None:
    emu.set_faults("FLUX.2-pro", [Fault(kind, count=1)])  # type: ignore[arg-type]
    async with client_for(emu, sleep=_no_sleep) as client:
        result = await client.generate(req("FLUX.2-pro"))
    assert result.attempts == 2 and len(generation_log(emu)) == 2


async def test_a_fault_that_never_clears_gives_up_after_three_attempts(emu: Emulator) -> None:
    emu.set_faults("FLUX.2-pro", [Fault("status", status=503)])
    async with client_for(emu, sleep=_no_sleep) as client:
        with pytest.raises(e.ServerError, match="after 3 attempts"):
            await client.generate(req("FLUX.2-pro"))
    assert len(generation_log(emu)) == 3  # no retry storm


async def test_trickling_body_still_arrives(emu: Emulator) -> None:
    emu.set_faults("FLUX.2-pro", [Fault("trickle", seconds=0.4, count=1)])
    async with client_for(emu) as client:
        result = await client.generate(req("FLUX.2-pro"))
    assert result.attempts == 1 and result.timings.network_s >= 0.35


async def test_latency_beyond_the_deadline_is_overdue_and_the_billed_image_still_arrives() -> None:
    # Its own emulator: the answer comes after the deadline, and is billed: the client says "overdue" on time,
    # keeps waiting, and hands the image over instead of throwing it away.
    with own_emulator(faults={"FLUX.2-pro": [Fault("latency", seconds=1.0, count=1)]}) as emu:
        events: list[ProgressEvent] = []
        start = time.monotonic()
        async with client_for(emu, deadline_s=0.5) as client:
            result = await client.generate(req("FLUX.2-pro"), events.append)
        assert 0.9 < time.monotonic() - start < 2.5
        assert [r["status"] for r in generation_log(emu)] == [200] and result.image
    overdue = [ev for ev in events if ev.stage == "overdue"]
    assert len(overdue) == 1 and 0.45 < overdue[0].elapsed_s < 0.9


async def test_429_with_retry_after_is_waited_out(emu: Emulator) -> None:
    emu.set_faults("FLUX.2-pro", [Fault("status", status=429, retry_after=True, retry_after_s=0.2, count=1)])
    async with client_for(emu) as client:
        result = await client.generate(req("FLUX.2-pro"))
    assert result.attempts == 2 and result.timings.paced_s >= 0.15


async def test_429_without_retry_after_backs_off(emu: Emulator) -> None:
    emu.set_faults("FLUX.2-pro", [Fault("status", status=429, retry_after=False, count=1)])
    async with client_for(emu) as client:
        result = await client.generate(req("FLUX.2-pro"))
    assert result.attempts == 2


async def test_a_429_longer_than_the_cap_is_a_quota_wall(emu: Emulator) -> None:
    emu.set_faults("FLUX.2-pro", [Fault("status", status=429, retry_after=True, retry_after_s=600)])
    async with client_for(emu) as client:
        with pytest.raises(e.QuotaExhaustedError, match="600 s"):
            await client.generate(req("FLUX.2-pro"))
    assert len(generation_log(emu)) == 1


async def test_pacing_to_the_same_quota_draws_no_429() -> None:
    """With the emulator enforcing a short window and the client pacing to it, a burst
    larger than the window is spread out and the service never refuses a request."""
    quota = Quota(4, 1.0)
    with own_emulator(quotas={"FLUX.2-pro": quota}, enforce_quotas=True) as emu:
        async with client_for(emu, {"FLUX.2-pro": quota}) as client:
            results = await asyncio.gather(*(client.generate(req("FLUX.2-pro", seed=i)) for i in range(10)))
        statuses = [r["status"] for r in generation_log(emu)]
    assert statuses == [200] * 10 and all(r.attempts == 1 for r in results)
    assert max(r.timings.paced_s for r in results) >= 1.9  # the third batch of four waited two windows


async def test_without_pacing_the_quota_answers_429_and_the_client_recovers() -> None:
    with own_emulator(quotas={"FLUX.2-pro": Quota(2, 0.5)}, enforce_quotas=True) as emu:
        async with client_for(emu, {"FLUX.2-pro": Quota(1000, 1.0)}) as client:
            results = await asyncio.gather(*(client.generate(req("FLUX.2-pro", seed=i)) for i in range(4)))
        statuses = [r["status"] for r in generation_log(emu)]
    assert 429 in statuses and len(results) == 4  # refused at first, then waited out


def _jwt(exp: float) -> str:
    def part(data: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part({'aud': 'https://cognitiveservices.azure.com', 'exp': int(exp)})}.sig"


class JwtCredential:
    def __init__(self, lifetimes: list[float]) -> None:
        self.lifetimes = lifetimes
        self.calls = 0

    def get_token(self, *scopes: str, **_: object) -> SimpleNamespace:
        lifetime = self.lifetimes[min(self.calls, len(self.lifetimes) - 1)]
        self.calls += 1
        exp = time.time() + lifetime
        # expires_on as the credential reports it: a stale token looks fresh to the cache
        return SimpleNamespace(token=_jwt(exp), expires_on=time.time() + 3600)


async def test_entra_tokens_and_one_expiring_mid_session(emu: Emulator) -> None:
    settings = load_settings({"AZURE_ENDPOINT": emu.base_url, "AZURE_AUTH": "entra",
                              "FLUX_DEPLOYMENTS": "FLUX.2-pro:1000/1s"}, dotenv_path=None)
    cred = JwtCredential([-10, 3600])  # the first token has already expired at the service
    async with FoundryClient(settings, credential=cred) as client:
        result = await client.generate(req("FLUX.2-pro"))
    assert result.attempts == 2 and cred.calls == 2
    assert [r["auth"] for r in generation_log(emu)] == ["bad", "entra"]


async def test_schnell_square_only_endpoint(emu: Emulator) -> None:
    emu.configure(schnell_square_only=True)
    async with client_for(emu) as client:
        with pytest.raises(e.BadRequestError, match="schnell endpoint"):
            await client.generate(req("FLUX.1-schnell", width=768, height=512))
        assert (await client.generate(req("FLUX.1-schnell", width=512, height=512))).size == (512, 512)


@pytest.mark.parametrize(("model", "count"), [(m, spec.max_references + 1) for m, spec in MODELS.items()])
async def test_refusals_before_sending_leave_the_log_empty(emu: Emulator, model: str, count: int) -> None:
    async with client_for(emu) as client:
        with pytest.raises(e.ValidationError):
            await client.generate(req(model, refs=[solid_image((1, 2, 3))] * count))
    assert emu.requests() == []


async def _no_sleep(_: float) -> None:
    return None


@pytest.mark.parametrize(("status", "kind"), [(400, e.BadRequestError), (403, e.PermissionDeniedError),
                                              (422, e.BadRequestError)])
async def test_final_statuses_are_reported_once(emu: Emulator, status: int, kind: type[e.ServiceError]) -> None:
    emu.set_faults("FLUX.2-pro", [Fault("status", status=status, count=1)])
    async with client_for(emu) as client:
        with pytest.raises(kind) as info:
            await client.generate(req("FLUX.2-pro"))
    assert type(info.value) is kind and info.value.status == status
    assert len(generation_log(emu)) == 1


@pytest.mark.parametrize(("model", "route", "params"), [
    ("FLUX.1-Kontext-pro", Route.IMAGES_GENERATIONS, {"aspect_ratio": "16:9", "output_format": "png"}),
    ("FLUX.1-schnell", Route.AML, {"width": 768, "height": 512, "num_inference_steps": 2, "output_format": "jpeg"}),
])
async def test_history_keeps_the_models_own_parameters_not_the_routes_body(
        emu: Emulator, tmp_path: object, model: str, route: Route, params: dict) -> None:
    """The Image API body says ``size`` and the Azure ML one nests ``parameters`` and sends the format as
    Accept; what is stored is what was validated, by the names the model's controls use."""
    from flux_ui.history import settings_of

    async with client_for(emu) as client:
        result = await client.generate(req(model, route=route, **params))
    stored = settings_of(result, "text-to-image")["params"]
    assert {k: stored[k] for k in params} == params
    assert not {"size", "n", "parameters", "inputs", "accept", "model", "prompt"} & set(stored)
    assert result.params_sent != stored  # the wire body differs, and is for display only
