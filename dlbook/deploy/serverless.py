"""The same model as a serverless function: ``handler(event, context)``, on the service's ``Predictor``.

A function platform (AWS Lambda, Google Cloud Functions, Knative) starts a fresh process
when a request arrives and none is warm: the interpreter starts, the code is imported, the
model is loaded, and only then is the first request answered (a **cold start**). Later
requests reuse the process and its loaded model (**warm** calls). The handler keeps the
``Predictor`` in a module global for that reason, loaded from the bundle named by the
environment variable ``DLBOOK_MODEL``. :func:`measure_cold_start` times both in a fresh
interpreter, as the platform would see them.

The event is an API-gateway-style dict: ``{"body": '{"text": "..."}'}`` (a JSON string or an
already parsed dict); the answer is ``{"statusCode": ..., "body": json}``, with the same
4xx messages as the HTTP service.

Example:
    >>> handler({"body": "{"}, None)["statusCode"]    # doctest: +SKIP
    400
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from dlbook.deploy.runtime import InputError, Predictor, image_from_list, parse_json

_PREDICTOR: Predictor | None = None  # loaded on the first call: the "warm" state a platform keeps


def _predictor() -> Predictor:
    global _PREDICTOR
    if _PREDICTOR is None:
        folder = os.environ.get("DLBOOK_MODEL")
        if not folder:
            raise RuntimeError("set DLBOOK_MODEL to a model bundle folder (dlbook.deploy.runtime.write_bundle)")
        _PREDICTOR = Predictor(folder)
    return _PREDICTOR


def handler(event: dict, context=None) -> dict:
    """Answer one event: ``{"body": {"text": ...}}`` or ``{"body": {"image": [[[...]]]}}``."""
    try:
        body = event.get("body") if isinstance(event, dict) else None
        if isinstance(body, (str, bytes)):
            body = parse_json(body)
        if not isinstance(body, dict) or not ({"text", "image"} & set(body)):
            raise InputError(422, 'the body must be a JSON object with a "text" or an "image" field')
        predictor = _predictor()
        result = (predictor.predict_text(body["text"]) if "text" in body
                  else predictor.predict_image(image_from_list(body["image"])))
        return {"statusCode": 200, "body": json.dumps(result)}
    except InputError as exc:
        return {"statusCode": exc.status, "body": json.dumps({"detail": exc.message})}


_PROBE = """
import json, sys, time
t_start = time.time()
from dlbook.deploy.serverless import handler
t_import = time.time()
event = json.loads(sys.argv[1])
first = handler(event)
t_first = time.time()
warm = []
for _ in range(int(sys.argv[2])):
    tic = time.perf_counter(); handler(event); warm.append(time.perf_counter() - tic)
print(json.dumps({"start": t_start, "import": t_import, "first": t_first, "status": first["statusCode"],
                  "warm": warm, "torch_loaded": "torch" in sys.modules}))
"""


def measure_cold_start(bundle: str | os.PathLike, event: dict, warm_calls: int = 50) -> dict:
    """Run the handler in a fresh Python process: cold start (process start to first answer) and warm calls.

    Returns seconds: ``cold_start_s`` (spawning the interpreter, importing, loading the model,
    answering once), split into ``interpreter_s``, ``import_s`` and ``first_call_s``; each warm
    call's time ``warm_s`` (summarise with ``dlbook.timing.Timing(warm_s).p50_ms``); and
    ``torch_loaded`` (False: the function never imported torch).

    Example:
        >>> measure_cold_start("bundles/sst2", {"body": {"text": "a fine film"}})["cold_start_s"]  # doctest: +SKIP
        0.41
    """
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "DLBOOK_MODEL": str(bundle),
           "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    tic = time.time()
    out = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(event), str(warm_calls)], env=env,
                         capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"the handler process failed:\n{out.stderr[-2000:]}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    if r["status"] != 200:
        raise RuntimeError(f"the handler answered {r['status']} to the probe event; send a valid event")
    return {"cold_start_s": r["first"] - tic, "interpreter_s": r["start"] - tic, "import_s": r["import"] - r["start"],
            "first_call_s": r["first"] - r["import"], "warm_s": tuple(r["warm"]), "torch_loaded": r["torch_loaded"]}
