"""What each route accepts, decided by the capability registry rather than numbers written here.

One module per route turns its request into a :class:`~flux_ui.emulator.validation.common.Plan`
(what to render and at what size) or raises :class:`~flux_ui.emulator.bodies.ApiError` with the
body that route uses for the problem (contract §2–§4):

- :mod:`.bfl`: the BFL route answers bad parameters with FastAPI's 422 ``{"detail": [...]}`` and
  other refusals with Azure's 400 ``{"error": {...}}``
- :mod:`.image_api`: the Image API uses Azure's 400 shape
- :mod:`.aml`: the schnell endpoint answers everything with 400 ``{"error": "<message>"}``
- :mod:`.common`: the plan, parameter checks and size rules they share
"""
