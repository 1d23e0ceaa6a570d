"""Embedded result database (SQLite, or DuckDB for .duckdb): one row per design point, keyed by its spec hash,
written in transactions so that a killed run leaves only whole batches."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any

import pandas as pd

from xbarllm.errors import XbarError

METRICS = ("area_mm2", "energy_mj", "latency_us", "adp_mm2_s", "pj_per_mac", "chips")
ACCURACY = ("accuracy", "accuracy_metric")  # the task's metric (e.g. spearman_x100) and its value, or NULL
ID_COLS = ("key", "model", "phase", "seq_len", "axes")
COLUMNS = (*ID_COLS, *METRICS, *ACCURACY, "created_at")
_TYPES = {"key": "TEXT PRIMARY KEY", "model": "TEXT", "phase": "TEXT", "seq_len": "INTEGER", "axes": "TEXT",
          "created_at": "TEXT", "accuracy": "DOUBLE", "accuracy_metric": "TEXT", **{m: "DOUBLE" for m in METRICS}}


class ResultDB:
    """The `results` table of one database file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.duck = self.path.suffix == ".duckdb"
        try:
            if self.duck:
                import duckdb

                self.conn = duckdb.connect(str(self.path))
            else:
                self.conn = sqlite3.connect(self.path, isolation_level=None)
                self.conn.execute("PRAGMA journal_mode=WAL")
            cols = ", ".join(f"{c} {_TYPES[c]}" for c in COLUMNS)
            self.conn.execute(f"CREATE TABLE IF NOT EXISTS results ({cols})")
            have = {d[0] for d in self.conn.execute("SELECT * FROM results LIMIT 0").description}
            for c in ACCURACY:  # databases written before accuracy was measured
                if c not in have:
                    self.conn.execute(f"ALTER TABLE results ADD COLUMN {c} {_TYPES[c]}")
        except (sqlite3.Error, ImportError, RuntimeError, OSError) as e:
            raise XbarError(f"{self.path}: not a usable result database ({e})") from None
        except Exception as e:  # duckdb raises its own exception classes
            raise XbarError(f"{self.path}: not a usable result database ({e})") from None

    def keys(self) -> set[str]:
        """Keys of the points already stored."""
        return {r[0] for r in self.conn.execute("SELECT key FROM results").fetchall()}

    def insert(self, rows: list[dict[str, Any]]) -> None:
        """Store rows in one transaction; points already present are left as they are."""
        now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        values = [tuple(json.dumps(r[c], sort_keys=True) if c == "axes" else (now if c == "created_at" else r[c])
                        for c in COLUMNS) for r in rows]
        marks = ", ".join("?" for _ in COLUMNS)
        self.conn.execute("BEGIN")
        try:
            self.conn.executemany(f"INSERT INTO results ({', '.join(COLUMNS)}) VALUES ({marks}) "
                                  "ON CONFLICT (key) DO NOTHING", values)
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def frame(self) -> pd.DataFrame:
        """Every stored row, axes decoded into one column per axis, ordered by key."""
        cur = self.conn.execute(f"SELECT {', '.join(COLUMNS)} FROM results ORDER BY key")
        df = pd.DataFrame(cur.fetchall(), columns=list(COLUMNS))
        axes = pd.DataFrame([json.loads(a) for a in df["axes"]], index=df.index)
        return pd.concat([df.drop(columns="axes"), axes], axis=1)

    def close(self) -> None:
        self.conn.close()
