"""The model service: a FastAPI app on ONNX Runtime, served by one uvicorn worker, no torch.

Endpoints:
    ``POST /predict``   an image (``image/png`` or ``image/jpeg`` body, a ``multipart/form-data`` upload in
                        field ``file``, or JSON ``{"image": [[[r, g, b], ...]]}``, pixels ``(H, W, C)`` in
                        [0, 255]) or a sentence (JSON ``{"text": "..."}``); returns the class, the
                        probabilities and the model's name and version
    ``GET /healthz``    liveness: the process answers (the models are loaded before it listens)
    ``GET /readyz``     readiness: every model loaded and warmed up by one inference; 503 otherwise
    ``GET /metrics``    Prometheus text: requests by endpoint and status, a latency histogram,
                        predictions by model and class, inferences in flight, the models as an info metric

Every bad input is a 4xx whose ``detail`` says what was wrong, never a 500: 400 malformed JSON,
413 a body, text or token count over its limit (the body is bounded *while* it is read, before
it is whole), 415 a content type or image format the service does not take, 422 a missing or
mistyped field, an undecodable image, a wrong size or channel count, empty text, NaN or
infinity. Inference runs in a pool of ``max_concurrent`` threads; a request that cannot start
within ``timeout_s`` is 503, one that does not finish within it is 504.

One worker on purpose: each uvicorn worker process has its own default metrics registry, so
``--workers 4`` would make every scrape see a quarter of the counts. Scale by running more
containers behind a load balancer, each scraped on its own.

Run it (the same command the tests and the ``Containerfile`` use)::

    python -m dlbook.deploy.serve --model bundles/cifar10 --model bundles/sst2 --host 127.0.0.1 --port 8000

Example:
    >>> config = ServiceConfig(models=("bundles/cifar10",))
    >>> config.max_concurrent, config.timeout_s
    (2, 10.0)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

from dlbook.deploy.runtime import InputError, Predictor, decode_image, image_from_list, parse_json

ENDPOINTS = ("/predict", "/healthz", "/readyz", "/metrics")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class ServiceConfig:
    """What the service loads and the limits it keeps."""

    models: tuple[str, ...]  # bundle folders (dlbook.deploy.runtime.write_bundle): at most one image, one text
    max_body_bytes: int = 256 * 1024  # a 32x32 PNG is ~3 KB, its JSON ~15 KB; a sentence far less
    timeout_s: float = 10.0  # waiting for a free slot plus the inference itself
    max_concurrent: int = 2  # inferences at once: one per core; more only queue inside ONNX Runtime
    threads: int | None = None  # ONNX Runtime intra-op threads per model (None: one per core)

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("ServiceConfig needs at least one model bundle folder")
        if self.max_body_bytes < 1 or self.timeout_s <= 0 or self.max_concurrent < 1:
            raise ValueError(f"limits must be positive: max_body_bytes={self.max_body_bytes}, "
                             f"timeout_s={self.timeout_s}, max_concurrent={self.max_concurrent}")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status)


class _Metrics:
    def __init__(self, registry: CollectorRegistry):
        self.requests = Counter("http_requests", "HTTP requests by endpoint, method and status",
                                ["endpoint", "method", "status"], registry=registry)
        self.latency = Histogram("http_request_duration_seconds", "Time to answer a request, by endpoint",
                                 ["endpoint"], buckets=LATENCY_BUCKETS, registry=registry)
        self.predictions = Counter("predictions", "Predictions returned, by model and class",
                                   ["model", "class"], registry=registry)
        self.in_flight = Gauge("inferences_in_flight", "Inferences running now", registry=registry)
        self.info = Info("model", "The models served", ["kind"], registry=registry)


class _MetricsMiddleware:
    """Outermost ASGI layer: counts every request by endpoint, method and status, and times it."""

    def __init__(self, app, metrics: _Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        endpoint = scope["path"] if scope["path"] in ENDPOINTS else "other"  # bounded label values
        status = {"code": 500}

        async def send_status(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        tic = time.perf_counter()
        try:
            await self.app(scope, receive, send_status)
        finally:
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - tic)
            self.metrics.requests.labels(endpoint, scope["method"], str(status["code"])).inc()


class _BodyLimitMiddleware:
    """Refuse bodies over ``limit`` bytes with 413: by Content-Length at once, else while the chunks arrive."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        too_big = _error(413, f"the body is over the limit of {self.limit} bytes")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await too_big(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.limit:  # a chunked upload without a length: stop reading here
                return await too_big(scope, receive, send)
        body, sent = b"".join(chunks), False

        async def replay():
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await self.app(scope, replay, send)


