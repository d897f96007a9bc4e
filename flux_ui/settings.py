"""Typed settings from the environment and a ``.env`` file.

Nothing configured means "use the local emulator", said explicitly by ``Settings.mode``.
A wrong setting is reported in one message that names each variable at fault and shows
an example value, before anything starts.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Literal
from urllib.parse import urlparse

from dotenv import dotenv_values

from flux_ui.errors import FluxError
from flux_ui.hosts import LOOPBACK_NAMES, emulator_endpoint_path
from flux_ui.pacing import Quota
from flux_ui.registry import MODELS, ModelSpec, Route
from flux_ui.secrets import Secret
from flux_ui.settings_safety import VARIABLES as SAFETY_VARIABLES
from flux_ui.settings_safety import SafetySettings, load_safety
from flux_ui.settings_shared import VARIABLES as SHARED_VARIABLES
from flux_ui.settings_shared import SharedSettings, load_shared
from flux_ui.settings_spend import VARIABLES as SPEND_VARIABLES
from flux_ui.settings_spend import SpendSettings, load_spend
from flux_ui.settings_users import VARIABLES as USER_VARIABLES
from flux_ui.settings_users import UserSettings, load_users

AuthMode = Literal["key", "entra"]
KeyHeader = Literal["bearer", "api-key"]
ImageApiPath = Literal["deployment", "model"]

ENTRA_SCOPE = "https://cognitiveservices.azure.com/.default"

# One row per variable: (name, default shown in docs, example, what it means). The README's
# configuration table is checked against variables() by tests/test_readme.py.
_FIXED_VARIABLES: tuple[tuple[str, str, str, str], ...] = (
    ("AZURE_ENDPOINT", "(none: local emulator)", "https://my-resource.services.ai.azure.com",
     "Your Foundry resource's endpoint, from Keys and Endpoint."),
    ("AZURE_API_KEY", "(none)", "0123abcd... (from Keys and Endpoint)",
     "The resource's API key. Leave it out and set AZURE_AUTH=entra to sign in instead."),
    ("AZURE_AUTH", "key if AZURE_API_KEY is set", "entra",
     "key, or entra for Microsoft Entra ID through DefaultAzureCredential."),
    ("FLUX_KEY_HEADER", "bearer", "api-key",
     "How the key is sent: Authorization: Bearer, or an api-key header."),
    ("FLUX_DEPLOYMENTS", "all four Foundry FLUX models, default names and tiers",
     "FLUX.2-pro:medium,FLUX.2-flex=my-flex:low,FLUX-1.1-pro",
     "Which models are deployed: MODEL[=DEPLOYMENT][:TIER], TIER a tier name, an RPM, or N/Ss."),
    ("FLUX_API_VERSION", "preview", "2025-04-01-preview", "The api-version query parameter."),
    ("FLUX_IMAGE_API_PATH", "deployment", "model",
     "Image API path form: /openai/deployments/<name>/images/... or /openai/images/... with model in the body."),
    ("FLUX_OUTPUT_DIR", "outputs", "/data/flux-outputs", "Where generated images and the history database go."),
    ("FLUX_EMULATOR", "auto", "on",
     "auto: the local emulator when nothing is configured; on: always; off: never."),
    ("FLUX_UI_USERS", "(none: no login)", "alice:long-passphrase-1,bob:long-passphrase-2",
     "Login accounts for the page and the API, user:password pairs; required for --share or a public host."),
)

MIN_PASSWORD_LEN = 10
_SCORING_EXAMPLE = "https://my-endpoint.eastus.inference.ml.azure.com/score"
_KEY_EXAMPLE = "abcd... (from the endpoint's Consume tab)"


def variables() -> tuple[tuple[str, str, str, str], ...]:
    """Every setting: the fixed ones, with three for each model on its own Azure ML endpoint
    (placed after the Foundry ones), named by the entry's ``endpoint_env``, then Content Safety's."""
    rows = list(_FIXED_VARIABLES)
    at = next(i for i, row in enumerate(rows) if row[0] == "FLUX_OUTPUT_DIR")
    for spec in MODELS.on_route(Route.AML):
        prefix = spec.endpoint_env
        rows[at:at] = [
            (f"{prefix}_ENDPOINT", "(none)", _SCORING_EXAMPLE, f"Scoring URL of a {spec.id} Azure ML online endpoint."),
            (f"{prefix}_KEY", "(none)", _KEY_EXAMPLE, "That endpoint's key."),
            (f"{prefix}_RPM", "(no pacing)", "30", f"Requests per minute the {spec.display_name} endpoint can take."),
        ]
        at += 3
    return (*rows, *SAFETY_VARIABLES, *USER_VARIABLES, *SPEND_VARIABLES, *SHARED_VARIABLES)


class SettingsError(FluxError):
    """One or more settings are missing or malformed; the message lists each with a fix."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        joined = "\n".join(f"- {p}" for p in problems)
        super().__init__(f"flux-ui's configuration needs attention:\n{joined}")


