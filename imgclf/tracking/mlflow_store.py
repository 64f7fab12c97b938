"""A local MLflow store left unusable by a killed schema migration, repaired by hand (in one place).

MLflow creates and migrates its sqlite store with Alembic. On sqlite, Alembic changes a table by
copying it to `_alembic_tmp_<table>`, dropping the table and renaming the copy; a process killed in
between (a queued experiment stopped, a CI job cancelled) leaves a store on which MLflow fails on
every run after. Cut short before the drop, the copy is surplus; after it, the copy is the table.

Written against MLflow 3.17 and Alembic's batch migrations of that time (requirements.txt pins
MLflow). The repair touches only tables named `_alembic_tmp_*`: where a later Alembic names its
copies otherwise, it finds nothing and does nothing, and MLflow's own error (which
tracking/store.py turns into a one-line fix) is what the user sees, as without it.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from pathlib import Path

log = logging.getLogger(__name__)
_COPY_PREFIX = "_alembic_tmp_"


def repair_cut_migration(db: Path) -> list[str]:
    """Finish or undo what a cut-short migration left in the sqlite store `db`; the tables repaired."""
    if not db.exists():
        return []
    repaired = []
    with contextlib.closing(sqlite3.connect(db)) as con, con:
        tables = {row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for copy in sorted(t for t in tables if t.startswith(_COPY_PREFIX)):
            table = copy.removeprefix(_COPY_PREFIX)
            if table in tables:
                con.execute(f'DROP TABLE "{copy}"')
            else:
                con.execute(f'ALTER TABLE "{copy}" RENAME TO "{table}"')
            repaired.append(table)
            log.info("repaired %s: table %s of a schema migration cut short", db.name, table)
    return repaired
