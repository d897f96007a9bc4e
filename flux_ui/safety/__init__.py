"""Content safety with Azure AI Content Safety: Foundry filters nothing for FLUX, so flux-ui checks.

A prompt is checked with text:analyze before anything is sent to FLUX, and a result with
image:analyze before it is shown or saved; what is over the limits is refused (a prompt) or kept in
quarantine for the owner (a result), and the person is told which category blocked it. Settings:
:mod:`flux_ui.settings_safety`. One concern per module: :mod:`~flux_ui.safety.guard` (the two checks
and the outage policy), :mod:`~flux_ui.safety.client` (the REST calls), :mod:`~flux_ui.safety.verdict`
(reading and judging answers), :mod:`~flux_ui.safety.images` (fitting an image to the API's limits),
:mod:`~flux_ui.safety.quarantine` (where blocked results are kept).
"""

from flux_ui.safety.client import API_VERSION, SafetyClient, split_text
from flux_ui.safety.guard import SafetyGuard, instance_is_public, service_text
from flux_ui.safety.images import AnalysisImage, fit_for_analysis
from flux_ui.safety.quarantine import Kept, Quarantine
from flux_ui.safety.verdict import Analysis, BlocklistHit, CategoryScore, Verdict

__all__ = [
    "API_VERSION",
    "Analysis",
    "AnalysisImage",
    "BlocklistHit",
    "CategoryScore",
    "Kept",
    "Quarantine",
    "SafetyClient",
    "SafetyGuard",
    "Verdict",
    "fit_for_analysis",
    "instance_is_public",
    "service_text",
    "split_text",
]
