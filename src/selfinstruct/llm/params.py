"""Parameters a server refuses: read them from a 400's body, and leave them out from then on.

Providers' OpenAI-compatible endpoints lack some of the API's parameters (docs/providers.md):
OpenAI's reasoning models refuse `presence_penalty` and `max_tokens`, Gemini knows no
`presence_penalty`, a strict vLLM forbids extra fields. Each says so with a 400 that names the
parameter, in one of three shapes:

- OpenAI (and Azure): `{"error": {"message": "Unsupported parameter: 'presence_penalty' is not
  supported with this model.", "param": "presence_penalty", "code": "unsupported_parameter"}}`
- vLLM (pydantic's errors): `{"object": "error", "message": "[{'type': 'extra_forbidden',
  'loc': ('body', 'presence_penalty'), 'msg': 'Extra inputs are not permitted', ...}]",
  "type": "BadRequestError", "param": null, "code": 400}`
- a message only (Gemini, Groq): `{"error": {"message": "Unknown name \\"presence_penalty\\":
  Cannot find field.", "status": "INVALID_ARGUMENT"}}`

A parameter is taken as refused only when the server says it is not supported (not when its
value is merely out of range, a mistake the user should see) and names it in quotes.
"""

from __future__ import annotations

import re
from typing import Any

REQUIRED = ("model", "messages", "prompt")  # never left out: without them there is no request
REFUSAL_CODES = ("unsupported_parameter", "unsupported_value")
REFUSAL_WORDS = re.compile(
    r"unsupported|not supported|does not support|unknown (?:name|field|parameter)|"
    r"unrecognized|extra inputs?|extra_forbidden|not permitted|not allowed|cannot find field|"
    r"invalid (?:field|parameter)",
    re.IGNORECASE,
)
# A refused parameter the server takes under another name: sent under that name instead.
RENAMED = {"max_tokens": "max_completion_tokens"}


def refused(error_body: object, message: str, sent: dict[str, Any]) -> str | None:
    """The parameter of `sent` that a 400 says the server does not support, or None."""
    info = unwrap(error_body)
    text = str(info.get("message") or message)
    optional = [name for name in sent if name not in REQUIRED]
    param = info.get("param")
    if isinstance(param, str) and param in optional and info.get("code") in REFUSAL_CODES:
        return param
    if not REFUSAL_WORDS.search(text):
        return None
    for name in sorted(optional, key=len, reverse=True):
        if re.search(rf"(['\"`]){re.escape(name)}\1", text):
            return name
    return None


def unwrap(error_body: object) -> dict[str, Any]:
    """The error object of a 400's body as the openai client gives it: a dict already
    unwrapped from {"error": ...}, or Gemini's one-item list of {"error": ...}."""
    if isinstance(error_body, list) and error_body and isinstance(error_body[0], dict):
        error_body = error_body[0].get("error", error_body[0])
    return error_body if isinstance(error_body, dict) else {}


def without(body: dict[str, Any], dropped: dict[str, str]) -> dict[str, Any]:
    """The body without the parameters the server refused (a renamed one under its new name)."""
    if not any(name in body for name in dropped):
        return body
    kept = {k: v for k, v in body.items() if k not in dropped}
    for name, new in RENAMED.items():
        if name in dropped and name in body and new not in body:
            kept[new] = body[name]
    return kept


def how(name: str) -> str:
    """How a refused parameter is handled, for the summary."""
    return f"sent as {RENAMED[name]}" if name in RENAMED else "left out"