@dataclass(frozen=True)
class Deployment:
    """One model as this installation reaches it."""

    model: ModelSpec
    name: str  # deployment name: the BFL body's ``model`` and the Image API's path
    endpoint: str  # resource base URL, or the full scoring URL for an Azure ML endpoint
    auth: AuthMode
    api_key: Secret | None
    key_header: KeyHeader
    quota: Quota | None  # None: flux-ui does not pace this deployment
    tier: str | None = None


@dataclass(frozen=True)
class Settings:
    mode: Literal["foundry", "emulator"]
    deployments: Mapping[str, Deployment]  # by model ID
    output_dir: Path
    api_version: str = "preview"
    image_api_path: ImageApiPath = "deployment"
    endpoint: str | None = None
    logins: tuple[tuple[str, Secret], ...] = ()  # (user, password) pairs for the page and the API
    safety: SafetySettings = field(default_factory=SafetySettings)  # Content Safety checks (flux_ui/settings_safety.py)
    spend: SpendSettings = field(default_factory=SpendSettings)  # daily caps (flux_ui/settings_spend.py)
    users: UserSettings = field(default_factory=UserSettings)  # owners, the per-user queue cap (settings_users.py)
    shared: SharedSettings = field(default_factory=SharedSettings)  # Redis, PostgreSQL, Blob (settings_shared.py)

    def __post_init__(self) -> None:
        object.__setattr__(self, "deployments", MappingProxyType(dict(self.deployments)))

    @property
    def uses_emulator(self) -> bool:
        return self.mode == "emulator"

    def with_emulator(self, base_url: str, api_key: str, quotas: Mapping[str, Quota] | None = None) -> Settings:
        """These settings pointed at a running emulator (every model, one base URL)."""
        key = Secret(api_key)
        deployments = {}
        for model_id, spec in MODELS.items():
            quota = (quotas or {}).get(model_id) or _default_quota(spec)
            endpoint = base_url.rstrip("/") + (emulator_endpoint_path(model_id) if spec.aml else "")
            deployments[model_id] = Deployment(
                spec, model_id, endpoint, "key", key, "bearer", quota, spec.default_tier
            )
        return replace(self, mode="emulator", endpoint=base_url, deployments=deployments,
                       safety=self.safety.with_emulator(base_url, api_key))


def _default_quota(spec: ModelSpec) -> Quota | None:
    rpm = spec.default_rpm
    return Quota.from_rpm(rpm) if rpm else None


_TIER_RE = re.compile(r"^(?P<n>\d+)(?:/(?P<w>\d+(?:\.\d+)?)s)?$")


def parse_tier(spec: ModelSpec, text: str) -> tuple[Quota, str | None] | str:
    """A tier name, an RPM, or ``N/Ss`` → (quota, tier name); a problem string otherwise."""
    text = text.strip().lower()
    if text in spec.rpm_tiers:
        return Quota.from_rpm(spec.rpm_tiers[text]), text
    m = _TIER_RE.match(text)
    if m and int(m["n"]) > 0 and (m["w"] is None or float(m["w"]) > 0):
        if m["w"] is None:
            return Quota.from_rpm(int(m["n"])), None
        return Quota(int(m["n"]), float(m["w"])), None
    names = ", ".join(spec.rpm_tiers) or "none (give a number)"
    return f"tier {text!r} for {spec.id} is not a tier name ({names}), an RPM such as 30, or N/Ss such as 20/5s"


