"""Bookings: creation (idempotent, no double booking), reading, listing, cancelling, admin
transitions along the state machine, and the expiry of unconfirmed holds."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID

from sqlalchemy.exc import IntegrityError

from services import page_tokens, system_callers
from services.changes import ChangeNotifier, car_bookings_tag
from services.clock import Clock
from services.errors import DomainError, FieldViolation, Reason, invalid, invalid_field
from services.fleet import FleetService, car_not_found, car_unavailable, page_size_of
from services.model import TRANSITIONS, ActorType, Booking, BookingStatus, Contact
from services.principal import Principal, Role, hash_token
from services.storage.bookings import BookingCursor, NewBooking, StoredBooking
from services.storage.tables import BOOKINGS_NO_OVERLAP, BOOKINGS_REQUEST_ID_UNIQUE
from services.storage.unit_of_work import UnitOfWork, UnitOfWorkFactory

EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
PHONE_PATTERN = re.compile(r"^\+?[0-9 ().-]{6,40}$")


@dataclass(frozen=True)
class BookingRequest:
    request_id: UUID
    car_id: UUID
    start_date: date
    end_date: date
    contact: Contact | None
    notes: str = ""


@dataclass(frozen=True)
class CreatedBooking:
    booking: Booking
    # The guest access token, returned once: None for customers and for repeated requests.
    access_token: str | None
    access_token_expires_at: datetime | None
    # True when the request_id had been used before with the same content.
    replayed: bool


def booking_not_found(booking_id: UUID) -> DomainError:
    return DomainError(
        Reason.BOOKING_NOT_FOUND, f"booking {booking_id} not found", metadata={"booking_id": str(booking_id)}
    )


def _denied(booking_id: UUID) -> DomainError:
    return DomainError(
        Reason.PERMISSION_DENIED,
        f"no access to booking {booking_id}",
        metadata={"booking_id": str(booking_id)},
    )


def _illegal(booking_id: UUID, current: BookingStatus, target: BookingStatus, why: str = "") -> DomainError:
    message = f"booking {booking_id} cannot move from {current} to {target}"
    return DomainError(
        Reason.INVALID_STATE_TRANSITION,
        message + (f": {why}" if why else ""),
        metadata={"booking_id": str(booking_id), "from_status": current.value, "to_status": target.value},
    )


def actor_of(principal: Principal) -> tuple[ActorType, str]:
    actor = {
        Role.ADMIN: ActorType.ADMIN,
        Role.SERVICE: ActorType.SERVICE,
        Role.CUSTOMER: ActorType.CUSTOMER,
        Role.ANONYMOUS: ActorType.GUEST,
    }[principal.role]
    return actor, principal.subject or ""


def validate_contact(contact: Contact) -> Contact:
    problems: list[FieldViolation] = []
    name = contact.full_name.strip()
    email = contact.email.strip()
    phone = contact.phone.strip()
    if not name or len(name) > 200:
        problems.append(FieldViolation("contact.full_name", "required, at most 200 characters"))
    if len(email) > 320 or not EMAIL_PATTERN.match(email):
        problems.append(FieldViolation("contact.email", "must be an email address"))
    if phone and not PHONE_PATTERN.match(phone):
        problems.append(FieldViolation("contact.phone", "digits, spaces, + ( ) . - only"))
    if problems:
        raise invalid(*problems)
    return Contact(name, email, phone)


def _fingerprint(principal: Principal, request: BookingRequest) -> str:
    """What makes two CreateBooking calls "the same request" for idempotency."""
    contact = request.contact
    content = {
        "caller": [principal.role.value, principal.subject],
        "car": str(request.car_id),
        "dates": [request.start_date.isoformat(), request.end_date.isoformat()],
        "contact": None if contact is None else [contact.full_name, contact.email.lower(), contact.phone],
        "notes": request.notes,
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def _sqlstate(error: IntegrityError) -> tuple[str | None, str | None]:
    diag = getattr(error.orig, "diag", None)
    return getattr(error.orig, "sqlstate", None), getattr(diag, "constraint_name", None)


class BookingService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        notifier: ChangeNotifier,
        fleet: FleetService,
        *,
        hold: timedelta = timedelta(minutes=30),
        access_token_grace: timedelta = timedelta(days=30),
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._notifier = notifier
        self._fleet = fleet
        self._hold = hold
        self._token_grace = access_token_grace

    # --- creation ------------------------------------------------------------------------

    async def create(self, principal: Principal, request: BookingRequest) -> CreatedBooking:
        contact = None if request.contact is None else validate_contact(request.contact)
        if contact is None and not principal.is_authenticated:
            raise invalid_field("contact", "guests must give a name and an email")
        if len(request.notes) > 2000:
            raise invalid_field("notes", "at most 2000 characters")
        request = BookingRequest(
            request.request_id, request.car_id, request.start_date, request.end_date, contact, request.notes
        )
        fingerprint = _fingerprint(principal, request)
        replay = await self._replay(principal, request.request_id, fingerprint)
        if replay is not None:
            return replay
        try:
            created = await self._insert(principal, request, fingerprint)
        except IntegrityError as exc:
            state, constraint = _sqlstate(exc)
            conflict = (state, constraint) in {
                ("23P01", BOOKINGS_NO_OVERLAP),
                ("23505", BOOKINGS_REQUEST_ID_UNIQUE),
            }
            # A concurrent call with the same request_id may have won (its row trips either
            # constraint first): then this call is a repeat of it.
            replay = await self._replay(principal, request.request_id, fingerprint) if conflict else None
            if replay is not None:
                return replay
            if state == "23P01" and constraint == BOOKINGS_NO_OVERLAP:
                raise DomainError(
                    Reason.CAR_UNAVAILABLE,
                    f"car {request.car_id} is already booked on some of these days",
                    metadata={
                        "car_id": str(request.car_id),
                        "start_date": request.start_date.isoformat(),
                        "end_date": request.end_date.isoformat(),
                    },
                ) from exc
            raise
        await self._notifier.invalidate([car_bookings_tag(request.car_id)])
        return created

    async def _replay(
        self, principal: Principal, request_id: UUID, fingerprint: str
    ) -> CreatedBooking | None:
        # The request_id may be another caller's: the fingerprint (which names the caller) tells.
        async with self._uow(system_callers.IDEMPOTENCY) as uow:
            stored = await uow.bookings.by_request_id(request_id)
        if stored is None:
            return None
        if not hmac.compare_digest(stored.request_fingerprint, fingerprint):
            raise DomainError(
                Reason.REQUEST_ID_REUSED,
                f"request_id {request_id} was used for a different booking request",
                metadata={"request_id": str(request_id)},
            )
        return CreatedBooking(stored.booking, None, None, replayed=True)

    async def _insert(
        self, principal: Principal, request: BookingRequest, fingerprint: str
    ) -> CreatedBooking:
        now = self._clock.now()
        token = None if principal.is_authenticated else secrets.token_urlsafe(32)
        if token is not None:
            # The guest holds the new booking's token from here on: row level security lets
            # this transaction insert and read back that one booking.
            principal = dataclasses.replace(principal, booking_token=token)
        async with self._uow(principal) as uow:
            car = await uow.cars.get(request.car_id)
            car_key = await uow.cars.key_of(request.car_id)
            if car is None or car_key is None:
                raise car_not_found(request.car_id)
            if not car.bookable:
                raise car_unavailable(car.id)
            price = self._fleet.price(car, request.start_date, request.end_date)
            contact = request.contact
            if contact is None:
                if principal.subject is None:
                    raise invalid_field("contact", "guests must give a name and an email")
                known = await uow.customers.latest_contact_of_subject(principal.subject)
                if known is None:
                    raise invalid_field("contact", "required on a first booking")
                customer_id, contact = known
            else:
                async with uow.acting_as(system_callers.CUSTOMER_DIRECTORY):
                    customer_id = await uow.customers.find_or_create(contact, principal.subject, now)
            # An expired hold must never block: release this car's overdue holds first.
            async with uow.acting_as(system_callers.HOLD_EXPIRY):
                await uow.bookings.expire_holds(now, car_id=car.id)
            token_expires = (
                None if token is None else datetime.combine(request.end_date, time(), UTC) + self._token_grace
            )
            booking_id = await uow.bookings.add(
                NewBooking(
                    car_id=car.id,
                    car_key=car_key,
                    customer_id=customer_id,
                    owner_subject=principal.subject if principal.role is Role.CUSTOMER else None,
                    request_id=request.request_id,
                    request_fingerprint=fingerprint,
                    start_date=request.start_date,
                    end_date=request.end_date,
                    contact=contact,
                    notes=request.notes,
                    price=price,
                    access_token_hash=None if token is None else hash_token(token),
                    access_token_expires_at=token_expires,
                    hold_expires_at=now + self._hold,
                    created_at=now,
                )
            )
            actor, actor_id = actor_of(principal)
            await uow.bookings.add_event(
                booking_id,
                occurred_at=now,
                actor_type=actor,
                actor_id=actor_id,
                from_status=None,
                to_status=BookingStatus.PENDING,
                reason="booked",
            )
            stored = await uow.bookings.get(booking_id, with_events=True)
            await uow.commit()
        assert stored is not None
        return CreatedBooking(stored.booking, token, token_expires, replayed=False)

    # --- reading -------------------------------------------------------------------------

    def _may_access(self, principal: Principal, stored: StoredBooking) -> bool:
        if principal.is_staff:
            return True
        booking = stored.booking
        if (
            principal.role is Role.CUSTOMER
            and principal.subject
            and booking.owner_subject == principal.subject
        ):
            return True
        token = principal.booking_token
        if token and stored.access_token_hash and stored.access_token_expires_at:
            return (
                hmac.compare_digest(hash_token(token), stored.access_token_hash)
                and self._clock.now() < stored.access_token_expires_at
            )
        return False

    async def _accessible(
        self, uow: UnitOfWork, principal: Principal, booking_id: UUID, *, for_update: bool = False
    ) -> StoredBooking:
        stored = await uow.bookings.get(booking_id, for_update=for_update, with_events=True)
        if stored is None:
            # Only staff learn whether a booking exists (AIP-211).
            raise booking_not_found(booking_id) if principal.is_staff else _denied(booking_id)
        if not self._may_access(principal, stored):
            raise _denied(booking_id)
        return stored

    async def get(self, principal: Principal, booking_id: UUID) -> Booking:
        async with self._uow(principal) as uow:
            return (await self._accessible(uow, principal, booking_id)).booking

    async def list_bookings(
        self,
        principal: Principal,
        *,
        page_size: int = 0,
        page_token: str = "",
        status: BookingStatus | None = None,
        car_id: UUID | None = None,
    ) -> tuple[list[Booking], str]:
        """A page of bookings, newest first: a customer's own, or all of them for staff."""
        if not principal.is_authenticated:
            raise DomainError(Reason.UNAUTHENTICATED, "sign in to list bookings")
        limit = page_size_of(page_size)
        owner = None if principal.is_staff else (principal.subject or "")
        filters = {"owner": owner, "status": status, "car_id": car_id}
        after = None
        if page_token:
            position = page_tokens.decode(page_token, filters)
            try:
                after = BookingCursor(datetime.fromisoformat(str(position["t"])), UUID(str(position["i"])))
            except (KeyError, ValueError) as exc:
                raise invalid_field("page_token", "is not a token returned by this listing") from exc
        async with self._uow(principal) as uow:
            found = await uow.bookings.page(
                limit=limit + 1, after=after, owner_subject=owner, status=status, car_id=car_id
            )
        page, more = found[:limit], len(found) > limit
        token = ""
        if more:
            last = page[-1]
            token = page_tokens.encode({"t": last.created_at.isoformat(), "i": str(last.id)}, filters)
        return page, token

    # --- changes -------------------------------------------------------------------------

    async def cancel(self, principal: Principal, booking_id: UUID, reason: str = "") -> Booking:
        return await self._move(principal, booking_id, BookingStatus.CANCELLED, reason or "cancelled")

    async def transition(
        self, principal: Principal, booking_id: UUID, target: BookingStatus, reason: str = ""
    ) -> Booking:
        if not principal.is_staff:
            raise DomainError(Reason.PERMISSION_DENIED, "only staff may change a booking's status")
        return await self._move(principal, booking_id, target, reason)

    async def _move(
        self, principal: Principal, booking_id: UUID, target: BookingStatus, reason: str
    ) -> Booking:
        if len(reason) > 2000:
            raise invalid_field("reason", "at most 2000 characters")
        now = self._clock.now()
        expired = False
        async with self._uow(principal) as uow:
            stored = await self._accessible(uow, principal, booking_id, for_update=True)
            booking = stored.booking
            current = booking.status
            hold_over = (
                current is BookingStatus.PENDING
                and booking.hold_expires_at is not None
                and booking.hold_expires_at <= now
            )
            if hold_over and target is not BookingStatus.CANCELLED:
                # The hold ran out before the sweep got to it: expire it now, then refuse.
                await uow.bookings.expire_holds(now, car_id=booking.car_id)
                await uow.commit()
                expired = True
            else:
                if target not in TRANSITIONS[current]:
                    raise _illegal(booking_id, current, target)
                await uow.bookings.set_status(
                    booking_id, target, now, clear_hold=target is not BookingStatus.PENDING
                )
                actor, actor_id = actor_of(principal)
                await uow.bookings.add_event(
                    booking_id,
                    occurred_at=now,
                    actor_type=actor,
                    actor_id=actor_id,
                    from_status=current,
                    to_status=target,
                    reason=reason,
                )
                updated = await uow.bookings.get(booking_id, with_events=True)
                await uow.commit()
        await self._notifier.invalidate([car_bookings_tag(booking.car_id)])
        if expired:
            raise _illegal(booking_id, current, target, "its hold expired")
        assert updated is not None
        return updated.booking

    async def expire_overdue(self) -> int:
        """Cancels every PENDING booking past its hold period; returns how many."""
        async with self._uow(system_callers.HOLD_EXPIRY) as uow:
            expired = await uow.bookings.expire_holds(self._clock.now())
            await uow.commit()
        if expired:
            await self._notifier.invalidate({car_bookings_tag(hold.car_id) for hold in expired})
        return len(expired)
