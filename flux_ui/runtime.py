"""What a running flux-ui holds: settings, the one client, history, and the emulator if used."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from flux_ui.client.core import FoundryClient
from flux_ui.emulator import Emulator, EmulatorConfig
from flux_ui.history import History
from flux_ui.pacing import Quota
from flux_ui.settings import Settings

log = logging.getLogger("flux_ui")


@dataclass
class Runtime:
    settings: Settings
    client: FoundryClient
    history: History
    emulator: Emulator | None = None

    @property
    def models(self) -> tuple[str, ...]:
        return self.client.models

    async def aclose(self) -> None:
        await self.client.aclose()
        self.close_sync()

    def close_sync(self) -> None:
        self.history.close()
        if self.emulator is not None:
            self.emulator.stop()


def start_runtime(
    settings: Settings,
    emulator_config: EmulatorConfig | None = None,
    quotas: Mapping[str, Quota] | None = None,
    **client_options: object,
) -> Runtime:
    """Start the emulator when the settings ask for it, then the client and history.

    ``quotas`` overrides the emulated deployments' quotas on both sides (tests use short ones).
    The embedded emulator is the app's alone: its key and control token (random per start unless
    a test passes its own) stay in this process, and it takes no Entra token (it cannot check a signature, so any local
    process could forge one and spend the app's emulated quota).
    """
    emulator = None
    if settings.uses_emulator:
        config = emulator_config or EmulatorConfig()
        config.accept_entra = False
        config.open_controls = False
        if quotas:
            config.quotas = {**config.quotas, **quotas}
        emulator = Emulator(config)
        base_url = emulator.start()
        settings = settings.with_emulator(base_url, emulator.api_key, quotas)
        log.info("using the local emulator at %s (synthetic images)", base_url)
    client = FoundryClient(settings, **client_options)  # type: ignore[arg-type]
    return Runtime(settings=settings, client=client, history=History(settings.output_dir), emulator=emulator)
