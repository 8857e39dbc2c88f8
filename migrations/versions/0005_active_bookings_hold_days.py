"""ACTIVE bookings hold their days: the no-overlap exclusion constraint covers PENDING, CONFIRMED
and ACTIVE (services/model.py HOLDING_STATUSES; a test compares the constraint to that set).

Before this revision a booking stopped holding its days once the car was picked up, so a second
booking could take days the car was out. Rows written under that rule may overlap an ACTIVE
booking; the upgrade then stops and names them rather than cancel anyone's booking on its own:
an operator settles each pair (cancel or move one) and runs the upgrade again.

The statuses are spelled out here, not imported: a revision must build the same schema for ever,
whatever the code says later.

Revision ID: 0005_active_bookings_hold_days
Revises: 0004_inbox_search
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_active_bookings_hold_days"
down_revision = "0004_inbox_search"
branch_labels = None
depends_on = None

CONSTRAINT = "bookings_no_overlap"
HOLDING = "'PENDING', 'CONFIRMED', 'ACTIVE'"
HOLDING_BEFORE = "'PENDING', 'CONFIRMED'"
# Pairs of bookings of one car, one of them ACTIVE, sharing a day: the new constraint refuses them.
CONFLICTS = f"""
SELECT active.id AS active_id, other.id AS other_id
FROM bookings AS active
JOIN bookings AS other
  ON other.car_id = active.car_id
 AND other.id <> active.id
 AND other.status IN ({HOLDING})
 AND daterange(other.start_date, other.end_date, '[)') && daterange(active.start_date, active.end_date, '[)')
WHERE active.status = 'ACTIVE'
ORDER BY active.id, other.id
LIMIT 20
"""  # noqa: S608 (constants only)


def _create(statuses: str) -> None:
    # As revision 0001 declares it (alembic's create_exclude_constraint takes columns only).
    op.execute(
        f"ALTER TABLE bookings ADD CONSTRAINT {CONSTRAINT} EXCLUDE USING gist "
        "(int8range(car_key, car_key, '[]') WITH =, daterange(start_date, end_date, '[)') WITH &&) "
        f"WHERE (status IN ({statuses}))"
    )


def upgrade() -> None:
    conflicts = op.get_bind().execute(sa.text(CONFLICTS)).all()
    if conflicts:
        pairs = ", ".join(f"{row.active_id} (ACTIVE) / {row.other_id}" for row in conflicts)
        raise RuntimeError(
            "bookings overlap an ACTIVE booking of the same car; cancel or move one of each pair, "
            f"then upgrade again: {pairs}"
        )
    op.drop_constraint(CONSTRAINT, "bookings")
    _create(HOLDING)


def downgrade() -> None:
    op.drop_constraint(CONSTRAINT, "bookings")
    _create(HOLDING_BEFORE)