def create_app(config: ServiceConfig) -> FastAPI:
    """The service as an ASGI app; the models load at startup (uvicorn's lifespan), before it listens."""
    registry = CollectorRegistry()
    metrics = _Metrics(registry)
    state = {"models": {}, "ready": False, "in_flight": 0, "max_in_flight": 0}
    executor = ThreadPoolExecutor(max_workers=config.max_concurrent, thread_name_prefix="inference")

    @asynccontextmanager
    async def lifespan(app):
        for folder in config.models:
            predictor = Predictor(folder, threads=config.threads)
            if predictor.kind in state["models"]:
                raise ValueError(f"two {predictor.kind} models given ({folder}); serve one of each kind")
            state["models"][predictor.kind] = predictor
            metrics.info.labels(predictor.kind).info({"name": predictor.name, "version": predictor.version})
            warm = (np.zeros(predictor.image_shape, np.float32) if predictor.kind == "image" else None)
            predictor.predict_image(warm) if warm is not None else predictor.predict_text(predictor.encoder.itos[2])
        state["ready"] = True
        yield
        state["ready"] = False
        executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="dlbook model service", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.config, app.state.service = config, state
    semaphore = asyncio.Semaphore(config.max_concurrent)

    @app.exception_handler(InputError)
    async def input_error(request, exc: InputError):
        return _error(exc.status, exc.message)

    def model(kind: str) -> Predictor:
        if kind not in state["models"]:
            raise InputError(422, f"this service has no {kind} model; it serves {sorted(state['models'])}")
        return state["models"][kind]

    async def infer(fn, *args) -> dict:
        tic = time.perf_counter()
        try:
            await asyncio.wait_for(semaphore.acquire(), config.timeout_s)
        except asyncio.TimeoutError:
            raise InputError(503, f"all {config.max_concurrent} inference slots stayed busy for "
                                  f"{config.timeout_s} s; retry later") from None
        state["in_flight"] += 1
        state["max_in_flight"] = max(state["max_in_flight"], state["in_flight"])
        metrics.in_flight.inc()

        def done(_):
            state["in_flight"] -= 1
            metrics.in_flight.dec()
            semaphore.release()  # only when the thread has finished, even after a timeout
        future = asyncio.get_running_loop().run_in_executor(executor, fn, *args)
        future.add_done_callback(done)
        try:
            return await asyncio.wait_for(asyncio.shield(future), max(config.timeout_s - (time.perf_counter() - tic), 0))
        except asyncio.TimeoutError:
            raise InputError(504, f"the inference took longer than the request timeout of {config.timeout_s} s") from None

    @app.post("/predict")
    async def predict(request: Request):
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind == "application/json":
            payload = parse_json(await request.body())
            if not isinstance(payload, dict) or not ({"text", "image"} & set(payload)):
                raise InputError(422, 'send a JSON object with a "text" field (a sentence) or an "image" field '
                                      '(pixels (H, W, C) in [0, 255])')
            if "text" in payload:
                predictor = model("text")
                result = await infer(predictor.predict_text, payload["text"])
            else:
                predictor = model("image")
                result = await infer(lambda: predictor.predict_image(image_from_list(payload["image"])))
        elif kind in ("image/png", "image/jpeg", "multipart/form-data"):
            predictor = model("image")
            if kind == "multipart/form-data":
                form = await request.form()
                upload = form.get("file")
                if upload is None or isinstance(upload, str):
                    raise InputError(422, 'the form has no file field "file"; upload the image as file=@image.png')
                data = await upload.read()
            else:
                data = await request.body()
            result = await infer(lambda: predictor.predict_image(decode_image(data)))
        else:
            raise InputError(415, f"content type {kind or '(none)'!r} is not served; use application/json, "
                                  "image/png, image/jpeg or multipart/form-data")
        metrics.predictions.labels(result["model"], result["class"]).inc()
        return result

    @app.get("/healthz")
    async def healthz():
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz():
        body = {"ready": state["ready"], "in_flight": state["in_flight"], "max_in_flight": state["max_in_flight"],
                "models": {k: {"name": p.name, "version": p.version} for k, p in state["models"].items()}}
        return JSONResponse(body, status_code=200 if state["ready"] else 503)

    @app.get("/metrics")
    async def prometheus():
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(_BodyLimitMiddleware, limit=config.max_body_bytes)
    app.add_middleware(_MetricsMiddleware, metrics=metrics)  # added last: outermost, so it sees every 413 as well
    return app


def parse_args(argv: list[str] | None = None) -> tuple[ServiceConfig, str, int]:
    """The command line: ``--model DIR`` (repeat for a second kind), ``--host``, ``--port`` and the limits."""
    parser = argparse.ArgumentParser(prog="python -m dlbook.deploy.serve", description=__doc__.split("\n")[0])
    parser.add_argument("--model", action="append", required=True, help="a bundle folder (repeatable)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")),
                        help="default: $PORT, else 8000")
    parser.add_argument("--max-body-bytes", type=int, default=ServiceConfig.max_body_bytes)
    parser.add_argument("--timeout-s", type=float, default=ServiceConfig.timeout_s)
    parser.add_argument("--max-concurrent", type=int, default=ServiceConfig.max_concurrent)
    parser.add_argument("--threads", type=int, default=None)
    a = parser.parse_args(argv)
    return ServiceConfig(tuple(a.model), a.max_body_bytes, a.timeout_s, a.max_concurrent, a.threads), a.host, a.port


def main(argv: list[str] | None = None) -> None:
    """Serve with one uvicorn worker (see the module docstring for why one)."""
    import uvicorn

    config, host, port = parse_args(argv)
    uvicorn.run(create_app(config), host=host, port=port, workers=1, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
