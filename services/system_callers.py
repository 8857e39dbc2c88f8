"""The named service principals of the few steps that must reach rows of other owners.

Row level security shows a customer only their own bookings and customer record, and a guest
only the booking of their token. A few steps of serving them legitimately need more; each runs
under its own principal from this module, one per reason, so that a reader sees which step
crossed owners and why. Every other statement runs as the caller. Two writers outside a
caller's request act as their own service principals beside their code: the seeder
(services/seed.py) and the webhook writer (services/webhooks.py).
"""

from __future__ import annotations

from services.principal import Principal, Role

# Which days of a car are held, whoever holds them (reads only dates).
AVAILABILITY = Principal(Role.SERVICE, "system:availability")
# Whether a CreateBooking request_id was used before, by anyone: a reuse by another caller is
# REQUEST_ID_REUSED, never a second booking.
IDEMPOTENCY = Principal(Role.SERVICE, "system:idempotency")
# Customers are one record per email (any case), whoever booked with it first.
CUSTOMER_DIRECTORY = Principal(Role.SERVICE, "system:customer-directory")
# Overdue PENDING holds are released whoever made them, so that they never block a booking.
HOLD_EXPIRY = Principal(Role.SERVICE, "system:hold-expiry")
