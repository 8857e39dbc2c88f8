"""Indexed substring search over the inbox without extensions.

pg_trgm is not available everywhere this schema runs (the embedded PostgreSQL ships none), so the
trigrams are computed by an IMMUTABLE SQL function into a stored generated column and indexed with
GIN. A search for text of three or more characters asks for the rows whose trigrams contain all of
the search's (`@>`, served by the index), then rechecks the escaped ILIKE on those rows only.
"""

from __future__ import annotations

from alembic import op

revision = "0004_inbox_search"
down_revision = "0003_row_level_security"
branch_labels = None
depends_on = None

# Kept in step with services/storage/inbox_tables.py (the column) and services/storage/inbox.py.
TRIGRAMS_FUNCTION = """
CREATE FUNCTION inbox_trigrams(value text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
RETURN ARRAY(
    SELECT DISTINCT substr(lower(value), i, 3)
    FROM generate_series(1, char_length(value) - 2) AS i
)
"""
SEARCH_TEXT = "coalesce(recipient, '') || chr(10) || coalesce(sender, '') || chr(10) || coalesce(subject, '')"


def upgrade() -> None:
    op.execute(TRIGRAMS_FUNCTION)
    op.execute(
        "ALTER TABLE inbox_emails ADD COLUMN search_trigrams text[] "
        f"GENERATED ALWAYS AS (inbox_trigrams({SEARCH_TEXT})) STORED NOT NULL"
    )
    op.execute("CREATE INDEX ix_inbox_emails_search_trigrams ON inbox_emails USING gin (search_trigrams)")


def downgrade() -> None:
    op.execute("DROP INDEX ix_inbox_emails_search_trigrams")
    op.execute("ALTER TABLE inbox_emails DROP COLUMN search_trigrams")
    op.execute("DROP FUNCTION inbox_trigrams(text)")
