"""The model service: a FastAPI app on ONNX Runtime, served by one uvicorn worker, no torch.

Endpoints::

    ``POST /predict``   an image (``image/png`` or ``image/jpeg`` body, a ``multipart/form-data`` upload in
                        field ``file``, or JSON ``{"image": [[[r, g, b], ...]]}``, pixels ``(H, W, C)`` in
                        [0, 255]) or a sentence (JSON ``{"text": "..."}``); returns the class, the
                        probabilities and the model's name and version
    ``GET /healthz``    liveness: the process answers (the models are loaded before it listens)
    ``GET /readyz``     readiness: every model loaded and warmed up by one inference; 503 otherwise
    ``GET /metrics``    Prometheus text: requests by endpoint and status, a latency histogram,
                        predictions by model and class, inferences in flight, the models as an info metric,
                        model reloads by result
    ``POST /admin/reload``  with ``--registry``: load the version the alias (``champion``) points to now and
                        swap it in without a restart; if it is missing or corrupt, answer 409 with the reason
                        and keep serving the old model. An operator's endpoint: with ``DLBOOK_ADMIN_TOKEN``
                        set in the service's environment it needs ``Authorization: Bearer <token>`` (401
                        without, 403 with a wrong one); without a token it answers loopback clients only

With ``--registry DIR`` the image model comes from a :class:`dlbook.deploy.registry.Registry` (MLflow,
SQLite backend): the version its alias points to, with that registry version as the served version.
With ``--log-db FILE`` every answered prediction is written to a :class:`dlbook.deploy.predlog.PredictionLog`
(``--log-inputs``: with the request body); the client's ``x-request-id`` header names the row.

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
import hmac
import ipaddress
import os
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest

from dlbook.deploy.runtime import InputError, Predictor, decode_image, image_from_list, parse_json

ENDPOINTS = ("/predict", "/healthz", "/readyz", "/metrics", "/admin/reload")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class ServiceConfig:
    """What the service loads and the limits it keeps."""

    models: tuple[str, ...]  # bundle folders (dlbook.deploy.runtime.write_bundle): at most one image, one text
    max_body_bytes: int = 256 * 1024  # a 32x32 PNG is ~3 KB, its JSON ~15 KB; a sentence far less
    timeout_s: float = 10.0  # waiting for a free slot plus the inference itself
    max_concurrent: int = 2  # inferences at once: one per core; more only queue inside ONNX Runtime
    threads: int | None = None  # ONNX Runtime intra-op threads per model (None: one per core)
    registry: str | None = None  # a dlbook.deploy.registry.Registry folder: serve the version `alias` points to
    registered_model: str = "cifar10-classifier"  # the model's name in that registry
    alias: str = "champion"  # MLflow alias, not a stage (stages are deprecated since MLflow 2.9)
    log_db: str | None = None  # a SQLite prediction log (dlbook.deploy.predlog), one row per answer
    log_inputs: bool = False  # keep each request body in the log, not only its SHA-256
    admin_token: str | None = None  # DLBOOK_ADMIN_TOKEN: /admin/reload needs it (None: loopback clients only)

    def __post_init__(self) -> None:
        if not self.models and not self.registry:
            raise ValueError("ServiceConfig needs at least one model bundle folder or a registry")
        if self.max_body_bytes < 1 or self.timeout_s <= 0 or self.max_concurrent < 1:
            raise ValueError(f"limits must be positive: max_body_bytes={self.max_body_bytes}, "
                             f"timeout_s={self.timeout_s}, max_concurrent={self.max_concurrent}")


def admin_refusal(authorization: str | None, client_host: str | None, token: str | None) -> tuple[int, str] | None:
    """Why an ``/admin/reload`` request is refused, as ``(status, message)``, or None to let it through.

    With a token, the request must send ``Authorization: Bearer <token>`` (compared in constant
    time); without one, only a loopback client may reload, so that a service published on a
    network port is not reloadable by anyone who can reach it.

    Example:
        >>> admin_refusal("Bearer s3cret", "10.0.0.7", "s3cret") is None
        True
        >>> admin_refusal(None, "10.0.0.7", None)[0]
        403
    """
    if token:
        scheme, _, sent = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not sent:
            return 401, "send the operator token: Authorization: Bearer <the service's DLBOOK_ADMIN_TOKEN>"
        if not hmac.compare_digest(sent.strip().encode(), token.encode()):
            return 403, "wrong operator token (compare with the service's DLBOOK_ADMIN_TOKEN)"
        return None
    try:
        loopback = client_host is not None and ipaddress.ip_address(client_host).is_loopback
    except ValueError:  # not an IP address (a Unix socket, a test client)
        loopback = False
    if not loopback:
        return 403, ("/admin/reload answers loopback clients only when the service has no operator token; "
                     "start it with DLBOOK_ADMIN_TOKEN set and send Authorization: Bearer <token>")
    return None


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
        self.reloads = Counter("model_reloads", "Reloads of the registry's model, by result (ok, failed)",
                               ["result"], registry=registry)


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


def _warm(predictor: Predictor) -> None:
    if predictor.kind == "image":
        predictor.predict_image(np.zeros(predictor.image_shape, np.float32))
    else:
        predictor.predict_text(predictor.encoder.itos[2])


def load_from_registry(config: ServiceConfig, cache: str, threads: int | None = None) -> Predictor:
    """The warmed-up :class:`Predictor` of the version ``config.alias`` points to, served as that version.

    A missing alias or version, missing files or an ONNX file that does not load is a ``RuntimeError``
    (a :class:`~dlbook.deploy.registry.RegistryError`) whose message says which.
    """
    from dlbook.deploy.registry import Registry, RegistryError

    registry = Registry(config.registry, config.registered_model)
    entry = registry.get(alias=config.alias)
    folder = registry.fetch(entry, cache)
    try:
        predictor = Predictor(folder, threads=threads)
        _warm(predictor)
    except Exception as exc:  # ONNX Runtime's load errors, a bad meta.json, a model that does not run
        detail = str(exc).replace(str(folder), "<bundle>")  # the service's cache path says nothing to the caller
        raise RegistryError(f"version {entry.version} of {entry.name!r} does not load: "
                            f"{type(exc).__name__}: {detail[:300]}") from exc
    predictor.version = entry.version
    return predictor


def create_app(config: ServiceConfig) -> FastAPI:
    """The service as an ASGI app; the models load at startup (uvicorn's lifespan), before it listens."""
    registry = CollectorRegistry()
    metrics = _Metrics(registry)
    state = {"models": {}, "ready": False, "in_flight": 0, "max_in_flight": 0}
    executor = ThreadPoolExecutor(max_workers=config.max_concurrent, thread_name_prefix="inference")
    cache = tempfile.mkdtemp(prefix="dlbook-serve-") if config.registry else None
    log = None
    if config.log_db:
        from dlbook.deploy.predlog import PredictionLog

        log = PredictionLog(config.log_db, keep_inputs=config.log_inputs)

    def install(predictor: Predictor, source: str) -> None:
        if predictor.kind in state["models"] and source == "bundle":
            raise ValueError(f"two {predictor.kind} models given ({predictor.folder}); serve one of each kind")
        state["models"][predictor.kind] = predictor  # one assignment: requests in flight keep the old object
        metrics.info.labels(predictor.kind).info({"name": predictor.name, "version": predictor.version})

    @asynccontextmanager
    async def lifespan(app):
        if config.registry:
            install(load_from_registry(config, cache, config.threads), "registry")
        for folder in config.models:
            predictor = Predictor(folder, threads=config.threads)
            install(predictor, "bundle")
            _warm(predictor)
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
            data = await request.body()  # what the log keeps: the body, or the sentence alone
            payload = parse_json(data)
            if not isinstance(payload, dict) or not ({"text", "image"} & set(payload)):
                raise InputError(422, 'send a JSON object with a "text" field (a sentence) or an "image" field '
                                      '(pixels (H, W, C) in [0, 255])')
            if "text" in payload:
                predictor = model("text")
                result = await infer(predictor.predict_text, payload["text"])
                data = payload["text"].encode("utf-8")
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
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        if log is not None:
            log.write(request_id, model=result["model"], version=result["version"], predicted=result["class_index"],
                      class_name=result["class"], confidence=result["probabilities"][result["class"]],
                      body=data)
        return JSONResponse(result, headers={"x-request-id": request_id})

    @app.post("/admin/reload")
    async def reload(request: Request):
        refusal = admin_refusal(request.headers.get("authorization"), request.client.host if request.client else None,
                                config.admin_token)
        if refusal is not None:
            headers = {"www-authenticate": "Bearer"} if refusal[0] == 401 else None
            return JSONResponse({"detail": refusal[1]}, status_code=refusal[0], headers=headers)
        if not config.registry:
            raise InputError(409, "this service serves fixed bundles; start it with --registry DIR to reload")
        old = state["models"].get("image")
        try:
            new = await asyncio.to_thread(load_from_registry, config, cache, config.threads)
        except RuntimeError as exc:
            metrics.reloads.labels("failed").inc()
            still = f"{old.name} version {old.version}" if old else "nothing"
            return _error(409, f"reload failed, still serving {still}: {exc}")
        install(new, "registry")
        metrics.reloads.labels("ok").inc()
        return {"reloaded": True, "model": new.name, "version": new.version,
                "previous_version": old.version if old else None}

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
    parser.add_argument("--model", action="append", default=[], help="a bundle folder (repeatable)")
    parser.add_argument("--registry", default=None, help="a dlbook.deploy.registry folder: serve its alias")
    parser.add_argument("--registered-model", default=ServiceConfig.registered_model)
    parser.add_argument("--alias", default=ServiceConfig.alias)
    parser.add_argument("--log-db", default=None, help="a SQLite file: log every prediction")
    parser.add_argument("--log-inputs", action="store_true", help="keep request bodies in the log")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")),
                        help="default: $PORT, else 8000")
    parser.add_argument("--max-body-bytes", type=int, default=ServiceConfig.max_body_bytes)
    parser.add_argument("--timeout-s", type=float, default=ServiceConfig.timeout_s)
    parser.add_argument("--max-concurrent", type=int, default=ServiceConfig.max_concurrent)
    parser.add_argument("--threads", type=int, default=None)
    a = parser.parse_args(argv)
    if not a.model and not a.registry:
        parser.error("give --model DIR (repeatable) or --registry DIR")
    return ServiceConfig(tuple(a.model), a.max_body_bytes, a.timeout_s, a.max_concurrent, a.threads, a.registry,
                         a.registered_model, a.alias, a.log_db, a.log_inputs,
                         os.environ.get("DLBOOK_ADMIN_TOKEN") or None), a.host, a.port


def main(argv: list[str] | None = None) -> None:
    """Serve with one uvicorn worker (see the module docstring for why one)."""
    import uvicorn

    config, host, port = parse_args(argv)
    uvicorn.run(create_app(config), host=host, port=port, workers=1, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
