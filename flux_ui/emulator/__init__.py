"""A local stand-in for the FLUX models on Microsoft Foundry, served over loopback HTTP.

It follows ``docs/service-contract.md``: the BFL provider route, the Image API, the
FLUX.1-schnell Azure ML endpoint, their auth, validation, quotas and error shapes, with
switches for every behaviour the contract marks [open] and faults on demand. Its images
are synthetic and show what was sent (model, prompt, seed, size, references in order).

    from flux_ui.emulator import Emulator, EmulatorConfig, Fault

    with Emulator(EmulatorConfig(api_key="k")) as emu:
        emu.set_faults("FLUX.2-pro", [Fault("status", status=503, count=1)])
        ...  # point a client at emu.base_url with emu.api_key
"""

from flux_ui.emulator.app import create_app
from flux_ui.emulator.config import EmulatorConfig, Fault
from flux_ui.emulator.runner import Emulator

__all__ = ["Emulator", "EmulatorConfig", "Fault", "create_app"]
