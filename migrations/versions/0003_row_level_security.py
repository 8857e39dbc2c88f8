"""Row level security on bookings, customers and booking events.

Every transaction publishes its caller (services/storage/unit_of_work.py) as transaction-local
settings: `exodrive.role` (anonymous, customer, admin, service), `exodrive.subject` (the token's
`sub`) and, for a guest, `exodrive.booking_token_hash` (SHA-256 hex of the `x-booking-token`).
Staff see and change everything; a customer only rows with their subject; a guest only the
booking whose access-token hash matches, which the service has already checked in constant time.
A missing setting is NULL or '', which matches nothing, so a transaction that publishes no caller
sees nothing. Policies apply only to non-superuser roles, so the application runs as
`exodrive_app` (created in 0001).
"""

from __future__ import annotations

from alembic import op

revision = "0003_row_level_security"
down_revision = "0002_inbox_and_webhooks"
branch_labels = None
depends_on = None

ROLE = "current_setting('exodrive.role', true)"
SUBJECT = "NULLIF(current_setting('exodrive.subject', true), '')"
TOKEN_HASH = "NULLIF(current_setting('exodrive.booking_token_hash', true), '')"  # noqa: S105
STAFF = f"{ROLE} IN ('admin', 'service')"
# The caller is a customer acting on their own row.
OWN_BOOKING = f"{ROLE} = 'customer' AND owner_subject = {SUBJECT}"
HOLDS_TOKEN = f"access_token_hash = {TOKEN_HASH}"
OWN_CUSTOMER = f"{ROLE} = 'customer' AND subject = {SUBJECT}"

POLICIES: dict[str, list[tuple[str, str, str | None, str | None]]] = {
    # (name, command, USING, WITH CHECK)
    "bookings": [
        ("bookings_staff", "ALL", STAFF, STAFF),
        ("bookings_owner", "ALL", OWN_BOOKING, OWN_BOOKING),
        ("bookings_token_holder_read", "SELECT", HOLDS_TOKEN, None),
        ("bookings_token_holder_change", "UPDATE", HOLDS_TOKEN, f"{HOLDS_TOKEN} AND owner_subject IS NULL"),
        # A guest creates a booking that belongs to no subject.
        ("bookings_guest_create", "INSERT", None, f"{ROLE} = 'anonymous' AND owner_subject IS NULL"),
    ],
    "customers": [
        ("customers_staff", "ALL", STAFF, STAFF),
        ("customers_self", "ALL", OWN_CUSTOMER, OWN_CUSTOMER),
        ("customers_guest_create", "INSERT", None, f"{ROLE} = 'anonymous' AND subject IS NULL"),
    ],
    # Events follow their booking: the subquery is itself filtered by the bookings policies.
    "booking_events": [
        ("booking_events_staff", "ALL", STAFF, STAFF),
        (
            "booking_events_of_visible_booking",
            "ALL",
            "EXISTS (SELECT 1 FROM bookings b WHERE b.id = booking_id)",
            "EXISTS (SELECT 1 FROM bookings b WHERE b.id = booking_id)",
        ),
    ],
}


def upgrade() -> None:
    for table, policies in POLICIES.items():
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        for name, command, using, check in policies:
            clauses = f" USING ({using})" if using else ""
            clauses += f" WITH CHECK ({check})" if check else ""
            op.execute(f"CREATE POLICY {name} ON {table} FOR {command}{clauses}")


def downgrade() -> None:
    for table, policies in reversed(POLICIES.items()):
        for name, _command, _using, _check in policies:
            op.execute(f"DROP POLICY IF EXISTS {name} ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
