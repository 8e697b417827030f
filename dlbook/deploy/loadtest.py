"""A bounded load test on loopback: an asyncio httpx client, and the ``/metrics`` cross-check.

:func:`run_load` keeps ``concurrency`` requests in flight until ``total`` are answered and
returns throughput, latency percentiles (through :class:`dlbook.timing.Timing`), the status
codes and the predicted classes it received. :func:`scrape` reads the service's Prometheus
counters; :func:`check_metrics` says whether the counters moved by exactly what the client
sent and received (requests by status, predictions by class). locust would do the same as a
subprocess, but imported inside Jupyter it hangs (gevent patches the event loop).

Example:
    >>> LoadResult(1, 4, 2.0, (0.1, 0.2, 0.3, 0.4), {200: 4}, {"cat": 4}).throughput_rps
    2.0
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
from prometheus_client.parser import text_string_to_metric_families

from dlbook.timing import Timing


@dataclass(frozen=True)
class LoadResult:
    """What the client saw at one concurrency."""

    concurrency: int
    requests: int
    seconds: float
    latencies_s: tuple[float, ...]
    statuses: dict[int, int]  # HTTP status -> count (0: no response: connection error or client timeout)
    classes: dict[str, int] = field(default_factory=dict)  # predicted class -> count, from 200 responses

    @property
    def throughput_rps(self) -> float:
        return self.requests / self.seconds

    @property
    def errors(self) -> int:
        """Requests not answered 200."""
        return sum(n for s, n in self.statuses.items() if s != 200)

    def percentile_ms(self, q: float) -> float:
        return Timing(self.latencies_s).percentile_ms(q)

    def row(self) -> dict:
        """One row of a results table."""
        return {"concurrency": self.concurrency, "requests": self.requests, "throughput (req/s)": self.throughput_rps,
                "p50 (ms)": self.percentile_ms(50), "p95 (ms)": self.percentile_ms(95),
                "p99 (ms)": self.percentile_ms(99), "errors": self.errors}


async def _load(url: str, payloads: list[dict], concurrency: int, total: int, timeout_s: float) -> LoadResult:
    latencies, statuses, classes = [], Counter(), Counter()
    next_index = iter(range(total))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits) as client:
        async def worker():
            for i in next_index:
                tic = time.perf_counter()
                try:
                    response = await client.post("/predict", **payloads[i % len(payloads)])
                    status = response.status_code
                    if status == 200:
                        classes[response.json()["class"]] += 1
                except httpx.HTTPError:
                    status = 0
                latencies.append(time.perf_counter() - tic)
                statuses[status] += 1
        tic = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - tic
    return LoadResult(concurrency, total, seconds, tuple(latencies), dict(statuses), dict(classes))


def run_load(url: str, payloads: list[dict], *, concurrency: int, total: int, timeout_s: float = 30.0) -> LoadResult:
    """POST ``total`` requests to ``url/predict`` with ``concurrency`` in flight; payloads are reused in turn.

    Each payload is the keyword arguments of ``httpx.post``: ``{"json": {"text": "..."}}`` or
    ``{"content": png_bytes, "headers": {"content-type": "image/png"}}``. Runs its own event loop
    in a worker thread, so it works inside Jupyter (whose loop is already running) too.

    Example:
        >>> run_load(url, [{"json": {"text": "a fine film"}}], concurrency=4, total=200).errors  # doctest: +SKIP
        0
    """
    if concurrency < 1 or total < concurrency or not payloads:
        raise ValueError(f"concurrency={concurrency}, total={total}, {len(payloads)} payloads: give at least one "
                         "payload, concurrency >= 1 and total >= concurrency")
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _load(url, payloads, concurrency, total, timeout_s)).result()


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """The service's ``/metrics`` as ``{(sample name, sorted label pairs): value}``.

    Example:
        >>> scrape(url)[("http_requests_total", (("endpoint", "/predict"), ("method", "POST"), ("status", "200")))]  # doctest: +SKIP
        600.0
    """
    text = httpx.get(url + "/metrics", timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def counter_delta(before: dict, after: dict, name: str, **labels: str) -> dict[tuple, float]:
    """How much each sample of counter ``name`` that carries ``labels`` grew between two scrapes."""
    out = {}
    for (sample, pairs), value in after.items():
        if sample == name and all((k, v) in pairs for k, v in labels.items()):
            out[pairs] = value - before.get((sample, pairs), 0.0)
    return out


def check_metrics(before: dict, after: dict, results: list[LoadResult], model: str) -> dict:
    """Compare the counters' growth with what the client saw; ``match`` is True when every count agrees.

    Returns ``{"match": bool, "statuses": {status: (client, server)}, "classes": {class: (client, server)}}``.
    """
    client_status, client_class = Counter(), Counter()
    for r in results:
        client_status.update(r.statuses)
        client_class.update(r.classes)
    server_status = {dict(p)["status"]: v for p, v in
                     counter_delta(before, after, "http_requests_total", endpoint="/predict").items()}
    server_class = {dict(p)["class"]: v for p, v in counter_delta(before, after, "predictions_total", model=model).items()}
    statuses = {str(s): (client_status.get(int(s), 0), int(server_status.get(str(s), 0)))
                for s in {*map(str, client_status), *server_status} if client_status.get(int(s), 0) or server_status.get(str(s))}
    classes = {c: (client_class.get(c, 0), int(server_class.get(c, 0)))
               for c in {*client_class, *server_class} if client_class.get(c, 0) or server_class.get(c)}
    match = all(a == b for a, b in [*statuses.values(), *classes.values()]) and 0 not in client_status
    return {"match": match, "statuses": statuses, "classes": classes}


def histogram_quantile(before: dict, after: dict, q: float, name: str = "http_request_duration_seconds",
                       **labels: str) -> float:
    """Prometheus' ``histogram_quantile(q, ...)`` of a histogram's growth between two :func:`scrape` results.

    Linear interpolation inside the bucket that holds rank ``q * count``, the first bucket starting at 0,
    and the largest finite bound when the rank falls in ``+Inf`` (what Prometheus returns). NaN when no
    observation was made in between.

    Example:
        >>> b = {("h_bucket", (("le", "0.1"),)): 0.0, ("h_bucket", (("le", "0.2"),)): 0.0,
        ...      ("h_bucket", (("le", "+Inf"),)): 0.0}
        >>> a = {("h_bucket", (("le", "0.1"),)): 50.0, ("h_bucket", (("le", "0.2"),)): 100.0,
        ...      ("h_bucket", (("le", "+Inf"),)): 100.0}
        >>> round(histogram_quantile(b, a, 0.75, name="h"), 3)
        0.15
    """
    if not 0 <= q <= 1:
        raise ValueError(f"q={q}; a quantile lies in [0, 1], e.g. 0.99")
    grown = counter_delta(before, after, name + "_bucket", **labels)
    if not grown:
        raise ValueError(f"no {name}_bucket samples with labels {labels} in the scrape; check the metric name")
    buckets = sorted((float(dict(pairs)["le"]), count) for pairs, count in grown.items())  # cumulative counts
    total = buckets[-1][1]
    if total <= 0:
        return float("nan")
    rank, lower, below = q * total, 0.0, 0.0
    for bound, cumulative in buckets:
        if cumulative >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(cumulative - below, 1e-12)
        lower, below = bound, cumulative
    return lower
