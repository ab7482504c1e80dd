"""A read cache for PostgreSQL, kept fresh by LISTEN/NOTIFY (docs/store.md, "Reads on PostgreSQL").

- Statement-level triggers on every table a cached read reads send a NOTIFY on the channel
  `microforum_changes` for any insert, update, delete or truncate, whoever writes: a replica,
  an operator with psql, a migration. NOTIFY is transactional: sent when the transaction
  commits, never for one rolled back (https://www.postgresql.org/docs/current/sql-notify.html).
- Each process keeps one LISTEN connection on a thread of its own (`ChangeListener`); every
  notification empties the cache, on the event loop (`ReadCache.changed`).
- The cache is trusted only while the listener listens: from the moment its connection fails
  until it listens again every read goes to the database, and it starts again empty.
- A process empties its cache itself when one of its writes returns, before the write is
  acknowledged: the writer reads its own write at once, other replicas once the notification
  has arrived.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any, Final

from microforum.services.pgconn import RECONNECT_PAUSE

CHANGES_CHANNEL: Final = "microforum_changes"
LISTEN_POLL: Final = 1.0  # seconds the listener waits for notifications before looking up
MISSING: Final = object()
_TRIGGER_LOCK: Final = 0x6D666F72_0C0C  # advisory lock key: "mfor", installing the triggers
_NOTIFY_FUNCTION = f"""
CREATE OR REPLACE FUNCTION microforum_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{CHANGES_CHANNEL}', TG_TABLE_NAME);
    RETURN NULL;
END $$"""


def install_change_triggers(conn: Any, *, table: str) -> None:
    """Make every change to `table` notify CHANGES_CHANNEL (idempotent; replicas serialised)."""
    conn.one("SELECT pg_advisory_xact_lock(?)", (_TRIGGER_LOCK,))
    conn.run(_NOTIFY_FUNCTION)
    conn.run(
        f"CREATE OR REPLACE TRIGGER microforum_{table}_changed"
        f" AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table}"
        " FOR EACH STATEMENT EXECUTE FUNCTION microforum_notify_change()"
    )


class ReadCache:
    """Encoded answers by key, valid while nothing changed since they were read (loop only)."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.entries: dict[Hashable, bytes | None] = {}
        self.version = 0  # advanced by every change
        self.trusted = False  # True while change notifications are known to arrive

    def __repr__(self) -> str:
        return f"<ReadCache entries={len(self.entries)} version={self.version} trusted={self.trusted}>"

    def get(self, key: Hashable) -> Any:
        """The cached answer, or MISSING."""
        return self.entries.get(key, MISSING) if self.trusted else MISSING

    def put(self, key: Hashable, body: bytes | None, version: int) -> None:
        """Keep `body`, read when the version was `version`, unless something changed since."""
        if self.trusted and version == self.version:
            if len(self.entries) >= self.max_entries:
                self.entries.clear()
            self.entries[key] = body

    def changed(self, trusted: bool | None = None) -> None:
        """Something changed (or may have): forget every answer; `trusted` when it is known."""
        self.version += 1
        self.entries.clear()
        if trusted is not None:
            self.trusted = trusted


class ChangeListener:
    """A thread that LISTENs and reports: True (listening now), None (a change), False (deaf).

    `report` is called on the listener's thread: it must hand over to the event loop itself.
    """

    def __init__(self, connect: Callable[[], Any], report: Callable[[bool | None], None]) -> None:
        self._connect = connect
        self._report = report
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-listen", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(LISTEN_POLL + 1)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._listen()
            except Exception:  # the connection failed: deaf until it listens again
                self._report(False)
                self._stop.wait(RECONNECT_PAUSE)

    def _listen(self) -> None:
        conn = self._connect()
        try:
            conn.execute(f"LISTEN {CHANGES_CHANNEL}")
            self._report(True)
            while not self._stop.is_set():
                for _ in conn.notifies(timeout=LISTEN_POLL):
                    self._report(None)
        finally:
            conn.close()
