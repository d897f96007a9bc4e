"""The checks that need no network: the versions a bug report names, and the configuration.

The configuration is judged by :func:`flux_ui.settings.load_settings` itself, so the doctor finds
exactly the problems flux-ui would refuse to start with, in the same words (each names its variable
and an example value). This module only says which of :func:`~flux_ui.settings.variables` are set,
never showing a key, a token or a password.
"""

from __future__ import annotations

import getpass
import importlib.metadata
import os
import platform
import subprocess
import tomllib
from collections.abc import Mapping
from pathlib import Path

from flux_ui.doctor.report import Section
from flux_ui.secrets import remember
from flux_ui.settings import APP_FOLDER, Settings, SettingsError, load_settings, variables
from flux_ui.settings import _merged_env as merged_env  # the same precedence as load_settings
from flux_ui.settings_shared import redact

#: Credentials DefaultAzureCredential reads from the environment: only whether each is set is shown.
ENTRA_VARIABLES = ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH",
                   "AZURE_FEDERATED_TOKEN_FILE")


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def flux_ui_version() -> str:
    """The project's version from pyproject.toml (flux-ui runs from its folder, not installed), with
    the git commit when there is one: a bug report should say which code it ran."""
    try:
        version = tomllib.loads((APP_FOLDER / "pyproject.toml").read_text())["project"]["version"]
    except (OSError, KeyError, tomllib.TOMLDecodeError):
        version = _version("flux-ui")
    try:
        commit = subprocess.run(["git", "-C", str(APP_FOLDER), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=3, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{version} (commit {commit})" if commit else version


def environment() -> dict[str, str]:
    """flux-ui, Python, the OS and the libraries that talk to the service or serve the page."""
    return {"flux-ui": flux_ui_version(), "Python": platform.python_version(), "OS": platform.platform(),
            "gradio": _version("gradio"), "httpx": _version("httpx")}


#: Variables whose value holds a secret in part (a URL's password, a connection string's key): shown redacted.
REDACTED_VARIABLES = ("FLUX_UI_REDIS_URL", "FLUX_UI_DATABASE_URL", "AZURE_STORAGE_CONNECTION_STRING")


def is_secret(name: str) -> bool:
    """Variables whose value is never shown: keys and the login passwords."""
    return name.endswith("_KEY") or name == "FLUX_UI_USERS"


def shown(name: str, value: str) -> str:
    """How the report names a set variable: its value, redacted, or only that it is set."""
    if is_secret(name):
        return f"{name} is set (its value is not shown)"
    if name in REDACTED_VARIABLES:
        return f"{name} is set: {redact(value)} (any password or key in it is not shown)"
    return f"{name}={value}"


def _remember_secrets(env: Mapping[str, str]) -> None:
    """Register every configured secret for redaction, also those load_settings refused before wrapping."""
    for name, value in env.items():
        if (is_secret(name) or name in REDACTED_VARIABLES) and value:
            remember(value)
            if name == "FLUX_UI_USERS":
                for pair in value.split(","):
                    remember(pair.partition(":")[2].strip())


def _at_fault(problem: str, names: list[str]) -> str:
    """The variable a settings problem is about: the first one it names."""
    found = [(problem.find(name), name) for name in names if name in problem]
    return min(found)[1] if found else "configuration"


def configuration(env: Mapping[str, str] | None, dotenv_path: str | Path | None,
                  section: Section) -> Settings | None:
    """Load the settings as the app would; a check per problem, then which variables are set."""
    merged = merged_env(env, dotenv_path)
    _remember_secrets(merged)
    names = [row[0] for row in variables()]
    where = f"{dotenv_path} and the environment" if dotenv_path and Path(dotenv_path).is_file() else "the environment"
    settings: Settings | None = None
    try:
        settings = load_settings(env, dotenv_path)
    except SettingsError as err:
        for problem in err.problems:
            section.add("fail", f"{_at_fault(problem, names)} is wrong", fix=problem)
    else:
        mode = "the local emulator" if settings.uses_emulator else "your Foundry resource"
        section.add("pass", f"the settings from {where} load without a problem (flux-ui would run on {mode})")
        _outputs_folder(settings.output_dir, section)
    for name in (n for n in names if merged.get(n)):
        section.add("info", shown(name, merged[name]))
    unset = [n for n in names if not merged.get(n)]
    section.add("info", "not set, so their defaults apply: " + (", ".join(unset) or "none"))
    if merged.get("AZURE_AUTH", "").lower() == "entra":
        present = [n for n in ENTRA_VARIABLES if merged.get(n)]
        section.add("info", "for DefaultAzureCredential: " + (", ".join(f"{n} set" for n in present) or
                                                              "none of its environment variables set (az login, a "
                                                              "managed identity or another source must sign in)"))
    return settings


def _outputs_folder(folder: Path, section: Section) -> None:
    """Whether flux-ui could write its images there (the doctor creates nothing)."""
    resolved = folder.expanduser().resolve()
    existing = next((p for p in (resolved, *resolved.parents) if p.exists()), None)
    if existing is not None and existing.is_dir() and os.access(existing, os.W_OK | os.X_OK):
        state = "exists" if existing == resolved else f"will be created in {existing}"
        section.add("pass", f"outputs folder {resolved} is writable ({state})")
        return
    section.add("fail", f"outputs folder {resolved} cannot be written",
                fix=f"make {existing or resolved} writable for {_user()}, or point "
                    "FLUX_OUTPUT_DIR at a folder it can write, for example FLUX_OUTPUT_DIR=/data/flux-outputs")


def _user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "the user running it"
