"""`pars route`: an OpenAI-compatible router in front of stock vLLM replicas (`--scheduling-policy priority`).

For POST /v1/completions and /v1/chat/completions it scores the request with the one front-end scorer, sets
vLLM's integer `priority` from the score's rank (a request that already has one keeps it; without a scorer
it neither scores nor sets one: a plain balancer), picks a replica (pars.route.balancing) and forwards the
body with every other field and header (Authorization included); the answer, streamed or not, comes back
byte for byte with the upstream's status, plus `x-pars-replica` and `x-pars-priority` headers.
GET /v1/models goes to a healthy replica; GET /health is 200 while one replica is healthy; GET /metrics is
Prometheus. Faults: malformed JSON or no prompt -> 400, a body over the limit -> 413; a replica that refuses
the connection is marked unhealthy and the request goes to another (it was never sent, so nothing is
duplicated); one that fails later -> 502, times out -> 504; an unhealthy replica gets no requests until its
/health answers 200 again. A client that disconnects closes the upstream stream, and vLLM aborts the request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from pars.route.balancing import (NEUTRAL_SHARE, NEUTRAL_WORK, AnchoredRank, Balancer, RankWindow, Replica,
                                  predicted_tokens, priority_of_share)
from pars.route.length_log import LengthLog, completion_tokens
from pars.route.requests import MAX_BODY_BYTES, BadRequest, read_json_object
from pars.scoring import FrontEndScorer
from pars.scoring.metrics import ScoringMetrics
from pars.scoring.text import CHAT_COMPLETIONS, COMPLETIONS, UnreadableRequest, user_text

log = logging.getLogger(__name__)

MAX_LOGGED_ANSWER_BYTES = 16 << 20  # a longer answer is relayed but not measured for the length log
# Hop-by-hop headers (RFC 9110 7.6.1) and the ones the proxy recomputes are not forwarded.
DROPPED_HEADERS = {"host", "content-length", "connection", "keep-alive", "transfer-encoding", "te", "trailer",
                   "upgrade", "proxy-authorization", "proxy-authenticate"}
# Added to every relayed answer, so a client or a test can see where its request went and at what priority.
REPLICA_HEADER, PRIORITY_HEADER = "x-pars-replica", "x-pars-priority"


@dataclass(frozen=True)
class RouterSettings:
    upstreams: tuple[str, ...]
    balancer: str = "least-work"
    max_body_bytes: int = MAX_BODY_BYTES
    upstream_timeout_s: float = 600.0
    connect_timeout_s: float = 5.0
    health_interval_s: float = 2.0
    log_lengths: str | None = None  # append each finished request's length here (pars.route.length_log)
    log_prompts: str = "text"  # or "hash"
    score_quantiles: tuple[float, ...] = ()  # the checkpoint's; empty: rank among recent scores instead


class RouterMetrics:
    def __init__(self, replicas: Sequence[Replica]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("pars_router_requests", "Requests answered by an upstream, by replica and status",
                                ["replica", "status"], registry=r)
        self.rejected = Counter("pars_router_rejected_requests", "Requests the router answered itself with an error",
                                ["status"], registry=r)
        self.upstream_errors = Counter("pars_router_upstream_errors", "Upstream failures by replica and kind "
                                       "(connect, timeout, transport)", ["replica", "kind"], registry=r)
        self.scoring = ScoringMetrics("pars_router_scoring", "pars_router_scoring_seconds", "Requests the router "
                                      "scored", registry=r)
        self.priority = Histogram("pars_router_priority", "vLLM priority given to scored requests",
                                  buckets=tuple(range(0, 1001, 100)), registry=r)
        self.in_flight = Gauge("pars_router_in_flight", "Requests in flight per replica", ["replica"], registry=r)
        self.work = Gauge("pars_router_outstanding_work", "Predicted tokens in flight per replica", ["replica"],
                          registry=r)
        self.healthy = Gauge("pars_router_replica_healthy", "1 while the replica passes its health check",
                             ["replica"], registry=r)
        for replica in replicas:
            self.healthy.labels(replica=replica.url).set(1)

    def show(self, replica: Replica) -> None:
        self.in_flight.labels(replica=replica.url).set(replica.in_flight)
        self.work.labels(replica=replica.url).set(replica.work)
        self.healthy.labels(replica=replica.url).set(1 if replica.healthy else 0)


class RelayedResponse(StreamingResponse):
    """An upstream answer relayed as it streams. However the exchange ends (finished, client gone, error), the
    upstream response is closed at once, so vLLM sees the disconnect and aborts what the client abandoned,
    and `on_close` releases the replica's share."""

    def __init__(self, upstream: httpx.Response, body: AsyncIterator[bytes], on_close: Callable[[], None],
                 extra_headers: Mapping[str, str]) -> None:
        super().__init__(body, status_code=upstream.status_code,
                         headers={**forwarded_headers(upstream.headers), **extra_headers})
        self.upstream = upstream
        self.on_close = on_close

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:  # noqa: ANN401 - ASGI
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self.upstream.aclose()
            self.on_close()


