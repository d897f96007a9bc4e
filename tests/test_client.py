"""FoundryClient against a scripted service (httpx.MockTransport): every route, response
shape, status and retry path of the contract, without monkeypatching httpx."""

from __future__ import annotations

import asyncio
import base64
import io
import json

import httpx
import pytest
from PIL import Image

from conftest import ENDPOINT, KEY, FakeClock, FakeCredential, FakeService, bfl_ok, foundry_env, solid_image
from flux_ui import errors as e
from flux_ui.client import FoundryClient, GenerationRequest, ProgressEvent
from flux_ui.pacing import Quota, pacing_margin
from flux_ui.registry import MODELS, Route
from flux_ui.settings import load_settings

#: The small photo most of these tests send and receive.
JPEG = solid_image(size=(64, 48), fmt="JPEG")


def make_client(fake: FakeService, clock: FakeClock | None = None, **env: str) -> FoundryClient:
    """A client on a fake clock: its waits (backoff, pacing, polling) take no real time."""
    settings = load_settings(foundry_env(**env), dotenv_path=None)
    clock = clock or FakeClock()
    return FoundryClient(settings, transport=fake.transport, sleep=clock.sleep, clock=clock, deadline_s=30)


def req(model: str = "FLUX.2-pro", prompt: str = "a red fox", refs: list[bytes] | None = None,
        route: Route | None = None, **params: object) -> GenerationRequest:
    return GenerationRequest(model, prompt, refs or [], params, route)


