"""What the FLUX.1-schnell endpoint on Azure ML accepts: the toolkit's ``{"inputs", "parameters"}``.

Parameters go to the diffusers pipeline as keyword arguments, so a name it does not take fails
the call, ``scheduler`` among them for FLUX; every problem is the toolkit's 400
``{"error": "<message>"}`` (contract §4).
"""

from __future__ import annotations

from typing import Any

from flux_ui.emulator.bodies import ApiError, schnell_error
from flux_ui.emulator.prompt_tokens import truncate_to_tokens
from flux_ui.emulator.validation.common import Plan, check_param, is_int, pixel_size_problems
from flux_ui.registry import ModelSpec, PixelSize

#: What the toolkit takes in the Accept header rather than as a pipeline keyword argument.
NOT_PIPELINE_ARGUMENTS = ("output_format",)


def _schnell_fail(message: str) -> ApiError:
    return ApiError(400, schnell_error(message))


def validate_endpoint(spec: ModelSpec, body: object, *, square_only: bool) -> Plan:
    """A toolkit request ``{"inputs", "parameters"}`` for an endpoint's model → Plan, or the toolkit's 400."""
    if not isinstance(body, dict):
        raise _schnell_fail("The request body must be a JSON object with 'inputs'.")
    prompt = body.get("inputs")
    if not isinstance(prompt, str):
        raise _schnell_fail("'inputs' must be the prompt string.")
    unknown_top = [k for k in body if k not in ("inputs", "parameters")]
    params = body.get("parameters") or {}
    if not isinstance(params, dict):
        raise _schnell_fail("'parameters' must be a JSON object.")
    values = _parameter_values(spec, params)

    notes = [f"ignored top-level fields {', '.join(unknown_top)}"] if unknown_top else []
    rule = spec.size
    assert isinstance(rule, PixelSize)
    w = values.get("width", rule.default[0])
    h = values.get("height", rule.default[1])
    width, height, problems, size_notes = pixel_size_problems(rule, w, h)
    if problems:
        raise _schnell_fail("; ".join(m for _, m in problems))
    if square_only and width != height:
        raise _schnell_fail(f"This endpoint only generates square images; got {width}x{height}.")
    notes += size_notes
    limit = spec.prompt
    seen = truncate_to_tokens(prompt, limit.max_tokens, limit.tokenizer)
    if seen != prompt:
        notes.append(f"prompt cut to about {limit.max_tokens} T5 tokens")
    seed = values.get("seed")
    return Plan(spec, seen, width, height, "png", int(seed) if seed is not None else None, (), unknown_top, notes)


def _parameter_values(spec: ModelSpec, params: dict[str, Any]) -> dict[str, Any]:
    """The pipeline's keyword arguments (the model's parameters, as the diffusers FLUX pipeline
    takes them; never ``scheduler``), checked as the pipeline would: only the bounds the service
    itself enforces (``Param.service_checks``)."""
    if "scheduler" in params:
        raise _schnell_fail("FluxPipeline does not accept a 'scheduler' parameter.")
    accepted = {p.name for p in spec.all_params} - set(NOT_PIPELINE_ARGUMENTS)
    for name in params:
        if name not in accepted:
            raise _schnell_fail(f"FluxPipeline.__call__() got an unexpected keyword argument '{name}'")
    values: dict[str, Any] = {}
    for name, value in params.items():
        if value is None:
            continue
        if name in ("width", "height"):
            if not is_int(value):
                raise _schnell_fail(f"'{name}' must be an integer.")
            values[name] = int(value)
            continue
        param = spec.param(name)
        if param is None:
            continue
        problem = check_param(param, value, editing=False)
        if problem:
            raise _schnell_fail(f"'{name}': {problem[0]}")
        values[name] = value
    return values
