"""The Python snippets: one with ``requests`` for every route, one with ``openai`` for the Image API.

The ``openai`` one is Microsoft's sample for FLUX on Foundry: the ordinary ``OpenAI`` client with
``base_url`` up to ``/openai`` (the deployment in the body's ``model``) or up to the deployment's
own path, as flux-ui's ``FLUX_IMAGE_API_PATH`` says, and ``api-version`` as a default query.
See :mod:`flux_ui.client.snippets` for where the plan comes from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flux_ui.client.snippets import Credential, Plan, Ref
from flux_ui.registry import Route

_INDENT = "    "
_FILE_B64 = '''def file_b64(path: str) -> str:
    """A reference as the BFL route takes it: bare base64, no data: prefix."""
    return base64.b64encode(Path(path).read_bytes()).decode("ascii")'''
_FETCH = '''def fetch(url: str) -> bytes:
    """GET a link (signed links lapse in minutes); the key goes to the endpoint's own host only."""
    auth = AUTH if urlparse(url).netloc == urlparse(URL).netloc else {}
    response = requests.get(url, headers=auth, timeout=60)
    response.raise_for_status()
    return response.content'''
_POLL = '''
    if "polling_url" in answer:  # a task to poll, as BFL's own API answers
        while True:
            task = json.loads(fetch(answer["polling_url"]))
            if task["status"] == "Ready":
                return fetch(task["result"]["sample"])
            if task["status"] != "Pending":
                raise SystemExit(f"The task ended without an image: {task['status']}")
            time.sleep(0.5)'''
_IMAGE_OF = '''def image_of(answer: dict) -> bytes:
    """The image in the JSON answer: base64, a link to fetch at once{poll_doc}."""{poll}
    item = answer["data"][0]
    if item.get("b64_json"):
        return base64.b64decode(item["b64_json"])
    if item.get("url"):
        return fetch(item["url"])
    raise SystemExit(f"No image in the answer: {{answer}}")'''


def literal(value: Any, depth: int = 0) -> str:
    """``value`` as Python source; a Ref reads its file when the snippet runs."""
    if isinstance(value, Ref):
        return f"file_b64({json.dumps(value.name)})"
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's escapes mean the same in Python
    pad, inner = _INDENT * depth, _INDENT * (depth + 1)
    if isinstance(value, Mapping):
        items = [f"{inner}{json.dumps(str(k))}: {literal(v, depth + 1)}," for k, v in value.items()]
        return "{\n" + "\n".join(items) + f"\n{pad}}}" if items else "{}"
    if isinstance(value, list | tuple):
        items = [f"{inner}{literal(v, depth + 1)}," for v in value]
        return "[\n" + "\n".join(items) + f"\n{pad}]" if items else "[]"
    raise TypeError(f"{type(value).__name__} has no literal here")


def _docstring(plan: Plan, package: str) -> list[str]:
    first, *rest = plan.intro(f"the {package} package")
    return [f'"""{first}', "", *rest, '"""', ""]


def _credential(credential: Credential) -> tuple[str, list[str]]:
    """(an expression for the key or token, the lines that get it ready)."""
    if credential.env is None:
        return "token", ["# A Microsoft Entra ID token (az login, a managed identity, ...); it needs the",
                         "# Cognitive Services User role on the resource.",
                         f"token = DefaultAzureCredential().get_token({json.dumps(credential.scope)}).token"]
    return f"os.environ[{json.dumps(credential.env)}]", []


def _auth(credential: Credential) -> list[str]:
    secret, lines = _credential(credential)
    if credential.header == "Authorization":
        return [*lines, f'AUTH = {{"Authorization": "Bearer " + {secret}}}']
    return [*lines, f"AUTH = {{{json.dumps(credential.header)}: {secret}}}"]


def _imports(stdlib: list[str], third_party: list[str]) -> list[str]:
    plain = sorted(i for i in stdlib if i.startswith("import "))
    froms = sorted(i for i in stdlib if i.startswith("from "))
    third = sorted(i for i in third_party if i.startswith("import ")) + sorted(
        i for i in third_party if i.startswith("from "))
    return [*plain, *froms, "", *third, ""]


def requests_snippet(plan: Plan) -> str:
    """The plan as a script that sends it with ``requests`` and saves ``plan.output``."""
    aml, bfl = plan.route is Route.AML, plan.route is Route.BFL
    entra = plan.credential.env is None
    stdlib = ["from pathlib import Path"]
    stdlib += [] if aml else ["import base64", "from urllib.parse import urlparse"]
    stdlib += ["import json", "import time"] if bfl else []
    stdlib += [] if entra else ["import os"]
    third = ["import requests"] + (["from azure.identity import DefaultAzureCredential"] if entra else [])
    lines = [*_docstring(plan, "requests"), *_imports(stdlib, third), f"URL = {json.dumps(plan.url)}"]
    if plan.query:
        lines.append(f"PARAMS = {json.dumps(dict(plan.query))}")
    lines += _auth(plan.credential)
    own = "".join(f"{json.dumps(k)}: {json.dumps(v)}, " for k, v in plan.headers.items())
    lines.append(f"HEADERS = {{{own}**AUTH}}")
    helpers = ([_FILE_B64] if plan.references and plan.json_body is not None else [])
    if not aml:
        poll_doc = ", or a task to poll until Ready" if bfl else ""
        helpers += [_FETCH, _IMAGE_OF.format(poll_doc=poll_doc, poll=_POLL if bfl else "")]
    lines += [*(part for helper in helpers for part in ("", "", helper)), "", ""]
    params = "params=PARAMS, " if plan.query else ""
    if plan.form is not None:
        lines += [f"form = {literal(dict(plan.form))}", f"files = {_files(plan)}",
                  f"response = requests.post(URL, {params}headers=HEADERS, data=form, files=files, timeout=240)"]
    else:
        lines += [f"body = {literal(plan.json_body)}",
                  f"response = requests.post(URL, {params}headers=HEADERS, json=body, timeout=240)"]
    lines += ["if not response.ok:", '    raise SystemExit(f"HTTP {response.status_code}: {response.text}")',
              "image = response.content" if aml else "image = image_of(response.json())",
              f"Path({json.dumps(plan.output)}).write_bytes(image)", f'print("Saved {plan.output}")']
    return "\n".join(lines) + "\n"


def _files(plan: Plan, depth: int = 0) -> str:
    items = [f"{_INDENT * (depth + 1)}{json.dumps(field)}: {_file_tuple(ref)},"
             for field, ref in plan.files.items()]
    return "{\n" + "\n".join(items) + "\n" + _INDENT * depth + "}"


def _file_tuple(ref: Ref) -> str:
    name = json.dumps(ref.name)
    return f"({name}, Path({name}).read_bytes(), {json.dumps(ref.mime)})"


def openai_snippet(plan: Plan) -> str:
    """The plan as a script for the ``openai`` package (Image API routes only)."""
    if not plan.image_api:
        raise ValueError(f"the openai package does not call the {plan.route.value} route")
    base_url, sep, operation = plan.url.rpartition("/images/")
    if not sep or operation not in ("generations", "edits"):
        raise ValueError(f"{plan.url} is not an Image API URL")
    entra = plan.credential.env is None
    stdlib = ["import base64", "import urllib.request", "from pathlib import Path"]
    stdlib += [] if entra else ["import os"]
    third = ["from openai import OpenAI"] + (["from azure.identity import DefaultAzureCredential"] if entra else [])
    secret, credential_lines = _credential(plan.credential)
    lines = [*_docstring(plan, "openai"), *_imports(stdlib, third), *credential_lines]
    if plan.credential.header == "api-key":
        lines += ["# flux-ui sends the key in an api-key header (FLUX_KEY_HEADER=api-key); the openai package",
                  "# sends it as Authorization: Bearer, which the service takes as well."]
    lines += ["client = OpenAI(", f"    base_url={json.dumps(base_url)},",
              *([f"    default_query={json.dumps(dict(plan.query))},"] if plan.query else []),
              f"    api_key={secret},", ")"]
    fields = plan.json_body if operation == "generations" else plan.typed_form
    assert fields is not None
    args = [f"    {field}={_file_tuple(ref)}," for field, ref in plan.files.items()]
    args += [f"    {name}={literal(value, 1)}," for name, value in fields.items()]
    method = "generate" if operation == "generations" else "edit"
    lines += [f"result = client.images.{method}(", *args, ")", "item = result.data[0]",
              "if item.b64_json:", "    image = base64.b64decode(item.b64_json)",
              "else:  # a signed link that lapses in minutes: fetch it at once",
              "    with urllib.request.urlopen(item.url, timeout=60) as link:", "        image = link.read()",
              f"Path({json.dumps(plan.output)}).write_bytes(image)", f'print("Saved {plan.output}")']
    return "\n".join(lines) + "\n"