def _parse_deployments(text: str, problems: list[str]) -> list[tuple[ModelSpec, str, Quota | None, str | None]]:
    found: list[tuple[ModelSpec, str, Quota | None, str | None]] = []
    example = "FLUX_DEPLOYMENTS=FLUX.2-pro:medium,FLUX.2-flex=my-flex:low"
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        head, _, tier_text = item.partition(":")
        model_id, _, name = head.partition("=")
        model_id, name = model_id.strip(), name.strip()
        spec = MODELS.get(model_id)
        if spec is None or spec.aml:
            known = ", ".join(MODELS.foundry)
            problems.append(f"FLUX_DEPLOYMENTS names {model_id!r}, which is not a Foundry FLUX model "
                            f"(use {known}); for example {example}")
            continue
        if name and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name):
            problems.append(f"FLUX_DEPLOYMENTS: deployment name {name!r} for {model_id} has characters a "
                            f"deployment name cannot have; for example {example}")
            continue
        quota, tier = _default_quota(spec), spec.default_tier
        if tier_text:
            parsed = parse_tier(spec, tier_text)
            if isinstance(parsed, str):
                problems.append(f"FLUX_DEPLOYMENTS: {parsed}; for example {example}")
                continue
            quota, tier = parsed
        if any(f[0].id == spec.id for f in found):
            problems.append(f"FLUX_DEPLOYMENTS lists {model_id} twice; keep one entry; for example {example}")
            continue
        found.append((spec, name or spec.id, quota, tier))
    return found


def _check_url(var: str, value: str, example: str, problems: list[str]) -> str | None:
    parsed = urlparse(value)
    if parsed.scheme not in ("https", "http") or not parsed.netloc:
        problems.append(f"{var}={value!r} is not a URL; for example {var}={example}")
        return None
    if parsed.scheme == "http" and parsed.hostname not in LOOPBACK_NAMES:
        problems.append(f"{var} must use https (plain http only for a local emulator); for example {var}={example}")
        return None
    return value.rstrip("/")


def _choice(env: Mapping[str, str], var: str, allowed: tuple[str, ...], default: str, problems: list[str]) -> str:
    value = env.get(var, "").strip().lower() or default
    if value not in allowed:
        problems.append(f"{var}={value!r} is not one of {', '.join(allowed)}; for example {var}={allowed[-1]}")
        return default
    return value


def _parse_logins(text: str, problems: list[str]) -> tuple[tuple[str, Secret], ...]:
    example = "FLUX_UI_USERS=alice:long-passphrase-1,bob:long-passphrase-2"
    logins: list[tuple[str, Secret]] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        user, sep, password = item.partition(":")
        if not sep or not user.strip():
            problems.append(f"FLUX_UI_USERS needs user:password pairs separated by commas; for example {example}")
        elif len(password) < MIN_PASSWORD_LEN:
            problems.append(f"FLUX_UI_USERS: the password for {user.strip()!r} is shorter than {MIN_PASSWORD_LEN} "
                            f"characters; for example {example}")
        else:
            logins.append((user.strip(), Secret(password)))
    return tuple(logins)


#: Folders that are the system's own: never the outputs folder (a subfolder such as /tmp/flux-outputs
#: or /srv/flux is fine). Under the pseudo file systems nothing is. Top-level /lib* folders too.
SYSTEM_FOLDERS = ("/tmp", "/var/tmp", "/etc", "/var", "/var/lib", "/var/log", "/usr", "/usr/bin", "/usr/sbin",
                  "/usr/lib", "/usr/local", "/usr/share", "/bin", "/sbin", "/opt", "/boot", "/root", "/srv",
                  "/home", "/run", "/mnt", "/media", "/snap", "/private", "/private/tmp", "/private/var",
                  "/private/etc", "/System", "/Library", "/Applications", "/Users", "/Volumes",
                  "C:/Windows", "C:/Program Files", "C:/Program Files (x86)", "C:/ProgramData", "C:/Users")
PSEUDO_FOLDERS = ("/proc", "/sys", "/dev")
#: Where flux-ui itself lives (app.py, .env, .git): never the outputs folder, nor anything above it.
APP_FOLDER = Path(__file__).resolve().parents[1]
_OUTPUT_EXAMPLE = "FLUX_OUTPUT_DIR=/data/flux-outputs"


