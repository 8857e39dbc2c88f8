"""The complete schema: imports every table module so that the shared MetaData holds all tables.

Alembic's environment and the models-versus-migrations test read `metadata` from here.
"""

from __future__ import annotations

from services.storage import inbox_tables, tables
from services.storage.tables import metadata

__all__ = ["inbox_tables", "metadata", "tables"]
