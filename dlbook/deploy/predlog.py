"""The prediction log: one SQLite row per answered request (stdlib ``sqlite3``, no torch).

Each row holds the request id (the client's ``x-request-id`` header, or one the service made), the
time, the model's name and registry version, the predicted class and its confidence, the SHA-256 of
the request body, and optionally the body itself (a 32x32 PNG is ~3 KB), so that the examples the
monitor selects can be relabelled and trained on later. The database runs in WAL mode: the service
writes while the monitor reads.

Example:
    >>> log = PredictionLog(":memory:")
    >>> log.write("r1", model="m", version="1", predicted=3, class_name="cat", confidence=0.9, body=b"png")
    >>> [(r["request_id"], r["class_name"], r["input"]) for r in log.rows()]
    [('r1', 'cat', None)]
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time

COLUMNS = ("request_id", "ts", "model", "version", "predicted", "class_name", "confidence", "input_sha256", "input")
_SCHEMA = """CREATE TABLE IF NOT EXISTS predictions (
    id INTEGER PRIMARY KEY, request_id TEXT NOT NULL, ts REAL NOT NULL, model TEXT NOT NULL, version TEXT NOT NULL,
    predicted INTEGER NOT NULL, class_name TEXT NOT NULL, confidence REAL NOT NULL, input_sha256 TEXT NOT NULL,
    input BLOB)"""


class PredictionLog:
    """Append predictions to, and read them from, a SQLite file.

    Args:
        path: the database file (created with its table), or ``":memory:"``.
        keep_inputs: store each request body, not only its hash.
    """

    def __init__(self, path: str | os.PathLike, keep_inputs: bool = False):
        self.path, self.keep_inputs = str(path), keep_inputs
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: durable up to the last checkpoint, no fsync per row
            self._db.execute(_SCHEMA)
            self._db.execute("CREATE INDEX IF NOT EXISTS by_request ON predictions (request_id)")
            self._db.commit()
        except sqlite3.Error as exc:
            raise ValueError(f"cannot open the prediction log {self.path}: {exc}; give a writable file path") from exc
        self._lock = threading.Lock()

    def write(self, request_id: str, *, model: str, version: str, predicted: int, class_name: str,
              confidence: float, body: bytes) -> None:
        """Log one answered request."""
        if not 0 <= confidence <= 1:
            raise ValueError(f"confidence={confidence}; a probability lies in [0, 1]")
        row = (request_id, time.time(), model, str(version), int(predicted), class_name, float(confidence),
               hashlib.sha256(body).hexdigest(), body if self.keep_inputs else None)
        with self._lock:
            self._db.execute(f"INSERT INTO predictions ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})", row)
            self._db.commit()

    def rows(self, request_ids: list[str] | None = None, prefix: str | None = None) -> list[dict]:
        """Logged rows in the order written: all, those with the given ids, or those whose id starts with ``prefix``."""
        query, args = f"SELECT {', '.join(COLUMNS)} FROM predictions", ()
        if request_ids is not None:
            query += f" WHERE request_id IN ({', '.join('?' * len(request_ids))})"
            args = tuple(request_ids)
        elif prefix is not None:
            query += " WHERE request_id >= ? AND request_id < ?"
            args = (prefix, prefix + "\uffff")
        with self._lock:
            found = self._db.execute(query + " ORDER BY id", args).fetchall()
        return [dict(zip(COLUMNS, r)) for r in found]

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]

    def close(self) -> None:
        self._db.close()