def _system_folder(spellings: set[Path]) -> bool:
    """Whether any spelling (as given, and resolved) of the folder is a system folder."""
    def key(path: Path | str) -> str:
        return os.path.normcase(str(path)).replace("\\", "/")

    named = {key(Path(f)) for f in SYSTEM_FOLDERS} | {key(Path(f).resolve()) for f in SYSTEM_FOLDERS}
    named.add(key(Path(tempfile.gettempdir()).resolve()))
    pseudo = {key(f) for f in PSEUDO_FOLDERS}
    for path in spellings:
        if key(path) in named or any(key(p) in pseudo for p in (path, *path.parents)):
            return True
        if path.parent == Path(path.anchor) and path.name.lower().startswith("lib"):
            return True  # /lib, /lib32, /lib64, /libx32
    return False


def _check_output_dir(output_dir: Path, problems: list[str]) -> None:
    """The outputs folder must be a folder of its own: never a disk's root, the home folder or a
    folder above it, a system folder (/tmp itself, /etc, /var, /usr, ...), or flux-ui's own folder
    or one above it, where the page could reach the code, .env and .git beside the images."""
    spelled = Path(os.path.abspath(output_dir.expanduser()))
    resolved = spelled.resolve()
    home, app = Path.home().resolve(), APP_FOLDER
    if resolved == Path(resolved.anchor) or resolved == home or resolved in home.parents:
        problems.append(f"FLUX_OUTPUT_DIR={output_dir} would let the page fetch every file under {resolved}, "
                        "because flux-ui serves its outputs folder; point it at a folder of its own, for example "
                        f"{_OUTPUT_EXAMPLE}")
    elif _system_folder({spelled, resolved}):
        problems.append(f"FLUX_OUTPUT_DIR={output_dir} is a system folder ({resolved}); flux-ui writes its images "
                        "and history there and serves them, so point it at a folder of its own, for example "
                        f"{_OUTPUT_EXAMPLE} (a subfolder such as /tmp/flux-outputs works too)")
    elif resolved == app or resolved in app.parents:
        problems.append(f"FLUX_OUTPUT_DIR={output_dir} is flux-ui's own folder {app} or one above it, which holds "
                        "its code, .env and .git; point it at a folder of its own, for example "
                        f"FLUX_OUTPUT_DIR=outputs (the default, inside the app's folder) or {_OUTPUT_EXAMPLE}")


def _merged_env(env: Mapping[str, str] | None, dotenv_path: str | Path | None) -> dict[str, str]:
    """The process environment (or ``env``) over the ``.env`` file, values stripped."""
    merged: dict[str, str] = {}
    if dotenv_path is not None and Path(dotenv_path).is_file():
        merged.update({k: v for k, v in dotenv_values(dotenv_path).items() if v is not None})
    merged.update(os.environ if env is None else env)
    return {k: v.strip() for k, v in merged.items()}


