"""Indexed substring search over the inbox without extensions.

pg_trgm is not available everywhere this schema runs (the embedded PostgreSQL ships none), so the
trigrams are computed by an IMMUTABLE SQL function into a stored generated column and indexed with
GIN. A search for text of three or more characters asks for the rows whose trigrams contain all of
the search's (`@>`, served by the index), then rechecks the escaped ILIKE on those rows only.

Under row level security the planner may not use an index for an operator that is not LEAKPROOF,
and `@>` on arrays is not: as the application role the index went unused (a full scan, ~110 ms
at 100,000 emails). So the candidates come from `inbox_search_candidates`, a SECURITY DEFINER
function that checks the caller is staff itself (as the policy does) and returns only ids; the
listing then reads those rows by primary key (uuid equality is leakproof), under the policy.
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
APP_ROLE = "exodrive_app"
# Ids of at most `max_rows` emails holding every trigram of `search`, for staff callers only.
# PL/pgSQL with EXECUTE ... USING plans the query with the trigrams' values: a SQL function would
# plan it with an opaque parameter, which let small tables fall back to a scan recomputing the
# search's trigrams on every row.
CANDIDATES_FUNCTION = """
CREATE FUNCTION inbox_search_candidates(search text, max_rows integer) RETURNS SETOF uuid
LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
BEGIN
    IF current_setting('exodrive.role', true) IN ('admin', 'service') THEN
        RETURN QUERY EXECUTE
            'SELECT id FROM public.inbox_emails WHERE search_trigrams @> $1 LIMIT $2'
            USING public.inbox_trigrams(search), max_rows;
    END IF;
END
$$
"""
SEARCH_TEXT = "coalesce(recipient, '') || chr(10) || coalesce(sender, '') || chr(10) || coalesce(subject, '')"


def upgrade() -> None:
    op.execute(TRIGRAMS_FUNCTION)
    op.execute(
        "ALTER TABLE inbox_emails ADD COLUMN search_trigrams text[] "
        f"GENERATED ALWAYS AS (inbox_trigrams({SEARCH_TEXT})) STORED NOT NULL"
    )
    op.execute("CREATE INDEX ix_inbox_emails_search_trigrams ON inbox_emails USING gin (search_trigrams)")
    op.execute(CANDIDATES_FUNCTION)
    op.execute("REVOKE EXECUTE ON FUNCTION inbox_search_candidates(text, integer) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION inbox_search_candidates(text, integer) TO {APP_ROLE}")


def downgrade() -> None:
    op.execute("DROP FUNCTION inbox_search_candidates(text, integer)")
    op.execute("DROP INDEX ix_inbox_emails_search_trigrams")
    op.execute("ALTER TABLE inbox_emails DROP COLUMN search_trigrams")
    op.execute("DROP FUNCTION inbox_trigrams(text)")
