"""Reading a JSON request body safely: a size limit, one clear 4xx message for anything else wrong."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request

MAX_BODY_BYTES = 1 << 20


class BadRequest(Exception):
    """A request this server cannot answer; `status` is the HTTP code (4xx)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def read_json_object(request: Request, max_body_bytes: int) -> Mapping[str, Any]:
    """The body as a JSON object, or BadRequest (413 past the size limit, 400 otherwise)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
        raise BadRequest(413, f"body of {declared} bytes is over the limit of {max_body_bytes}")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_body_bytes:
            raise BadRequest(413, f"body is over the limit of {max_body_bytes} bytes")
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadRequest(400, f"body is not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise BadRequest(400, "body must be a JSON object")
    return value
