"""``--generate``: one smallest request per deployment and route, and what the service did with it.

Each request goes through the app's own client (:meth:`flux_ui.client.FoundryClient.generate`:
validation, pacing, retries, polling and downloads as the app does them), and every answer it gets
is watched through the client's ``on_response`` hook. From those answers the doctor reports each
behaviour the contract leaves open: a synchronous image or BFL's ``id``/``polling_url`` task, an image
in ``b64_json`` or a link in ``url``, whether a 429 carried ``Retry-After``, and ``request_meta`` with
its fields (its ``cost`` as the raw figure: the contract does not say in what unit).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import httpx
from PIL import Image

from flux_ui.client import FoundryClient, GenerationRequest, GenerationResult
from flux_ui.doctor.probe import ROUTE_NAMES
from flux_ui.doctor.report import Section
from flux_ui.errors import FluxError
from flux_ui.registry import ModelSpec, PixelSize, Route
from flux_ui.secrets import redact
from flux_ui.settings import Deployment

PROMPT = "flux-ui doctor check: a plain grey square"
#: Headers a 429 may carry to say how long to wait (contract §2, §3: open whether it does).
WAIT_HEADERS = ("retry-after", "retry-after-ms", "x-ratelimit-remaining-requests")


def smallest(spec: ModelSpec, route: Route) -> dict[str, Any]:
    """The parameters of the least work the model can be asked for: its smallest size, its fewest steps."""
    params: dict[str, Any] = {}
    if isinstance(spec.size, PixelSize):
        params["width"] = params["height"] = spec.size.min_side
    for p in spec.params:
        on_route = route is Route.AML or route is Route.BFL or p.image_api
        if on_route and p.kind == "int" and "steps" in p.name and p.minimum is not None:
            params[p.name] = int(p.minimum)
    return params


def _input_image() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (128, 128, 128)).save(buf, "PNG")
    return buf.getvalue()


async def check_generation(client: FoundryClient, targets: list[tuple[Deployment, Route]], section: Section,
                           progress: Callable[[str], None], seen: list[httpx.Response]) -> None:
    """Generate once on each (deployment, route) and report what the service did; ``seen`` is the list the
    client's ``on_response`` hook appends every answer to."""
    for deployment, route in targets:
        spec = deployment.model
        label = f"{spec.id}, {ROUTE_NAMES[route]}"
        progress(f"generating on {label}")
        request = GenerationRequest(spec.id, PROMPT, references=(_input_image(),) if route is Route.IMAGES_EDITS
                                    else (), params=smallest(spec, route), route=route)
        seen.clear()
        try:
            result = await client.generate(request)
        except FluxError as error:
            notes, facts = observe(list(seen), None)
            section.add("fail", f"{label}: no image", fix=error.message, notes=notes, facts=facts)
            continue
        except Exception as exc:  # a report, not a traceback
            section.add("fail", f"{label}: no image ({type(exc).__name__})",
                        fix=f"{redact(str(exc)) or type(exc).__name__}; please report this with this output")
            continue
        notes, facts = observe(list(seen), result)
        made = f"a {result.info.width}×{result.info.height} {result.format.upper()} in {result.timings.total_s:.1f} s"
        tries = f"{result.attempts} attempt{'s' if result.attempts > 1 else ''}"
        section.add("pass", f"{label}: {made} ({tries})", notes=notes, facts=facts)


def _json(response: httpx.Response) -> Any:
    if "json" not in response.headers.get("content-type", ""):
        return None
    try:
        return json.loads(response.content)
    except ValueError:
        return None


def observe(responses: list[httpx.Response], result: GenerationResult | None) -> tuple[list[str], dict[str, Any]]:
    """The lines and facts of one generation, from every answer the client got for it."""
    facts: dict[str, Any] = {"statuses": [f"{r.request.method} {r.status_code}" for r in responses]}
    notes: list[str] = []
    notes.append(_delivery(responses, facts))
    notes.append(_retry_after(responses, facts))
    notes.extend(_request_meta(responses, result, facts))
    if result is not None:
        facts.update(image=f"{result.info.width}x{result.info.height} {result.format}", attempts=result.attempts,
                     seconds=round(result.timings.total_s, 2))
    return [n for n in notes if n], facts


