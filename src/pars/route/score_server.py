"""`pars score-server`: the front-end scorer over HTTP, for users who order requests in their own router.

POST /score with an OpenAI-style body (`{"prompt": ...}` as for /v1/completions, or `{"messages": [...]}` as
for /v1/chat/completions: the same text rule as `pars serve`) answers `{"score", "priority", "rank"}`: the
ranker's score (higher = longer answer expected), vLLM's integer priority for it (the fixed map `pars serve
--mode priority` uses) and its rank, the share of the checkpoint's held-out prompts that score below it
(pars.scoring.rank; null for a checkpoint that recorded no score quantiles). A router or gateway that
balances by predicted work compares ranks: they mean the same on every replica and after a retrain.
POST /score_batch with `{"prompts": [str, ...]}` answers `{"results": [...]}` in order. A
prompt that cannot be scored in time or at all is answered, not failed: `score` null and `fallback` naming
why (the caller keeps its own order for it). Bad requests get a 4xx with `{"error": message}`: 400 for
malformed JSON or a missing prompt, 413 for a body over `max_body_bytes` or a batch over `max_batch_items`.
GET /health; GET /metrics in Prometheus format.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pars.route.requests import MAX_BODY_BYTES, BadRequest, read_json_object
from pars.scheduling.request_fields import priority_of
from pars.scoring import FrontEndScorer, ScoreResult
from pars.scoring.metrics import ScoringMetrics
from pars.scoring.rank import AnchoredRank
from pars.scoring.text import CHAT_COMPLETIONS, COMPLETIONS

MAX_BATCH_ITEMS = 256


class ScoreServerMetrics:
    """The server's own registry: requests by outcome, and the time each scoring took."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.scoring = ScoringMetrics("pars_score_server_prompts", "pars_score_server_scoring_seconds", "Prompts",
                                      registry=self.registry)
        self.rejected = Counter("pars_score_server_rejected_requests", "Requests answered with a 4xx, by status",
                                ["status"], registry=self.registry)


def result_json(result: ScoreResult, rank: AnchoredRank | None) -> dict[str, Any]:
    if result.score is None:
        return {"score": None, "priority": None, "rank": None, "fallback": result.reason}
    return {"score": result.score, "priority": priority_of(result.score),
            "rank": None if rank is None else round(rank.share_below(result.score), 4)}


def build_app(scorer: FrontEndScorer, score_quantiles: Sequence[float] = (), max_body_bytes: int = MAX_BODY_BYTES,
              max_batch_items: int = MAX_BATCH_ITEMS) -> Starlette:
    """The Starlette app around `scorer` (which it closes at shutdown); `score_quantiles` are its checkpoint's."""
    metrics = ScoreServerMetrics()
    rank = AnchoredRank(score_quantiles) if score_quantiles else None

    async def scored(endpoint: str, body: Mapping[str, Any]) -> dict[str, Any]:
        result = await scorer.score(endpoint, body)
        metrics.scoring.observe(result)
        return result_json(result, rank)

    def rejected(err: BadRequest) -> JSONResponse:
        metrics.rejected.labels(status=str(err.status)).inc()
        return JSONResponse({"error": str(err)}, status_code=err.status)

    async def score(request: Request) -> JSONResponse:
        try:
            body = await read_json_object(request, max_body_bytes)
            if "messages" in body:
                return JSONResponse(await scored(CHAT_COMPLETIONS, body))
            if "prompt" not in body:
                raise BadRequest(400, 'give "prompt" (a string) or "messages" (an OpenAI chat list)')
            return JSONResponse(await scored(COMPLETIONS, body))
        except BadRequest as err:
            return rejected(err)

    async def score_batch(request: Request) -> JSONResponse:
        try:
            body = await read_json_object(request, max_body_bytes)
            prompts = body.get("prompts")
            if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
                raise BadRequest(400, '"prompts" must be a list of strings')
            if len(prompts) > max_batch_items:
                raise BadRequest(413, f"{len(prompts)} prompts is over the limit of {max_batch_items} a request")
        except BadRequest as err:
            return rejected(err)
        results = await asyncio.gather(*(scored(COMPLETIONS, {"prompt": p}) for p in prompts))
        return JSONResponse({"results": list(results)})

    async def health(_: Request) -> Response:
        alive = scorer.is_alive()
        return Response("ok" if alive else "scorer down", status_code=200 if alive else 503, media_type="text/plain")

    async def prometheus(_: Request) -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    routes = [Route("/score", score, methods=["POST"]), Route("/score_batch", score_batch, methods=["POST"]),
              Route("/health", health, methods=["GET"]), Route("/metrics", prometheus, methods=["GET"])]

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        yield
        scorer.close()

    return Starlette(routes=routes, lifespan=lifespan)
