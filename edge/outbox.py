"""A bounded, ordered, on-disk message queue: store-and-forward for outputs that cross a network.

Messages wait here until the far end has acknowledged them, so nothing is lost while the network
or the broker is away, nor when the process is killed and restarted (the queue is an SQLite file,
Python's standard library, in WAL mode; a power cut loses at most the last transaction). Past
`max_messages` the oldest are dropped and counted; the count survives restarts too. One writer
(the pipeline's sink) and one reader (the sender thread) share it, each on its own connection.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import List, Tuple

from edge.errors import BKPoseError


class OutboxError(BKPoseError):
    """The queue file cannot be opened or written."""


SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL,
                                     payload BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters VALUES ('dropped', 0);
"""


class Outbox:
    """`put` from one thread, `peek`/`remove` from another; `depth`, `dropped` for metrics."""

    def __init__(self, path: str, max_messages: int = 100_000) -> None:
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, found {max_messages}")
        self.path, self.max_messages = path, max_messages
        self._local = threading.local()
        self._lock = threading.Lock()  # put and remove both change the count
        folder = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(folder, exist_ok=True)
            db = self._db()
            db.executescript(SCHEMA)
            self._depth = int(db.execute("SELECT COUNT(*) FROM messages").fetchone()[0])
        except (OSError, sqlite3.Error) as err:
            raise OutboxError(f"{path}: cannot open the message queue ({err})") from None

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process kills
            self._local.db = db
        return db

    def put(self, topic: str, payload: bytes) -> None:
        """Append one message; past the bound, drop the oldest and count them."""
        db = self._db()
        try:
            with self._lock:
                db.execute("BEGIN IMMEDIATE")
                db.execute("INSERT INTO messages (topic, payload) VALUES (?, ?)", (topic, payload))
                excess = self._depth + 1 - self.max_messages
                if excess > 0:
                    db.execute(
                        "DELETE FROM messages WHERE seq IN (SELECT seq FROM messages ORDER BY seq LIMIT ?)",
                        (excess,),
                    )
                    db.execute("UPDATE counters SET value = value + ? WHERE name = 'dropped'", (excess,))
                db.execute("COMMIT")
                self._depth += 1 - max(excess, 0)
        except sqlite3.Error as err:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise OutboxError(f"{self.path}: cannot queue a message ({err})") from None

    def peek(self, limit: int) -> List[Tuple[int, str, bytes]]:
        """The oldest `limit` messages as (seq, topic, payload), in order, without removing them."""
        rows = self._db().execute("SELECT seq, topic, payload FROM messages ORDER BY seq LIMIT ?", (limit,))
        return [(int(seq), str(topic), bytes(payload)) for seq, topic, payload in rows]

    def remove(self, seqs: List[int]) -> None:
        """Forget messages the far end has acknowledged."""
        if seqs:
            with self._lock:
                db = self._db()
                before = db.total_changes
                db.executemany("DELETE FROM messages WHERE seq = ?", [(s,) for s in seqs])
                self._depth -= db.total_changes - before  # some may have been dropped meanwhile

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def dropped(self) -> int:
        return int(self._db().execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()[0])

    def checkpoint(self) -> None:
        """Fold the write-ahead log into the database file (for measuring its size)."""
        self._db().execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