def forwarded_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name.lower() not in DROPPED_HEADERS}


class Router:
    """The router's state: replicas, balancer, rank window, scorer, HTTP client, metrics."""

    def __init__(self, scorer: FrontEndScorer | None, settings: RouterSettings) -> None:
        """`scorer` None: a plain balancer that neither scores nor sets a priority (each replica serves FCFS)."""
        self.scorer = scorer
        self.settings = settings
        self.replicas = [Replica(url.rstrip("/")) for url in settings.upstreams]
        self.balancer = Balancer(self.replicas, settings.balancer)
        self.window = AnchoredRank(settings.score_quantiles) if settings.score_quantiles else RankWindow()
        self.length_log = LengthLog(settings.log_lengths, settings.log_prompts) if settings.log_lengths else None
        self.metrics = RouterMetrics(self.replicas)
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(settings.upstream_timeout_s,
                                                              connect=settings.connect_timeout_s),
                                        limits=httpx.Limits(max_connections=None, max_keepalive_connections=64))

    async def priority_and_work(self, endpoint: str, body: Mapping[str, Any]) -> tuple[int, float]:
        result = await self.scorer.score(endpoint, body)
        self.metrics.scoring.observe(result)
        if result.score is None:
            share = NEUTRAL_SHARE
        else:
            share = self.window.share_below(result.score)
            self.window.observe(result.score)
        return priority_of_share(share), predicted_tokens(share)

    async def forward(self, request: Request, endpoint: str) -> Response:
        try:
            body = dict(await read_json_object(request, self.settings.max_body_bytes))
            if "prompt" not in body and "messages" not in body:
                raise BadRequest(400, 'the body has no "prompt" (completions) or "messages" (chat)')
        except BadRequest as err:
            self.metrics.rejected.labels(status=str(err.status)).inc()
            return JSONResponse({"error": {"message": str(err), "type": "BadRequestError", "code": err.status}},
                                status_code=err.status)
        if self.scorer is not None:
            priority, work = await self.priority_and_work(endpoint, body)
            if "priority" not in body:
                body["priority"] = priority
                self.metrics.priority.observe(priority)
        else:
            work = NEUTRAL_WORK
        return await self.send(endpoint, body, forwarded_headers(request.headers), work, self._logger_for(endpoint, body))

    def _logger_for(self, endpoint: str, body: Mapping[str, Any]) -> Callable[[bytes], None] | None:
        """What to do with a complete answer: log its length, when a log is kept and the prompt is readable."""
        if self.length_log is None:
            return None
        try:
            prompt = user_text(endpoint, body)
        except UnreadableRequest:
            return None
        log_ = self.length_log

        def record(answer: bytes) -> None:
            tokens = completion_tokens(answer, bool(body.get("stream")))
            if tokens is not None:
                log_.append(prompt, tokens, body.get("model"))

        return record

    async def send(self, path: str, body: dict[str, Any], headers: dict[str, str], work: float,
                   on_answer: Callable[[bytes], None] | None = None) -> Response:
        tried: set[str] = set()
        while (replica := self.balancer.choose(tried)) is not None:
            tried.add(replica.url)
            upstream = self.client.build_request("POST", replica.url + path, json=body, headers=headers)
            replica.dispatch(work)
            self.metrics.show(replica)
            try:
                response = await self.client.send(upstream, stream=True)
            except httpx.ConnectError:  # never reached the replica: try another one
                self._done(replica, work)
                self._unhealthy(replica, "connect")
                continue
            except httpx.TimeoutException:
                self._done(replica, work)
                return self._upstream_error(replica, "timeout", 504)
            except httpx.TransportError:
                self._done(replica, work)
                return self._upstream_error(replica, "transport", 502)
            self.metrics.requests.labels(replica=replica.url, status=str(response.status_code)).inc()
            relay = self._relay(response, replica, on_answer if response.status_code == 200 else None)
            shown = {REPLICA_HEADER: replica.url}
            if "priority" in body:
                shown[PRIORITY_HEADER] = str(body["priority"])
            return RelayedResponse(response, relay, lambda: self._done(replica, work), shown)
        self.metrics.rejected.labels(status="503").inc()
        return JSONResponse({"error": {"message": "no healthy upstream", "type": "ServiceUnavailable", "code": 503}},
                            status_code=503)

    async def _relay(self, response: httpx.Response, replica: Replica,
                     on_answer: Callable[[bytes], None] | None) -> AsyncIterator[bytes]:
        """The upstream's bytes as they come (a failure mid-answer ends the answer there, counted); a complete
        answer that the client received whole goes to `on_answer`."""
        kept: list[bytes] | None = [] if on_answer else None
        size = 0
        try:
            async for chunk in response.aiter_raw():
                yield chunk
                if kept is not None:
                    size += len(chunk)
                    if size > MAX_LOGGED_ANSWER_BYTES:
                        kept = None
                    else:
                        kept.append(chunk)
        except httpx.TransportError:
            self.metrics.upstream_errors.labels(replica=replica.url, kind="transport").inc()
            return
        if kept is not None and on_answer is not None:
            on_answer(b"".join(kept))

    def _done(self, replica: Replica, work: float) -> None:
        replica.release(work)
        self.metrics.show(replica)

    def _unhealthy(self, replica: Replica, kind: str) -> None:
        log.warning("upstream %s failed (%s); no requests until its /health passes", replica.url, kind)
        replica.healthy = False
        self.metrics.upstream_errors.labels(replica=replica.url, kind=kind).inc()
        self.metrics.show(replica)

    def _upstream_error(self, replica: Replica, kind: str, status: int) -> JSONResponse:
        self.metrics.upstream_errors.labels(replica=replica.url, kind=kind).inc()
        return JSONResponse({"error": {"message": f"upstream {replica.url}: {kind}", "type": "UpstreamError",
                                       "code": status}}, status_code=status)

    async def check_health(self) -> None:
        """One round of health checks: a replica is healthy while its /health answers 200."""
        async def check(replica: Replica) -> None:
            try:
                response = await self.client.get(replica.url + "/health", timeout=2.0)
                healthy = response.status_code == 200
            except httpx.HTTPError:
                healthy = False
            if healthy != replica.healthy:
                log.warning("upstream %s is %s", replica.url, "healthy again" if healthy else "unhealthy")
            replica.healthy = healthy
            self.metrics.show(replica)

        await asyncio.gather(*(check(r) for r in self.replicas))

    async def models(self, request: Request) -> Response:
        for replica in [r for r in self.replicas if r.healthy]:
            try:
                response = await self.client.get(replica.url + "/v1/models", headers=forwarded_headers(request.headers))
            except httpx.HTTPError:
                continue
            return Response(response.content, status_code=response.status_code,
                            media_type=response.headers.get("content-type"))
        return JSONResponse({"error": {"message": "no healthy upstream", "code": 503}}, status_code=503)


def build_router_app(scorer: FrontEndScorer | None, settings: RouterSettings) -> Starlette:
    router = Router(scorer, settings)

    async def completions(request: Request) -> Response:
        return await router.forward(request, COMPLETIONS)

    async def chat(request: Request) -> Response:
        return await router.forward(request, CHAT_COMPLETIONS)

    async def health(_: Request) -> Response:
        ok = any(r.healthy for r in router.replicas)
        return Response("ok" if ok else "no healthy upstream", status_code=200 if ok else 503, media_type="text/plain")

    async def prometheus(_: Request) -> Response:
        return Response(generate_latest(router.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        async def health_loop() -> None:
            while True:
                await asyncio.sleep(settings.health_interval_s)
                await router.check_health()

        task = asyncio.create_task(health_loop())
        try:
            yield
        finally:
            task.cancel()
            await router.client.aclose()
            if scorer is not None:
                scorer.close()

    routes = [Route(COMPLETIONS, completions, methods=["POST"]), Route(CHAT_COMPLETIONS, chat, methods=["POST"]),
              Route("/v1/models", router.models, methods=["GET"]), Route("/health", health, methods=["GET"]),
              Route("/metrics", prometheus, methods=["GET"])]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.router = router
    return app
