"""A full queue answers "busy, try again in a moment" (texts.BUSY), in the page and through gradio_client alike.

Gradio counts the queue itself (`demo.queue(max_size=...)`) and refuses one request too many with HTTP 503; each
client then shows words of its own ("Queue is full! Please try again." from gradio_client, "This application is
currently busy" in the page) and neither reads the answer's body. The one refusal of `/queue/join` whose words both
show as sent is a validation error (HTTP 422, a list of `validate` verdicts), so this ASGI middleware rewrites
exactly that 503 into one. Everything else passes through untouched, streams included. No gradio import here.
"""
from __future__ import annotations

import json

from .texts import BUSY

JOIN = "/queue/join"


def busy_body(message: str = BUSY) -> bytes:
    """The refusal, in the form Gradio's validators answer with (one verdict, named after what refused)."""
    verdict = {"__type__": "validate", "is_valid": False, "message": message, "parameter_name": "queue"}
    return json.dumps({"detail": [verdict]}).encode()


class BusyAnswer:
    """ASGI middleware: Gradio's full-queue 503 on `/queue/join` becomes a 422 that says `BUSY`."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        joining = scope["type"] == "http" and scope["method"] == "POST" and scope["path"].endswith(JOIN)
        if not joining:
            return await self.app(scope, receive, send)
        refused = False

        async def reply(message):
            nonlocal refused
            if message["type"] == "http.response.start" and message["status"] == 503:
                refused = True
                body = busy_body()
                await send({"type": "http.response.start", "status": 422,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
            elif not refused:  # the original body of a rewritten answer is dropped
                await send(message)

        await self.app(scope, receive, reply)
