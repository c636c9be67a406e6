"""Front-end scoring for vLLM's OpenAI server, plugged in with vLLM's public `--middleware` option.

A pure ASGI middleware in the API-server process: for POST /v1/completions and /v1/chat/completions it
reads the JSON body, scores the user's text with the shared `FrontEndScorer` (a distilled student inline on
the event loop, at about 0.1 ms a prompt; a teacher micro-batched on a niced worker thread) and forwards the
body with the score added:
- mode "pars": `vllm_xargs["pars_score"]`, which the PARS scheduler class orders by;
- mode "priority": vLLM's integer `priority` for stock `--scheduling-policy priority` (no aging, no
  maximum wait); a request that already has a `priority` keeps it.
A request that cannot be scored in time goes on unscored (`pars_fallback` says why; in priority mode it
gets the neutral priority: the mean of recent ones, held while any request given it is in flight); one whose text the rule cannot read (token ids, several
prompts) goes on without either, and the engine scores its decoded prompt; so scoring never fails a request or delays it past
`frontend_timeout_s`. Bodies that are not JSON objects pass through untouched: vLLM answers them.
Settings come from the environment (`pars serve` sets them): PARS_PREDICTOR, PARS_FRONT_END_MODE,
PARS_FRONTEND_TIMEOUT_S, PARS_SCORE_BATCH. Outcomes are Prometheus counters on vLLM's /metrics.
With `pars serve --learn DIR` (PARS_LEARN_DIR) it also watches each response go out, to log how long it was
(pars.learning): a stream is asked for its usage, and the usage event the client did not ask for is removed.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Awaitable, Callable, Hashable, MutableMapping
from typing import Any

from pars.integrations.vllm.metrics import front_end_metrics
from pars.learning.learner import Learner
from pars.learning.responses import ResponseWatcher, ask_for_usage
from pars.scheduling.request_fields import FALLBACK_KEY, SCORE_KEY, priority_of
from pars.paths import default_predictor_dir
from pars.scheduling import NeutralSize, SchedulerSettings
from pars.scoring import ENDPOINTS, FrontEndScorer, ScoreResult
from pars.scoring.text import ENGINE_READABLE, UnreadableRequest, user_text

logger = logging.getLogger("vllm.pars")

MODE_ENV = "PARS_FRONT_END_MODE"
MODES = ("pars", "priority")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def annotate(body: dict[str, Any], result: ScoreResult, mode: str, neutral: NeutralSize,
             holder: Hashable) -> dict[str, Any]:
    """The body with the score (or the fallback reason) in the fields `mode` uses; `body` is not changed.

    In priority mode a request without a score gets the neutral priority, assigned to `holder` (the
    request): release it from `neutral` when the request ends."""
    annotated = dict(body)
    xargs = dict(body.get("vllm_xargs") or {})
    if result.score is None:
        if result.reason not in ENGINE_READABLE:
            xargs[FALLBACK_KEY] = result.reason or "unknown"
    elif mode == "pars":
        xargs[SCORE_KEY] = result.score
    if mode == "priority" and "priority" not in body:
        if result.score is not None:
            neutral.observe(result.score)
        annotated["priority"] = priority_of(result.score if result.score is not None else neutral.assign(holder))
    annotated["vllm_xargs"] = xargs
    return annotated


class PARSScoringMiddleware:
    """`--middleware pars.integrations.vllm.middleware.PARSScoringMiddleware` (vLLM builds it with the app)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.mode = os.environ.get(MODE_ENV, "pars")
        if self.mode not in MODES:
            raise ValueError(f"{MODE_ENV}={self.mode!r}: choose one of {MODES}")
        settings = SchedulerSettings.from_sources(None, os.environ)
        directory = settings.predictor or default_predictor_dir()
        self.scorer = FrontEndScorer.for_checkpoint(directory, settings)
        self.neutral = NeutralSize()
        self.metrics = front_end_metrics()
        self.learner = Learner.from_environment(self.scorer)
        logger.info("PARS front-end scorer (%s mode): predictor %s, timeout %.2f s", self.mode, directory,
                    settings.frontend_timeout_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") not in ENDPOINTS:
            await self.app(scope, receive, send)
            return
        raw, disconnected = await _read_body(receive)
        holder = object()  # this request, for the neutral priority it may hold until it ends
        watched: WatchedResponse | None = None
        if disconnected is None:
            raw, watched = await self._scored_body(scope["path"], raw, holder)
            scope = {**scope, "headers": _with_content_length(scope.get("headers", []), len(raw))}
        try:
            await self.app(scope, _replay(raw, disconnected, receive), watched.send(send) if watched else send)
        finally:
            self.neutral.release(holder)
            if watched is not None:
                watched.finish()

    async def _scored_body(self, path: str, raw: bytes, holder: Hashable) -> tuple[bytes, WatchedResponse | None]:
        try:
            body = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return raw, None  # vLLM answers malformed JSON with a 400
        if not isinstance(body, dict):
            return raw, None
        result = await self.scorer.score(path, body)
        self.metrics.observe(result)
        body, watched = self._watched(path, body)
        return json.dumps(annotate(body, result, self.mode, self.neutral, holder)).encode(), watched

    def _watched(self, path: str, body: dict[str, Any]) -> tuple[dict[str, Any], WatchedResponse | None]:
        """With a learner: the body (usage asked for in a stream) and the watcher of its response."""
        if self.learner is None:
            return body, None
        try:
            text = user_text(path, body)
        except UnreadableRequest:
            return body, None
        body, hide_usage = ask_for_usage(body)
        model = body.get("model") if isinstance(body.get("model"), str) else None
        return body, WatchedResponse(self.learner, text, model, bool(body.get("stream")), hide_usage)


class WatchedResponse:
    """One response on its way out: its body passes through a `ResponseWatcher`; at the end the learner gets
    the length it proves (only for a 200: an error proves nothing)."""

    def __init__(self, learner: Learner, text: str, model: str | None, streaming: bool, hide_usage: bool) -> None:
        self.learner = learner
        self.text = text
        self.model = model
        self.watcher = ResponseWatcher(streaming, hide_usage)
        self.status: int | None = None

    def send(self, send: Send) -> Send:
        async def watched(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.status = message.get("status")
            elif message["type"] == "http.response.body" and self.status == 200:
                body = self.watcher.feed(message.get("body", b""))
                if not message.get("more_body", False):
                    body += self.watcher.flush()
                message = {**message, "body": body}
            await send(message)

        return watched

    def finish(self) -> None:
        outcome = self.watcher.outcome() if self.status == 200 else None
        if outcome is None:
            return
        try:
            self.learner.observe(self.text, outcome, self.model)
        except Exception as err:  # noqa: BLE001 - the response is out; learning must never fail a request
            self.learner.metrics.faults.labels(kind="observe").inc()
            logger.warning("PARS learner: a finished request was not learned from (%r)", err)


async def _read_body(receive: Receive) -> tuple[bytes, Message | None]:
    """The whole request body, or what came before the client disconnected (and that message)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks), None


def _replay(raw: bytes, disconnected: Message | None, receive: Receive) -> Receive:
    """A `receive` that hands the (new) body over once, then defers to the real one (disconnects)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        if disconnected is not None:
            return disconnected
        return await receive()

    return replayed


def _with_content_length(headers: list[tuple[bytes, bytes]], length: int) -> list[tuple[bytes, bytes]]:
    kept = [(name, value) for name, value in headers if name.lower() != b"content-length"]
    return kept + [(b"content-length", str(length).encode())]
