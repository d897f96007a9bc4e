"""The curl snippet: a POSIX shell script that needs only curl, base64, tr and sed (no jq).

The JSON body is written by a here-document, so a reference is spliced in at run time with
``$(base64 < image1.png | tr -d '\\n')`` instead of being inlined; the answer is read with ``sed``,
which is enough for the few fields it needs (``b64_json``, ``url``, ``polling_url``, ``status``,
``sample``). See :mod:`flux_ui.client.snippets` for where the plan comes from.
"""

from __future__ import annotations

import json
import secrets

from flux_ui.client.snippets import Credential, Plan, Ref
from flux_ui.registry import Route

#: The first text value named $1 in the JSON file $2. Splitting at , { } puts each member on a line
#: of its own; a quote inside a text value is escaped (\"), so a prompt cannot fake a member.
_FIELD = r"""field() {
  tr ',{}' '\n\n\n' < "$2" | sed -n "s/^[[:space:]]*\"$1\"[[:space:]]*:[[:space:]]*\"\([^\"]*\)\".*/\1/p" \
    | head -n 1 | sed 's#\\/#/#g;s#\\u0026#\&#g'
}"""
_FETCH = """fetch() {
  case "$1" in
    "$ORIGIN"/*) curl -sS -f -H "$AUTH" -o "$2" "$1" ;;
    *) curl -sS -f -o "$2" "$1" ;;
  esac
}"""


def quote(text: str) -> str:
    """``text`` as one shell word, whatever it holds."""
    return "'" + text.replace("'", "'\\''") + "'"


def curl_snippet(plan: Plan) -> str:
    """The plan as a shell script that sends it with curl and saves ``plan.output``."""
    lines = [*_head(plan), *_credential(plan.credential), f"URL={quote(plan.full_url)}"]
    if plan.route is not Route.AML:
        lines.append(f"ORIGIN={quote(plan.origin)}")
    lines.append("")
    if plan.form is not None:
        lines += _send_multipart(plan)
    else:
        lines += [*_body(plan), "", *_send_json(plan)]
    saved_to = plan.output if plan.route is Route.AML else "response.json"
    lines += [
        'if [ "$status" -ge 400 ]; then',
        f'  echo "HTTP $status:" >&2; cat {saved_to} >&2; echo >&2',
        *([f"  rm -f {plan.output}"] if plan.route is Route.AML else []),
        "  exit 1",
        "fi",
    ]
    if plan.route is not Route.AML:
        lines += ["", *_read_answer(plan)]
    lines.append(f'echo "Saved {plan.output}"')
    return "\n".join(lines) + "\n"


def _head(plan: Plan) -> list[str]:
    lines = ["#!/bin/sh", *(f"# {line}" for line in plan.intro("curl"))]
    lines += ["# It needs a POSIX shell, curl, base64, tr and sed.", "set -eu", ""]
    return lines


def _credential(credential: Credential) -> list[str]:
    if credential.env is None:
        return ["# A Microsoft Entra ID token for the identity `az login` signed in; it needs the",
                "# Cognitive Services User role on the resource.",
                f"TOKEN=$(az account get-access-token --resource {credential.resource} "
                "--query accessToken -o tsv)",
                'AUTH="Authorization: Bearer $TOKEN"']
    env = credential.env
    value = f"Bearer ${env}" if credential.header == "Authorization" else f"${env}"
    return [f': "${{{env}:?set {env} to {credential.what}}}"', f'AUTH="{credential.header}: {value}"']


def _body(plan: Plan) -> list[str]:
    """A here-document that writes request.json; with references, one that reads their files."""
    assert plan.json_body is not None
    tokens: dict[str, Ref] = {}

    def token(ref: object) -> str:
        if not isinstance(ref, Ref):
            raise TypeError(f"{type(ref).__name__} is not JSON")
        key = f"flux-ui-ref-{secrets.token_hex(8)}"
        tokens[key] = ref
        return key

    text = json.dumps(plan.json_body, indent=2, ensure_ascii=False, default=token)
    if not tokens:
        return ["cat > request.json <<'JSON'", text, "JSON"]
    # An unquoted here-document expands $, ` and \ ; escape them, then splice in each file.
    text = text.replace("\\", "\\\\").replace("$", "\\$").replace("`", "\\`")
    for key, ref in tokens.items():
        text = text.replace(key, f"$(base64 < {ref.name} | tr -d '\\n')")
    return ["# The body; each reference goes in as bare base64, read from its file.",
            "cat > request.json <<JSON", text, "JSON"]


def _send_json(plan: Plan) -> list[str]:
    headers = " ".join(f"-H {quote(f'{k}: {v}')}" for k, v in plan.headers.items())
    out = plan.output if plan.route is Route.AML else "response.json"
    return [f'status=$(curl -sS -X POST "$URL" -H "$AUTH" {headers} \\',
            f"  --data-binary @request.json -o {out} -w '%{{http_code}}')"]


def _send_multipart(plan: Plan) -> list[str]:
    assert plan.form is not None
    parts = [f"--form-string {quote(f'{k}={v}')}" for k, v in plan.form.items()]
    parts += [f"-F {quote(f'{field}=@{ref.name};type={ref.mime}')}" for field, ref in plan.files.items()]
    headers = [f"-H {quote(f'{k}: {v}')}" for k, v in plan.headers.items()]
    return ['status=$(curl -sS -X POST "$URL" -H "$AUTH" \\',
            *(f"  {part} \\" for part in (*headers, *parts)),
            "  -o response.json -w '%{http_code}')"]


def _read_answer(plan: Plan) -> list[str]:
    """Save the image: base64 in the answer, a link to fetch at once, or (BFL) a task to poll."""
    out = plan.output
    decode = [
        f"field b64_json response.json | base64 -d > {out}",
        f"if [ ! -s {out} ]; then",
        "  url=$(field url response.json)",
        '  [ -n "$url" ] || { echo "No image in the answer:" >&2; cat response.json >&2; exit 1; }',
        f'  fetch "$url" {out}',
        "fi",
    ]
    lines = ["# field NAME FILE: the first text value called NAME in the JSON answer FILE.", _FIELD,
             "# fetch URL FILE: GET a link (signed links lapse in minutes); the key goes to the endpoint only.",
             _FETCH, ""]
    if plan.route is not Route.BFL:
        return [*lines, *decode]
    return [
        *lines,
        "polling_url=$(field polling_url response.json)",
        'if [ -n "$polling_url" ]; then',
        "  # A task to poll, as BFL's own API answers: ask until it is no longer Pending.",
        "  while :; do",
        '    fetch "$polling_url" task.json',
        "    task_status=$(field status task.json)",
        '    [ "$task_status" = Pending ] || break',
        "    sleep 1",
        "  done",
        '  [ "$task_status" = Ready ] || { echo "The task ended without an image: $task_status" >&2; exit 1; }',
        f'  fetch "$(field sample task.json)" {out}',
        "else",
        *(f"  {line}" for line in decode),
        "fi",
    ]