def load_settings(env: Mapping[str, str] | None = None, dotenv_path: str | Path | None = ".env") -> Settings:
    """Settings from ``env`` (the process environment by default) over a ``.env`` file."""
    env = _merged_env(env, dotenv_path)
    problems: list[str] = []
    emulator = _choice(env, "FLUX_EMULATOR", ("auto", "off", "on"), "auto", problems)
    key_header = _choice(env, "FLUX_KEY_HEADER", ("api-key", "bearer"), "bearer", problems)
    image_api_path = _choice(env, "FLUX_IMAGE_API_PATH", ("model", "deployment"), "deployment", problems)
    api_version = env.get("FLUX_API_VERSION") or "preview"
    output_dir = Path(env.get("FLUX_OUTPUT_DIR") or "outputs")
    _check_output_dir(output_dir, problems)
    logins = _parse_logins(env.get("FLUX_UI_USERS", ""), problems)
    users = load_users(env, problems, [name for name, _ in logins])
    endpoint_vars = [f"{spec.endpoint_env}_ENDPOINT" for spec in MODELS.on_route(Route.AML)]
    configured = any(env.get(var) for var in ("AZURE_ENDPOINT", *endpoint_vars))
    on_emulator = emulator == "on" or (emulator == "auto" and not configured)
    safety = load_safety(env, problems, uses_emulator=on_emulator, check_url=_check_url)
    spend = load_spend(env, problems)
    shared = load_shared(env, problems)

    if on_emulator:
        if problems:
            raise SettingsError(problems)
        return Settings(mode="emulator", deployments={}, output_dir=output_dir, api_version=api_version,
                        logins=logins, safety=safety, users=users, spend=spend, shared=shared)
    if not configured:
        raise SettingsError([f"FLUX_EMULATOR=off but neither AZURE_ENDPOINT nor {' nor '.join(endpoint_vars)} is "
                             "set; for example AZURE_ENDPOINT=https://my-resource.services.ai.azure.com"])
    endpoint, deployments = _foundry_deployments(env, key_header, problems)
    for spec in MODELS.on_route(Route.AML):
        deployment = _endpoint_deployment(spec, env, problems)
        if deployment is not None:
            deployments[spec.id] = deployment
    if problems:
        raise SettingsError(problems)
    return Settings(mode="foundry", deployments=deployments, output_dir=output_dir, api_version=api_version,
                    image_api_path=image_api_path, endpoint=endpoint, logins=logins,
                    safety=safety, users=users, spend=spend, shared=shared)  # type: ignore[arg-type]


def _foundry_deployments(env: Mapping[str, str], key_header: str,
                         problems: list[str]) -> tuple[str | None, dict[str, Deployment]]:
    """The Foundry resource's endpoint and the deployments FLUX_DEPLOYMENTS lists on it (all four by default)."""
    endpoint_text = env.get("AZURE_ENDPOINT", "")
    if not endpoint_text:
        return None, {}
    endpoint = _check_url("AZURE_ENDPOINT", endpoint_text, "https://my-resource.services.ai.azure.com", problems)
    key_text = env.get("AZURE_API_KEY", "")
    auth = _choice(env, "AZURE_AUTH", ("key", "entra"), "key", problems) if env.get("AZURE_AUTH") else (
        "key" if key_text else "")
    if not auth:
        problems.append("AZURE_API_KEY is not set; set it to the key under Keys and Endpoint "
                        "(for example AZURE_API_KEY=0123abcd...), or set AZURE_AUTH=entra to sign in "
                        "with Microsoft Entra ID")
    elif auth == "key" and not key_text:
        problems.append("AZURE_AUTH=key needs AZURE_API_KEY; for example AZURE_API_KEY=0123abcd... "
                        "(from Keys and Endpoint)")
    key = Secret(key_text) if key_text and auth == "key" else None
    listed = env.get("FLUX_DEPLOYMENTS") or ",".join(MODELS.foundry)
    deployments: dict[str, Deployment] = {}
    for spec, name, quota, tier in _parse_deployments(listed, problems):
        if endpoint and auth:
            deployments[spec.id] = Deployment(
                spec, name, endpoint, auth, key, key_header, quota, tier  # type: ignore[arg-type]
            )
    return endpoint, deployments


def _endpoint_deployment(spec: ModelSpec, env: Mapping[str, str], problems: list[str]) -> Deployment | None:
    """A model on its own Azure ML endpoint, from its three settings (PREFIX_ENDPOINT, _KEY, _RPM)."""
    prefix = spec.endpoint_env
    url_text = env.get(f"{prefix}_ENDPOINT", "")
    if not url_text:
        return None
    url = _check_url(f"{prefix}_ENDPOINT", url_text, _SCORING_EXAMPLE, problems)
    key_text = env.get(f"{prefix}_KEY", "")
    if not key_text:
        problems.append(f"{prefix}_ENDPOINT is set but {prefix}_KEY is not; for example "
                        f"{prefix}_KEY={_KEY_EXAMPLE}")
    quota = None
    if env.get(f"{prefix}_RPM"):
        parsed = parse_tier(spec, env[f"{prefix}_RPM"])
        if isinstance(parsed, str):
            problems.append(f"{prefix}_RPM: {parsed}; for example {prefix}_RPM=30")
        else:
            quota = parsed[0]
    if not (url and key_text):
        return None
    return Deployment(spec, spec.id, url, "key", Secret(key_text), "bearer", quota)