def error(status: int, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


async def test_bfl_text_to_image(fake: FakeService) -> None:
    png = solid_image(size=(1024, 768))
    fake.handler = lambda r: bfl_ok(png, cost=3, input_mp=0.0, output_mp=0.79, total_pixels=786432)
    events: list[ProgressEvent] = []
    settings = load_settings(foundry_env(), dotenv_path=None)
    async with FoundryClient(settings, transport=fake.transport) as client:  # the real clock, for timings
        result = await client.generate(req(seed=42, width=1024, height=768, output_format="png"), events.append)
    sent = fake.requests[0]
    assert sent.method == "POST"
    assert sent.url.path == "/providers/blackforestlabs/v1/flux-2-pro"
    assert sent.url.params["api-version"] == "preview"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert fake.body() == {"model": "FLUX.2-pro", "prompt": "a red fox", "seed": 42, "safety_tolerance": 2,
                           "output_format": "png", "width": 1024, "height": 768}
    assert result.image == png and result.info.format == "png" and result.size == (1024, 768)
    assert result.seed == 42 and result.service_cost == 3 and result.output_mp == 0.79
    assert result.cost_estimate_usd == pytest.approx(0.03 * 1024 * 768 / 1e6)
    assert result.params_sent == fake.body() and result.attempts == 1 and result.route is Route.BFL
    assert result.timings.total_s >= result.timings.network_s > 0
    assert [ev.stage for ev in events] == ["sent", "done"]


async def test_api_key_header_style(fake: FakeService) -> None:
    async with make_client(fake, FLUX_KEY_HEADER="api-key") as client:
        await client.generate(req())
    headers = fake.requests[0].headers
    assert headers["api-key"] == KEY and "authorization" not in headers


async def test_deployment_name_goes_in_the_body(fake: FakeService) -> None:
    async with make_client(fake, FLUX_DEPLOYMENTS="FLUX.2-flex=team-flex:1000/1s") as client:
        await client.generate(req("FLUX.2-flex", guidance=3.5, steps=20))
    body = fake.body()
    assert fake.requests[0].url.path.endswith("/flux-2-flex")
    assert body["model"] == "team-flex" and body["guidance"] == 3.5 and body["steps"] == 20


async def test_references_are_sent_in_order_as_input_image_n(fake: FakeService) -> None:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    refs = [solid_image(c, (320, 240)) for c in colours]
    async with make_client(fake) as client:
        result = await client.generate(req("FLUX.2-flex", refs=refs))
    body = fake.body()
    assert [k for k in body if k.startswith("input_image")] == ["input_image", "input_image_2", "input_image_3"]
    for key, colour in zip(["input_image", "input_image_2", "input_image_3"], colours, strict=True):
        img = Image.open(io.BytesIO(base64.b64decode(body[key]))).convert("RGB")
        got = img.getpixel((img.width // 2, img.height // 2))
        assert all(abs(a - b) < 8 for a, b in zip(got, colours[colours.index(colour)], strict=True))
    assert len(result.references) == 3 and result.references[0].startswith("<image 1: 320×240")
    assert "base64" not in json.dumps(result.params_sent) and len(json.dumps(result.params_sent)) < 2000


async def test_polling_flow_downloads_the_result_at_once(fake: FakeService) -> None:
    jpeg = solid_image(size=(800, 600), fmt="JPEG")
    polls = {"n": 0}

    def handler(r: httpx.Request) -> httpx.Response:
        if r.method == "POST":
            return httpx.Response(200, json={"id": "task-1", "polling_url": f"{ENDPOINT}/v1/get_result?id=task-1"})
        if r.url.path == "/v1/get_result":
            polls["n"] += 1
            if polls["n"] < 3:
                return httpx.Response(200, json={"id": "task-1", "status": "Pending"})
            return httpx.Response(200, json={"id": "task-1", "status": "Ready",
                                             "result": {"sample": "https://delivery-eu1.bfl.ai/r/1.jpg?sig=x",
                                                        "seed": 1234}})
        assert r.url.host == "delivery-eu1.bfl.ai"
        return httpx.Response(200, content=jpeg, headers={"content-type": "image/jpeg"})

    fake.handler = handler
    clock = FakeClock()
    async with make_client(fake, clock) as client:
        result = await client.generate(req("FLUX.1-Kontext-pro"))
    assert result.image == jpeg and polls["n"] == 3
    assert fake.requests[1].headers["authorization"] == f"Bearer {KEY}"  # polling on the service's host
    assert "authorization" not in fake.requests[-1].headers  # the signed link gets no key
    assert len(clock.waits) == 2 and clock.waits[1] > clock.waits[0]


@pytest.mark.parametrize(("status", "kind"), [("Request Moderated", e.ContentRefusedError),
                                              ("Content Moderated", e.ContentRefusedError),
                                              ("Task not found", e.GenerationFailedError)])
async def test_polling_end_states(fake: FakeService, status: str, kind: type[Exception]) -> None:
    fake.queue = [httpx.Response(200, json={"id": "t", "polling_url": f"{ENDPOINT}/v1/get_result?id=t"}),
                  httpx.Response(200, json={"id": "t", "status": status})]
    async with make_client(fake) as client:
        with pytest.raises(kind):
            await client.generate(req())
    assert len(fake.requests) == 2


async def test_url_result_in_data(fake: FakeService) -> None:
    jpeg = JPEG
    fake.queue = [httpx.Response(200, json={"data": [{"url": "https://x.blob.core.windows.net/r.jpg?se=1"}]}),
                  httpx.Response(200, content=jpeg)]
    async with make_client(fake) as client:
        result = await client.generate(req())
    assert result.image == jpeg and fake.requests[1].url.host == "x.blob.core.windows.net"


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data", "https://10.0.0.5/r.jpg",
                                 "https://evil.example.com/r.jpg", "http://x.blob.core.windows.net/r.jpg"])
async def test_result_links_off_the_service_are_not_fetched(fake: FakeService, url: str) -> None:
    fake.queue = [httpx.Response(200, json={"data": [{"url": url}]})] * 3
    async with make_client(fake) as client:
        with pytest.raises(e.MalformedResponseError, match="did not fetch"):
            await client.generate(req())
    assert all(r.method == "POST" for r in fake.requests)


async def test_expired_result_link(fake: FakeService) -> None:
    fake.queue = [httpx.Response(200, json={"data": [{"url": "https://x.blob.core.windows.net/r.jpg"}]}),
                  httpx.Response(403, text="<Error><Code>AuthenticationFailed</Code></Error>")]
    async with make_client(fake) as client:
        with pytest.raises(e.GenerationFailedError, match="expired"):
            await client.generate(req())
    assert len(fake.requests) == 2  # not re-generated (and re-billed) behind the person's back


@pytest.mark.parametrize("form", ["deployment", "model"])
async def test_image_api_generations_both_path_forms(fake: FakeService, form: str) -> None:
    fake.handler = lambda r: httpx.Response(200, json={"created": 1, "data": [{
        "url": None, "b64_json": base64.b64encode(solid_image(size=(1024, 768), fmt="JPEG")).decode(),
        "revised_prompt": None,
        "content_filter_results": {"sexual": {"filtered": False, "severity": "safe"}}}]})
    async with make_client(fake, FLUX_IMAGE_API_PATH=form) as client:
        result = await client.generate(req("FLUX-1.1-pro", route=Route.IMAGES_GENERATIONS))
    sent = fake.requests[0]
    body = fake.body()
    if form == "deployment":
        assert sent.url.path == "/openai/deployments/FLUX-1.1-pro/images/generations" and "model" not in body
    else:
        assert sent.url.path == "/openai/images/generations" and body["model"] == "FLUX-1.1-pro"
    assert sent.url.params["api-version"] == "preview"
    assert body["size"] == "1024x768" and body["n"] == 1 and body["prompt"] == "a red fox"
    assert "seed" not in body and result.seed is None and result.size == (1024, 768)


async def test_image_api_edits_is_multipart(fake: FakeService) -> None:
    encoded = base64.b64encode(JPEG).decode()
    fake.handler = lambda r: httpx.Response(200, json={"data": [{"b64_json": encoded}]})
    ref = solid_image((0, 0, 255), (640, 480))
    async with make_client(fake) as client:
        await client.generate(req("FLUX.1-Kontext-pro", prompt="make it night", refs=[ref], route=Route.IMAGES_EDITS,
                                  aspect_ratio="1:1"))
    sent = fake.requests[0]
    assert sent.url.path == "/openai/deployments/FLUX.1-Kontext-pro/images/edits"
    assert sent.headers["content-type"].startswith("multipart/form-data")
    content = sent.content
    for field_text in (b'name="prompt"', b"make it night", b'name="n"', b'name="size"', b"1024x1024",
                       b'name="image"; filename="image.jpg"'):
        assert field_text in content


async def test_schnell_on_azure_ml(fake: FakeService) -> None:
    png = solid_image(size=(512, 512))
    fake.handler = lambda r: httpx.Response(200, content=png, headers={"content-type": "image/png"})
    async with make_client(fake) as client:
        result = await client.generate(req("FLUX.1-schnell", width=512, height=512, seed=3))
    sent = fake.requests[0]
    assert str(sent.url) == "https://schnell.eastus.inference.ml.azure.com/score"
    assert sent.headers["accept"] == "image/png" and sent.headers["authorization"] == "Bearer schnell-key-9a8b7c6d"
    assert fake.body() == {"inputs": "a red fox", "parameters": {"seed": 3, "num_inference_steps": 4,
                                                                 "guidance_scale": 0.0, "width": 512, "height": 512}}
    assert result.image == png and result.size == (512, 512) and result.seed == 3


async def test_schnell_negative_prompt_and_jpeg_accept(fake: FakeService) -> None:
    fake.handler = lambda r: httpx.Response(200, content=JPEG, headers={"content-type": "image/jpeg"})
    async with make_client(fake) as client:
        await client.generate(req("FLUX.1-schnell", negative_prompt="blur", output_format="jpeg"))
    assert fake.requests[0].headers["accept"] == "image/jpeg"
    assert fake.body()["parameters"]["negative_prompt"] == "blur"


# --- errors -------------------------------------------------------------------------------

REFUSALS = [
    (400, {"error": {"code": "content_filter", "message": "blocked: BingBlockList_Prompt"}}),
    (400, {"error": {"code": "content_safety_violation", "message": "x"}}),
    (400, {"error": {"code": "contentFilter", "message": "Your task failed as a result of our safety system."}}),
    (400, {"error": {"code": "content_policy_violation", "message": "x"}}),
    (400, {"error": {"code": "moderation_blocked", "message": "x"}}),
    (400, {"error": {"code": "invalid_request", "message": "x",
                     "innererror": {"code": "ResponsibleAIPolicyViolation"}}}),
    (400, {"error": {"message": "Request Moderated"}}),
]


@pytest.mark.parametrize(("status", "body"), REFUSALS)
async def test_content_refusals_are_their_own_kind_and_not_retried(fake: FakeService, status: int, body: dict) -> None:
    fake.handler = lambda r: error(status, body)
    async with make_client(fake) as client:
        with pytest.raises(e.ContentRefusedError) as info:
            await client.generate(req())
    assert len(fake.requests) == 1 and "Rephrase" in str(info.value)


async def test_finish_reason_content_filter_is_a_refusal(fake: FakeService) -> None:
    fake.handler = lambda r: httpx.Response(200, json={"data": [{"finish_reason": "content_filter"}]})
    async with make_client(fake) as client:
        with pytest.raises(e.ContentRefusedError):
            await client.generate(req())
    assert len(fake.requests) == 1


STATUSES = [
    (400, {"error": {"code": "invalid_parameter", "message": "width bad"}}, e.BadRequestError, "width bad", 1),
    (422, {"detail": [{"loc": ["body", "steps"], "msg": "must be <= 50", "type": "value_error"}]},
     e.BadRequestError, "steps: must be <= 50", 1),
    (401, {"error": {"code": "401", "message": "Access denied due to invalid subscription key or wrong API endpoint."}},
     e.AuthenticationError, "AZURE_API_KEY", 1),
    (403, {"error": {"code": "Forbidden", "message": "no"}}, e.PermissionDeniedError, "Cognitive Services User", 1),
    (404, {"error": {"code": "DeploymentNotFound", "message": "gone"}}, e.DeploymentNotFoundError,
     "FLUX_DEPLOYMENTS=FLUX.2-pro=my-deployment", 1),
    (408, {"error": {"code": "Timeout", "message": "slow"}}, e.RequestTimeoutError, "timed out", 3),
    (409, {"error": {"code": "Conflict", "message": "busy"}}, e.ConflictError, "conflict", 3),
    (429, {"error": {"code": "429", "message": "Rate limit."}}, e.RateLimitError, "quota", 3),
    (500, {"error": {"code": "InternalServerError", "message": "oops"}}, e.ServerError, "HTTP 500", 3),
    (502, {"error": {"code": "BadGateway", "message": "oops"}}, e.ServerError, "HTTP 502", 3),
    (503, {"error": {"code": "ServiceUnavailable", "message": "oops"}}, e.ServerError, "HTTP 503", 3),
]


@pytest.mark.parametrize(("status", "body", "kind", "words", "attempts"), STATUSES)
async def test_every_status_maps_to_its_error(fake: FakeService, status: int, body: dict, kind: type[e.ServiceError],
                                              words: str, attempts: int) -> None:
    fake.handler = lambda r: error(status, body)
    clock = FakeClock()
    async with make_client(fake, clock) as client:
        with pytest.raises(kind) as info:
            await client.generate(req())
    assert type(info.value) is kind and info.value.status == status
    assert words in str(info.value)
    assert len(fake.requests) == attempts and len(clock.waits) == attempts - 1
    if attempts > 1:
        assert f"after {attempts} attempts" in str(info.value)


async def test_schnell_400_carries_the_toolkits_message(fake: FakeService) -> None:
    fake.handler = lambda r: error(400, {"error": "height must be divisible by 16"})
    async with make_client(fake) as client:
        with pytest.raises(e.BadRequestError, match="divisible by 16"):
            await client.generate(req("FLUX.1-schnell"))


async def test_retry_then_success(fake: FakeService) -> None:
    fake.queue = [error(503, {"error": {"code": "x", "message": "y"}}), error(502, {}), bfl_ok()]
    clock = FakeClock()
    events: list[ProgressEvent] = []
    async with make_client(fake, clock) as client:
        result = await client.generate(req(), events.append)
    assert result.attempts == 3 and len(fake.requests) == 3
    assert clock.waits[0] <= 0.5 and clock.waits[1] <= 1.0 and clock.waits[1] >= 0.75
    assert [ev.stage for ev in events].count("retrying") == 2
    assert result.timings.retry_wait_s == pytest.approx(sum(clock.waits))


async def test_429_honours_retry_after_and_holds_the_deployment_back(fake: FakeService) -> None:
    fake.queue = [error(429, {"error": {"code": "429", "message": "slow down"}}, {"Retry-After": "2"}), bfl_ok()]
    clock = FakeClock()
    events: list[ProgressEvent] = []
    async with make_client(fake, clock) as client:
        result = await client.generate(req(), events.append)
    assert clock.waits == [pytest.approx(2.0)]  # waited once, in the deployment's pacer
    assert result.timings.paced_s == pytest.approx(2.0)
    assert "429 from the service; retrying in 2.0 s, attempt 2 of 3" in next(ev.message for ev in events
                                                                              if ev.stage == "retrying")


async def test_429_retry_after_ms(fake: FakeService) -> None:
    fake.queue = [error(429, {}, {"retry-after-ms": "250"}), bfl_ok()]
    clock = FakeClock()
    async with make_client(fake, clock) as client:
        await client.generate(req())
    assert clock.waits == [pytest.approx(0.25)]


async def test_quota_wall_is_not_waited_out(fake: FakeService) -> None:
    fake.handler = lambda r: error(429, {"error": {"code": "429", "message": "x"}}, {"Retry-After": "3600"})
    async with make_client(fake) as client:
        with pytest.raises(e.QuotaExhaustedError, match="3600 s") as info:
            await client.generate(req())
    assert len(fake.requests) == 1 and info.value.retry_after == 3600


async def test_an_outage_asking_a_long_wait_is_not_called_a_spent_quota(fake: FakeService) -> None:
    fake.handler = lambda r: error(503, {"error": {"code": "ServiceUnavailable", "message": "Busy."}},
                                   {"Retry-After": "1800"})
    async with make_client(fake) as client:
        with pytest.raises(e.ServiceError) as info:
            await client.generate(req())
    assert not isinstance(info.value, e.QuotaExhaustedError) and "quota" not in str(info.value).lower()
    assert "1800 s" in str(info.value) and "try again in 30 min" in str(info.value)
    assert len(fake.requests) == 1


@pytest.mark.parametrize("bad", [
    httpx.Response(200, json={"data": [{}]}),
    httpx.Response(200, json={"data": []}),
    httpx.Response(200, content=b"{not json"),
    httpx.Response(200, json={"data": [{"b64_json": "!!!not base64!!!"}]}),
    httpx.Response(200, json={"data": [{"b64_json": base64.b64encode(JPEG[:100]).decode()}]}),
])
async def test_empty_or_unreadable_answers_are_retried(fake: FakeService, bad: httpx.Response) -> None:
    fake.queue = [bad, bfl_ok()]
    async with make_client(fake) as client:
        result = await client.generate(req())
    assert result.attempts == 2


async def test_empty_answers_give_up_with_a_clear_message(fake: FakeService) -> None:
    fake.handler = lambda r: httpx.Response(200, json={"data": [{}]})
    async with make_client(fake) as client:
        with pytest.raises(e.EmptyResultError, match="without an image"):
            await client.generate(req())
    assert len(fake.requests) == 3


async def test_connection_errors_are_retried(fake: FakeService) -> None:
    fake.queue = [httpx.ConnectError("refused"), httpx.RemoteProtocolError("dropped"), bfl_ok()]
    async with make_client(fake) as client:
        result = await client.generate(req())
    assert result.attempts == 3


async def test_connection_that_never_works(fake: FakeService) -> None:
    fake.handler = None
    fake.queue = [httpx.ConnectError("refused")] * 3
    async with make_client(fake) as client:
        with pytest.raises(e.ServiceConnectionError, match="Could not connect to unit-test"):
            await client.generate(req())


async def test_read_timeout_is_not_retried(fake: FakeService) -> None:
    fake.queue = [httpx.ReadTimeout("slow")]
    async with make_client(fake) as client:
        with pytest.raises(e.ServiceTimeoutError, match="may still finish"):
            await client.generate(req())
    assert len(fake.requests) == 1


async def test_a_deadline_shorter_than_a_request_needs_sends_nothing() -> None:
    sent: list[httpx.Request] = []
    settings = load_settings(foundry_env(), dotenv_path=None)
    async with FoundryClient(settings, transport=httpx.MockTransport(sent.append), deadline_s=0.3) as client:
        with pytest.raises(e.ServiceTimeoutError, match=r"not sent.*Nothing was sent, so nothing is billed") as caught:
            await client.generate(req())
    assert sent == [] and (caught.value.sent, caught.value.billed) == (False, "no")


async def test_a_hanging_request_is_overdue_at_the_deadline_and_awaited_to_the_service_timeout() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return bfl_ok()

    events: list[ProgressEvent] = []
    settings = load_settings(foundry_env(), dotenv_path=None)
    async with FoundryClient(settings, transport=httpx.MockTransport(slow), deadline_s=0.2, send_floor_s=0.1,
                             service_timeout_s=0.6) as client:
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(e.ServiceTimeoutError, match=r"within 0\.6 s of sending.*may still finish") as caught:
            await client.generate(req(), events.append)
        assert 0.55 < loop.time() - start < 1.5
    overdue = [ev for ev in events if ev.stage == "overdue"]
    assert len(overdue) == 1 and 0.15 < overdue[0].elapsed_s < 0.5
    assert (caught.value.sent, caught.value.billed) == (True, "maybe")


async def test_expired_entra_token_gets_one_fresh_try(fake: FakeService) -> None:
    fake.queue = [error(401, {"error": {"code": "401", "message": "token expired"}}), bfl_ok()]
    cred = FakeCredential()
    settings = load_settings({"AZURE_ENDPOINT": ENDPOINT, "AZURE_AUTH": "entra",
                              "FLUX_DEPLOYMENTS": "FLUX.2-pro:1000/1s"}, dotenv_path=None)
    async with FoundryClient(settings, transport=fake.transport, credential=cred) as client:
        await client.generate(req())
    assert [r.headers["authorization"] for r in fake.requests] == ["Bearer entra-token-0001",
                                                                   "Bearer entra-token-0002"]


async def test_a_second_401_is_final(fake: FakeService) -> None:
    fake.handler = lambda r: error(401, {"error": {"code": "401", "message": "no"}})
    settings = load_settings({"AZURE_ENDPOINT": ENDPOINT, "AZURE_AUTH": "entra"}, dotenv_path=None)
    async with FoundryClient(settings, transport=fake.transport, credential=FakeCredential()) as client:
        with pytest.raises(e.AuthenticationError, match="Entra"):
            await client.generate(req())
    assert len(fake.requests) == 2


# --- refusals before any network call ------------------------------------------------------

@pytest.mark.parametrize("model", list(MODELS))
async def test_too_many_references_fail_before_any_request(model: str) -> None:
    limit = MODELS[model].max_references
    fake = FakeService(handler=None)
    async with make_client(fake) as client:
        with pytest.raises(e.ValidationError) as info:
            await client.generate(req(model, refs=[JPEG] * (limit + 1)))
    assert fake.requests == []
    message = str(info.value)
    assert MODELS[model].display_name in message
    assert (f"at most {limit}" in message) if limit else ("no reference images" in message)


async def test_bad_reference_fails_before_any_request() -> None:
    fake = FakeService(handler=None)
    async with make_client(fake) as client:
        with pytest.raises(e.ReferenceImageError, match="image 2"):
            await client.generate(req("FLUX.2-pro", refs=[JPEG, b"%PDF-1.7 not an image"]))
    assert fake.requests == []


async def test_a_model_that_is_not_deployed() -> None:
    fake = FakeService(handler=None)
    async with make_client(fake, FLUX_DEPLOYMENTS="FLUX.2-pro") as client:
        assert client.models == ("FLUX.2-pro", "FLUX.1-schnell")
        with pytest.raises(e.ValidationError, match="not deployed in this installation"):
            await client.generate(req("FLUX.2-flex"))
    assert fake.requests == []


async def test_pacing_spreads_a_burst_within_the_quota(fake: FakeService) -> None:
    clock = FakeClock()
    sent: list[float] = []

    def service(request: httpx.Request) -> httpx.Response:
        sent.append(clock() - start)
        return bfl_ok()

    fake.handler = service
    start = clock()
    async with make_client(fake, clock, FLUX_DEPLOYMENTS="FLUX.2-pro:2/0.4s") as client:
        results = await asyncio.gather(*(client.generate(req()) for _ in range(4)))
    frees_s = 0.4 + pacing_margin(Quota(2, 0.4))  # a slot is kept a little past its window
    assert sent == [0.0, 0.0, pytest.approx(frees_s), pytest.approx(frees_s)]  # two at once, two when it frees
    assert sorted(r.timings.paced_s for r in results)[:2] == [0.0, 0.0]
    assert max(r.timings.paced_s for r in results) == pytest.approx(frees_s)  # and not a moment longer


async def test_progress_callback_errors_do_not_break_the_request(fake: FakeService) -> None:
    def broken(event: ProgressEvent) -> None:
        raise RuntimeError("display gone")

    async with make_client(fake) as client:
        result = await client.generate(req(), broken)
    assert result.attempts == 1


@pytest.mark.parametrize("model", [["FLUX.2-pro"], {"id": "FLUX.2-pro"}, None, 2])
async def test_a_model_that_is_not_text_is_refused_before_sending(fake: FakeService, model: object) -> None:
    async with make_client(fake) as client:
        with pytest.raises(e.ValidationError, match="model ID written as text"):
            await client.generate(req(model=model))  # type: ignore[arg-type]
    assert fake.requests == []
