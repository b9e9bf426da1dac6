"""Providers that refuse a parameter: `FakeOpenAI(refuse_params=ParamRefusal("presence_penalty",
style="vllm"))` answers every request that carries one of the parameters with the 400 that kind
of server sends (src/selfinstruct/llm/params.py lists the shapes).

Styles: "openai" (and Azure: `param` and code `unsupported_parameter`), "vllm" (pydantic's
extra_forbidden in a message, `param` null), "message" (Gemini as a dict: the message only),
"gemini" (the same in a one-item list, as Gemini's OpenAI endpoint sends it), and
"out_of_range" (OpenAI's 400 for a bad value: not a refusal, the request must fail).
"""

from __future__ import annotations

from typing import Any

STYLES = ("openai", "vllm", "message", "gemini", "out_of_range")


class ParamRefusal:
    def __init__(self, *params: str, style: str = "openai") -> None:
        if style not in STYLES:
            raise ValueError(f"unknown style {style!r}; choose from {STYLES}")
        self.params, self.style = params, style
        self.refused = 0  # requests answered with the 400

    def check(self, body: dict[str, Any]) -> tuple[int, Any] | None:
        """The 400 for a body that carries a refused parameter, else None."""
        name = next((p for p in self.params if p in body), None)
        if name is None:
            return None
        self.refused += 1
        return 400, payload(name, body[name], self.style)


def payload(name: str, value: Any, style: str) -> Any:
    if style == "openai":
        message = f"Unsupported parameter: '{name}' is not supported with this model."
        if name == "max_tokens":
            message += " Use 'max_completion_tokens' instead."
        error = {"message": message, "type": "invalid_request_error", "param": name}
        return {"error": {**error, "code": "unsupported_parameter"}}
    if style == "vllm":
        detail = {
            "type": "extra_forbidden",
            "loc": ("body", name),
            "msg": "Extra inputs are not permitted",
            "input": value,
        }
        return {
            "object": "error",
            "message": str([detail]),
            "type": "BadRequestError",
            "param": None,
            "code": 400,
        }
    if style == "out_of_range":
        message = f"Invalid '{name}': decimal above maximum value. Expected a value <= 2."
        error = {"message": message, "type": "invalid_request_error", "param": name}
        return {"error": {**error, "code": "decimal_above_max_value"}}
    message = f'Invalid JSON payload received. Unknown name "{name}": Cannot find field.'
    google = {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}
    return [google] if style == "gemini" else google
