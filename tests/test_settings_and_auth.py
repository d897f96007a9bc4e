"""Settings from the environment and .env, and credentials (keys, cached Entra tokens)."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from conftest import ENDPOINT, FOUNDRY_MODELS, KEY, FakeCredential, LoopGaps, foundry_env
from flux_ui.client.auth import EntraAuth, KeyAuth
from flux_ui.errors import AuthenticationError
from flux_ui.hosts import emulator_endpoint_path
from flux_ui.pacing import Quota
from flux_ui.registry import MODELS
from flux_ui.secrets import Secret
from flux_ui.settings import SettingsError, load_settings, variables


def problems(env: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as info:
        load_settings(env, dotenv_path=None)
    return str(info.value)


def test_nothing_configured_means_the_emulator_said_plainly() -> None:
    s = load_settings({}, dotenv_path=None)
    assert s.mode == "emulator" and s.uses_emulator
    assert s.deployments == {} and s.endpoint is None  # filled in by with_emulator once it runs


def test_emulator_settings_cover_every_model() -> None:
    s = load_settings({}, dotenv_path=None).with_emulator("http://127.0.0.1:5555", "emu-key-123456")
    assert set(s.deployments) == set(MODELS)
    schnell = s.deployments["FLUX.1-schnell"]
    assert schnell.endpoint == "http://127.0.0.1:5555" + emulator_endpoint_path("FLUX.1-schnell")
    assert s.deployments["FLUX.2-pro"].quota == Quota.from_rpm(15)
    assert s.deployments["FLUX.1-schnell"].quota is None
    fast = s.with_emulator("http://127.0.0.1:5555", "k" * 10, quotas={"FLUX.2-pro": Quota(20, 5.0)})
    assert fast.deployments["FLUX.2-pro"].quota == Quota(20, 5.0)


def test_a_full_foundry_configuration() -> None:
    s = load_settings(foundry_env(FLUX_DEPLOYMENTS="FLUX.2-pro:medium,FLUX.2-flex=my-flex:20/5s,FLUX-1.1-pro:12",
                                  FLUX_KEY_HEADER="api-key", FLUX_IMAGE_API_PATH="model"), dotenv_path=None)
    assert s.mode == "foundry" and s.endpoint == ENDPOINT and s.image_api_path == "model"
    pro, flex, p11 = s.deployments["FLUX.2-pro"], s.deployments["FLUX.2-flex"], s.deployments["FLUX-1.1-pro"]
    assert (pro.name, pro.tier, pro.quota) == ("FLUX.2-pro", "medium", Quota.from_rpm(30))
    assert (flex.name, flex.quota) == ("my-flex", Quota(20, 5.0))
    assert p11.quota == Quota.from_rpm(12)
    assert pro.key_header == "api-key" and isinstance(pro.api_key, Secret) and pro.api_key.reveal() == KEY
    assert "FLUX.1-Kontext-pro" not in s.deployments
    assert s.deployments["FLUX.1-schnell"].api_key.reveal() == "schnell-key-9a8b7c6d"  # type: ignore[union-attr]


def test_default_deployments_are_the_foundry_models_at_their_lowest_tier() -> None:
    s = load_settings({"AZURE_ENDPOINT": ENDPOINT, "AZURE_API_KEY": KEY}, dotenv_path=None)
    assert set(s.deployments) == set(FOUNDRY_MODELS)
    assert s.deployments["FLUX.2-flex"].quota == Quota.from_rpm(5)


def test_entra_mode_needs_no_key() -> None:
    s = load_settings({"AZURE_ENDPOINT": ENDPOINT, "AZURE_AUTH": "entra"}, dotenv_path=None)
    assert all(d.auth == "entra" and d.api_key is None for d in s.deployments.values())


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"AZURE_ENDPOINT": ENDPOINT}, "AZURE_API_KEY is not set"),
        ({"AZURE_ENDPOINT": "my-resource", "AZURE_API_KEY": KEY}, "AZURE_ENDPOINT='my-resource' is not a URL"),
        ({"AZURE_ENDPOINT": "http://example.com", "AZURE_API_KEY": KEY}, "must use https"),
        ({"AZURE_ENDPOINT": ENDPOINT, "AZURE_API_KEY": KEY, "AZURE_AUTH": "password"}, "AZURE_AUTH='password'"),
        ({"AZURE_ENDPOINT": ENDPOINT, "AZURE_AUTH": "key"}, "AZURE_AUTH=key needs AZURE_API_KEY"),
        ({"AZURE_ENDPOINT": ENDPOINT, "AZURE_API_KEY": KEY, "FLUX_DEPLOYMENTS": "FLUX.3"}, "'FLUX.3'"),
        ({"AZURE_ENDPOINT": ENDPOINT, "AZURE_API_KEY": KEY, "FLUX_DEPLOYMENTS": "FLUX.2-pro:ultra"},
         "tier 'ultra' for FLUX.2-pro"),
        ({"AZURE_ENDPOINT": ENDPOINT, "AZURE_API_KEY": KEY, "FLUX_DEPLOYMENTS": "FLUX.2-pro=bad name"},
         "deployment name 'bad name'"),
        ({"AZURE_ENDPOINT": ENDPOINT, "AZURE_API_KEY": KEY, "FLUX_DEPLOYMENTS": "FLUX.2-pro,FLUX.2-pro"}, "twice"),
        ({"AZURE_ENDPOINT": ENDPOINT, "AZURE_API_KEY": KEY, "FLUX_DEPLOYMENTS": "FLUX.1-schnell"},
         "not a Foundry FLUX model"),
        ({"FLUX_SCHNELL_ENDPOINT": "https://x.inference.ml.azure.com/score"}, "FLUX_SCHNELL_KEY is not"),
        ({"FLUX_SCHNELL_ENDPOINT": "https://x/score", "FLUX_SCHNELL_KEY": "k" * 10, "FLUX_SCHNELL_RPM": "fast"},
         "FLUX_SCHNELL_RPM"),
        ({"FLUX_EMULATOR": "maybe"}, "FLUX_EMULATOR='maybe'"),
        ({"FLUX_EMULATOR": "off"}, "neither AZURE_ENDPOINT"),
        ({"AZURE_ENDPOINT": ENDPOINT, "AZURE_API_KEY": KEY, "FLUX_KEY_HEADER": "x-key"}, "FLUX_KEY_HEADER"),
    ],
)
def test_each_problem_names_the_variable_and_an_example(env: dict[str, str], words: str) -> None:
    message = problems(env)
    assert words in message
    assert "for example" in message


def test_several_problems_are_reported_together() -> None:
    message = problems({"AZURE_ENDPOINT": "nope", "FLUX_DEPLOYMENTS": "FLUX.9", "FLUX_KEY_HEADER": "x"})
    assert message.count("\n- ") == 4  # endpoint, key, deployment, header


def test_dotenv_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text(f"AZURE_ENDPOINT={ENDPOINT}\nAZURE_API_KEY=from-dotenv-123456\nFLUX_OUTPUT_DIR=/tmp/x\n")
    s = load_settings({"FLUX_OUTPUT_DIR": "/tmp/from-env"}, dotenv_path=dotenv)
    assert s.deployments["FLUX.2-pro"].api_key.reveal() == "from-dotenv-123456"  # type: ignore[union-attr]
    assert str(s.output_dir) == "/tmp/from-env"


def test_emulator_forced_on_even_when_configured() -> None:
    assert load_settings({"AZURE_ENDPOINT": ENDPOINT, "AZURE_API_KEY": KEY, "FLUX_EMULATOR": "on"},
                         dotenv_path=None).uses_emulator


def test_every_variable_read_is_documented_in_variables() -> None:
    source = (Path(__file__).resolve().parents[1] / "flux_ui" / "settings.py").read_text()
    import re

    read = set(re.findall(r'env(?:\.get)?\(\s*"([A-Z_]+)"', source)) | set(re.findall(r'env\["([A-Z_]+)"\]', source))
    read |= set(re.findall(r'_choice\(env, "([A-Z_]+)"', source))
    documented = {v[0] for v in variables()}
    assert read and read <= documented, read - documented


# --- credentials --------------------------------------------------------------------------

async def test_key_auth_headers() -> None:
    assert await KeyAuth(Secret("k" * 12)).headers() == {"Authorization": "Bearer " + "k" * 12}
    assert await KeyAuth(Secret("k" * 12), "api-key").headers() == {"api-key": "k" * 12}
    assert "k" * 12 not in repr(KeyAuth(Secret("k" * 12)))


async def test_entra_token_is_cached_for_the_right_scope() -> None:
    cred = FakeCredential()
    auth = EntraAuth(cred)
    first = await auth.headers()
    second = await auth.headers()
    assert first == second == {"Authorization": "Bearer entra-token-0001"}
    assert cred.calls == [("https://cognitiveservices.azure.com/.default",)]


async def test_entra_token_is_refreshed_before_it_expires() -> None:
    cred = FakeCredential(lifetime=3600)
    now = [time.time()]
    auth = EntraAuth(cred, clock=lambda: now[0])
    await auth.headers()
    now[0] += 3600 - 301  # just outside the five-minute margin: still fresh
    assert (await auth.headers())["Authorization"].endswith("0001")
    now[0] += 2  # inside the margin: refresh
    assert (await auth.headers())["Authorization"].endswith("0002")


async def test_concurrent_requests_share_one_refresh_and_the_loop_keeps_running() -> None:
    cred = FakeCredential(delay=0.3)
    auth = EntraAuth(cred)
    async with LoopGaps() as gaps:
        results = await asyncio.gather(*(auth.headers() for _ in range(5)))
    assert len(cred.calls) == 1
    assert {r["Authorization"] for r in results[:5]} == {"Bearer entra-token-0001"}
    assert threading.get_ident() not in cred.threads  # fetched in a worker thread
    assert len(gaps) >= 10 and max(gaps) < 0.2  # the event loop was never blocked for the 0.3 s fetch


async def test_invalidate_forces_a_new_token() -> None:
    cred = FakeCredential()
    auth = EntraAuth(cred)
    await auth.headers()
    assert auth.invalidate() is True
    assert (await auth.headers())["Authorization"].endswith("0002")
    assert KeyAuth(Secret("k" * 12)).invalidate() is False


async def test_a_failing_credential_says_what_to_do() -> None:
    class Broken:
        def get_token(self, *scopes: str, **_: object) -> None:
            raise RuntimeError("DefaultAzureCredential failed to retrieve a token\nlong details")

    with pytest.raises(AuthenticationError, match="az login"):
        await EntraAuth(Broken()).headers()


@pytest.mark.parametrize("folder", ["/", str(Path.home()), str(Path.home().parent), "~"])
def test_an_outputs_folder_that_would_serve_the_disk_is_refused(folder: str) -> None:
    message = problems({"FLUX_OUTPUT_DIR": folder})
    assert "FLUX_OUTPUT_DIR" in message and "folder of its own" in message


def test_an_ordinary_outputs_folder_is_accepted(tmp_path: Path) -> None:
    assert load_settings({"FLUX_OUTPUT_DIR": str(tmp_path / "outputs")}, dotenv_path=None).output_dir == (
        tmp_path / "outputs")