def _delivery(responses: list[httpx.Response], facts: dict[str, Any]) -> str:
    """How the image came: inline, by a link, or by a task polled to its end."""
    answered = [r for r in responses if r.request.method == "POST" and r.status_code < 300]
    if not answered:
        facts["delivery"] = None
        return "delivery: no answer with an image or a task arrived"
    final = answered[-1]
    data = _json(final)
    ctype = final.headers.get("content-type", "").split(";")[0]
    gets = [r for r in responses if r.request.method == "GET"]
    if isinstance(data, dict) and isinstance(data.get("polling_url"), str):
        polls = [r for r in gets if str(r.request.url) == data["polling_url"]]
        last = _json(polls[-1]) if polls else None
        status = last.get("status") if isinstance(last, dict) else None
        facts.update(delivery="polled", polls=len(polls), last_status=status, downloads=len(gets) - len(polls))
        return (f"delivery: BFL-native task (id + polling_url), polled {len(polls)} time(s) until {status!r}, then "
                f"result.sample downloaded ({len(gets) - len(polls)} download(s))")
    if ctype.startswith("image/"):
        facts["delivery"] = "image-bytes"
        return f"delivery: the image's own bytes ({ctype}), synchronous"
    items = data.get("data") if isinstance(data, dict) else None
    item = items[0] if isinstance(items, list) and items and isinstance(items[0], dict) else {}
    keys = sorted(k for k in item if item[k] is not None)
    facts["data_fields"] = keys
    if item.get("b64_json"):
        facts["delivery"] = "b64_json"
        return f"delivery: synchronous, base64 in data[0].b64_json (data[0] carries {', '.join(keys)})"
    if item.get("url"):
        facts.update(delivery="url", downloads=len(gets))
        return f"delivery: synchronous, a link in data[0].url, downloaded (data[0] carries {', '.join(keys)})"
    facts["delivery"] = "other"
    return f"delivery: an answer of another shape ({ctype or 'no content type'})"


def _retry_after(responses: list[httpx.Response], facts: dict[str, Any]) -> str:
    """Whether the 429s (if any) said how long to wait."""
    limited = [r for r in responses if r.status_code == 429]
    if not limited:
        facts["retry_after"] = "no 429"
        return "429: none happened, so whether this deployment's 429s carry Retry-After is still unknown"
    found = {name: r.headers[name] for r in limited for name in WAIT_HEADERS if name in r.headers}
    facts["retry_after_headers"] = found
    if "retry-after" in found or "retry-after-ms" in found:
        facts["retry_after"] = "seen"
        shown = ", ".join(f"{k}: {v}" for k, v in found.items())
        return f"429: {len(limited)} happened, with a wait to honour ({shown})"
    facts["retry_after"] = "absent"
    return f"429: {len(limited)} happened, without Retry-After or retry-after-ms (flux-ui backed off by itself)"


def _request_meta(responses: list[httpx.Response], result: GenerationResult | None,
                  facts: dict[str, Any]) -> list[str]:
    """request_meta and its fields, and its cost as the raw figure beside flux-ui's list-price estimate."""
    metas = [d["request_meta"] for r in responses if r.status_code < 300 and isinstance(d := _json(r), dict)
             and isinstance(d.get("request_meta"), dict)]
    if not metas:
        facts["request_meta"] = None
        return ["request_meta: absent"] if result is not None else []
    meta = metas[0]
    facts["request_meta"] = meta
    lines = [f"request_meta: present ({', '.join(f'{k}={v}' for k, v in meta.items())})"]
    if "cost" not in meta:
        facts["cost_raw"] = None
        return [*lines, "cost: request_meta carries none"]
    estimate = result.cost_estimate_usd if result is not None else None
    facts.update(cost_raw=meta["cost"], cost_unit="undocumented", cost_estimate_usd=estimate)
    hint = (f"flux-ui's list-price estimate for this image: ${estimate:.4g}" if estimate is not None
            else "flux-ui has no list price for this model")
    return [*lines, f"cost: {meta['cost']} as the service sent it; its unit is not documented (raw figure; {hint})"]
