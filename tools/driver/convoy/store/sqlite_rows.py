"""`update_row`, the one UPDATE of the SQLite store's `update_*` methods.

The rows as convoy.models' records and the values a record's fields are
stored as are what both backends share (rows.py: `as_request`, ...,
`sql_value`).
"""

from __future__ import annotations

import sqlite3
from typing import Any, Mapping

from convoy.store.rows import update_sql


def update_row(conn: sqlite3.Connection, table: str, allowed: set[str], row_id: int,
               fields: Mapping[str, Any]) -> None:
    """UPDATE one row's `fields` (only the `allowed` columns; KeyError if the row does not exist)."""
    statement = update_sql(table, allowed, row_id, fields, "?")
    if statement is None:
        return
    if conn.execute(*statement).rowcount != 1:
        raise KeyError(f"{table} {row_id} does not exist")
