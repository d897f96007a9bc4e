"""The replicas' settings (flux_ui/settings_shared.py) and the doctor's check of the shared services: off by
default, each malformed value named with a fix, and no password or key in anything shown."""

from __future__ import annotations

import asyncio

import pytest

from flux_ui.doctor.report import Report
from flux_ui.doctor.shared import check_shared
from flux_ui.secrets import redact as scrub
from flux_ui.settings import SettingsError, load_settings
from flux_ui.settings_shared import SharedSettings, redact

PASSWORD = "pw-9f8e7d6c5b4a"
ACCOUNT_KEY = "c2VjcmV0LWFjY291bnQta2V5LTEyMzQ1Njc4OTA="
CONNECTION = (f"DefaultEndpointsProtocol=https;AccountName=teamimages;AccountKey={ACCOUNT_KEY};"
              "EndpointSuffix=core.windows.net")


def test_nothing_set_means_the_embedded_defaults() -> None:
    shared = load_settings({}, dotenv_path=None).shared
    assert shared == SharedSettings()
    assert not shared.replicated and not shared.uses_blob


def test_every_service_loads_and_repr_shows_no_secret() -> None:
    settings = load_settings({"FLUX_UI_REDIS_URL": f"redis://:{PASSWORD}@redis.internal:6379/0",
                              "FLUX_UI_DATABASE_URL": f"postgresql://flux:{PASSWORD}@db.internal/flux",
                              "AZURE_STORAGE_CONNECTION_STRING": CONNECTION, "FLUX_UI_BLOB_CONTAINER": "team-images"},
                             dotenv_path=None)
    shared = settings.shared
    assert shared.replicated and shared.uses_blob and shared.blob_container == "team-images"
    text = repr(shared) + repr(settings) + "\n".join(shared.describe())
    assert PASSWORD not in text and ACCOUNT_KEY not in text
    assert "redis.internal:6379" in text and "db.internal" in text and "teamimages" in text
    # Remembered as loaded: a log line or error that quotes them is scrubbed.
    assert PASSWORD not in scrub(f"could not connect to redis://:{PASSWORD}@redis.internal")
    assert ACCOUNT_KEY not in scrub(f"bad key {ACCOUNT_KEY}")


@pytest.mark.parametrize(("env", "named"), [
    ({"FLUX_UI_REDIS_URL": f"http://:{PASSWORD}@redis.internal"}, "FLUX_UI_REDIS_URL"),
    ({"FLUX_UI_DATABASE_URL": f"mysql://u:{PASSWORD}@db"}, "FLUX_UI_DATABASE_URL"),
    ({"AZURE_STORAGE_ACCOUNT_URL": "http://account.blob.core.windows.net"}, "AZURE_STORAGE_ACCOUNT_URL"),
    ({"AZURE_STORAGE_CONNECTION_STRING": CONNECTION, "AZURE_STORAGE_ACCOUNT_URL": "https://a.blob.core.windows.net"},
     "keep one"),
    ({"FLUX_UI_BLOB_CONTAINER": "Team_Images"}, "FLUX_UI_BLOB_CONTAINER"),
])
def test_a_malformed_value_is_named_with_an_example_and_never_quoted_with_its_secret(env: dict[str, str],
                                                                                     named: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env, dotenv_path=None)
    message = str(caught.value)
    assert (named in message and "for example" in message) or "keep one" in message
    assert PASSWORD not in message and ACCOUNT_KEY not in message


def test_redact_keeps_where_and_drops_who_and_what() -> None:
    assert redact(f"rediss://default:{PASSWORD}@cache.example:6380/2") == "rediss://cache.example:6380/2"
    assert redact(f"postgresql://flux:{PASSWORD}@db.internal:5432/flux?sslmode=require") == \
        "postgresql://db.internal:5432/flux"
    assert redact(CONNECTION) == "storage account teamimages (connection string)"


def test_the_doctor_reports_each_shared_service_without_its_secret(redis_url: str, postgres_url: str,
                                                                   blob_env: dict[str, str]) -> None:
    shared = load_settings({"FLUX_UI_REDIS_URL": redis_url, "FLUX_UI_DATABASE_URL": postgres_url, **blob_env},
                           dotenv_path=None).shared
    section = Report({}).section("Shared services")
    asyncio.run(check_shared(section, shared, 5.0))
    lines = [(c.status, c.label) for c in section.checks]
    assert [s for s, _ in lines] == ["pass", "pass", "pass"], lines
    assert "Redis" in lines[0][1] and "PostgreSQL" in lines[1][1] and "created" in lines[2][1]
    assert all("AccountKey" not in text for _, text in lines)


def test_the_doctor_says_which_service_is_down_and_how_to_fix_it(redis_server: object) -> None:
    shared = SharedSettings(redis_url=f"redis://:{PASSWORD}@127.0.0.1:1/0")
    section = Report({}).section("Shared services")
    asyncio.run(check_shared(section, shared, 2.0))
    failed = [c for c in section.checks if c.status == "fail"]
    assert len(failed) == 1 and "127.0.0.1:1" in failed[0].label and PASSWORD not in failed[0].label
    assert failed[0].fix and "running and reachable" in failed[0].fix
