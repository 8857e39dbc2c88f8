"""Proto <-> domain: money, dates, instants, enums and ids.

Parsing functions check the request's shape and raise a VALIDATION_ERROR naming the proto field
path; the business rules themselves live in the services.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime

from exodrive.v1 import booking_pb2, fleet_pb2, money_pb2
from google.protobuf import timestamp_pb2
from google.type import date_pb2

from services.errors import invalid_field
from services.model import ActorType, Availability, Booking, BookingEvent, BookingStatus, Car, Contact
from services.pricing import Fee, PriceQuote

# --- ids -------------------------------------------------------------------------------


def parse_uuid(value: str, field: str) -> uuid.UUID:
    if not value:
        raise invalid_field(field, "is required")
    try:
        return uuid.UUID(value)
    except ValueError as exc:
        raise invalid_field(field, "must be a UUID") from exc


def parse_optional_uuid(value: str, field: str) -> uuid.UUID | None:
    return parse_uuid(value, field) if value else None


# --- dates and instants ------------------------------------------------------------------


def parse_date(value: date_pb2.Date, field: str, *, present: bool = True) -> date:
    """A full calendar date; google.type.Date's partial forms (year 0, month 0) are refused."""
    if not present:
        raise invalid_field(field, "is required")
    try:
        return date(value.year, value.month, value.day)
    except ValueError as exc:
        raise invalid_field(field, "must be a real calendar date") from exc


def date_to_proto(value: date) -> date_pb2.Date:
    return date_pb2.Date(year=value.year, month=value.month, day=value.day)


def timestamp_to_proto(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)
    return stamp


# --- money -----------------------------------------------------------------------------


def money_to_proto(cents: int, currency: str) -> money_pb2.Money:
    return money_pb2.Money(currency_code=currency, amount_minor=cents)


# Ten billion in major units: far above any car's price, and low enough that a price computed
# from it (rate x 90 days + fees, tax) still fits the int64 the contract and the columns use.
MAX_AMOUNT_MINOR = 10**12


def parse_money(value: money_pb2.Money, field: str, *, currency: str) -> int:
    """Cents of a non-negative amount in `currency` (an empty code means that currency)."""
    if value.amount_minor < 0:
        raise invalid_field(f"{field}.amount_minor", "must not be negative")
    if value.amount_minor > MAX_AMOUNT_MINOR:
        raise invalid_field(f"{field}.amount_minor", f"must be at most {MAX_AMOUNT_MINOR}")
    if value.currency_code and value.currency_code != currency:
        raise invalid_field(f"{field}.currency_code", f"must be {currency}")
    return value.amount_minor


# --- enums -----------------------------------------------------------------------------

_STATUS_TO_PROTO: dict[BookingStatus, booking_pb2.BookingStatus.ValueType] = {
    BookingStatus.PENDING: booking_pb2.BOOKING_STATUS_PENDING,
    BookingStatus.CONFIRMED: booking_pb2.BOOKING_STATUS_CONFIRMED,
    BookingStatus.ACTIVE: booking_pb2.BOOKING_STATUS_ACTIVE,
    BookingStatus.COMPLETED: booking_pb2.BOOKING_STATUS_COMPLETED,
    BookingStatus.CANCELLED: booking_pb2.BOOKING_STATUS_CANCELLED,
}
_STATUS_FROM_PROTO = {value: key for key, value in _STATUS_TO_PROTO.items()}

_ACTOR_TO_PROTO: dict[ActorType, booking_pb2.ActorType.ValueType] = {
    ActorType.CUSTOMER: booking_pb2.ACTOR_TYPE_CUSTOMER,
    ActorType.GUEST: booking_pb2.ACTOR_TYPE_GUEST,
    ActorType.ADMIN: booking_pb2.ACTOR_TYPE_ADMIN,
    ActorType.SERVICE: booking_pb2.ACTOR_TYPE_SERVICE,
    ActorType.SYSTEM: booking_pb2.ACTOR_TYPE_SYSTEM,
}


def status_to_proto(status: BookingStatus | None) -> booking_pb2.BookingStatus.ValueType:
    return booking_pb2.BOOKING_STATUS_UNSPECIFIED if status is None else _STATUS_TO_PROTO[status]


def parse_status(value: int, field: str, *, required: bool) -> BookingStatus | None:
    if value == booking_pb2.BOOKING_STATUS_UNSPECIFIED:
        if required:
            raise invalid_field(field, "is required")
        return None
    status: BookingStatus | None = _STATUS_FROM_PROTO.get(value)  # type: ignore[call-overload]
    if status is None:
        raise invalid_field(field, "is not a booking status")
    return status


# --- page size -------------------------------------------------------------------------


def parse_page_size(value: int, *, maximum: int = 100) -> int:
    if value < 0 or value > maximum:
        raise invalid_field("page_size", f"must be between 0 and {maximum}")
    return value


# --- fleet -----------------------------------------------------------------------------


def fee_to_proto(fee: Fee, currency: str) -> fleet_pb2.CarFee:
    return fleet_pb2.CarFee(
        name=fee.name, amount=money_to_proto(fee.amount_cents, currency), optional=fee.optional
    )


def car_to_proto(car: Car) -> fleet_pb2.Car:
    return fleet_pb2.Car(
        car_id=str(car.id),
        slug=car.slug,
        name=car.name,
        description=car.description,
        category=car.category,
        daily_rate=money_to_proto(car.daily_rate_cents, car.currency),
        deposit=money_to_proto(car.deposit_cents, car.currency),
        discount_percent=car.discount_percent,
        minimum_days=car.minimum_days,
        fees=[fee_to_proto(fee, car.currency) for fee in car.fees],
        available=car.available,
        featured=car.featured,
        hidden=car.hidden,
        create_time=timestamp_to_proto(car.created_at),
        update_time=timestamp_to_proto(car.updated_at),
    )


def quote_to_proto(price: PriceQuote) -> fleet_pb2.PriceQuote:
    def money(cents: int) -> money_pb2.Money:
        return money_to_proto(cents, price.currency)

    return fleet_pb2.PriceQuote(
        days=price.days,
        daily_rate=money(price.daily_rate_cents),
        rental=money(price.rental_cents),
        fees=[fee_to_proto(fee, price.currency) for fee in price.fees],
        fees_total=money(price.fees_total_cents),
        discount_percent=price.discount_percent,
        discount=money(price.discount_cents),
        discounted_subtotal=money(price.discounted_subtotal_cents),
        tax_rate_basis_points=price.tax_rate_basis_points,
        tax=money(price.tax_cents),
        total=money(price.total_cents),
        deposit=money(price.deposit_cents),
    )


def availability_to_proto(availability: Availability) -> fleet_pb2.GetCarAvailabilityResponse:
    return fleet_pb2.GetCarAvailabilityResponse(
        car_id=str(availability.car_id),
        start_date=date_to_proto(availability.start_date),
        end_date=date_to_proto(availability.end_date),
        available=availability.available,
        unavailable_dates=[date_to_proto(day) for day in availability.unavailable_dates],
    )


# --- bookings --------------------------------------------------------------------------


def parse_contact(value: booking_pb2.Contact, *, present: bool) -> Contact | None:
    if not present:
        return None
    return Contact(value.full_name, value.email, value.phone)


def event_to_proto(event: BookingEvent) -> booking_pb2.BookingEvent:
    return booking_pb2.BookingEvent(
        time=timestamp_to_proto(event.occurred_at),
        actor_type=_ACTOR_TO_PROTO[event.actor_type],
        actor_id=event.actor_id,
        from_status=status_to_proto(event.from_status),
        to_status=status_to_proto(event.to_status),
        reason=event.reason,
    )


def booking_to_proto(booking: Booking) -> booking_pb2.Booking:
    return booking_pb2.Booking(
        booking_id=str(booking.id),
        car_id=str(booking.car_id),
        contact=booking_pb2.Contact(
            full_name=booking.contact.full_name, email=booking.contact.email, phone=booking.contact.phone
        ),
        start_date=date_to_proto(booking.start_date),
        end_date=date_to_proto(booking.end_date),
        status=status_to_proto(booking.status),
        price=quote_to_proto(booking.price),
        notes=booking.notes,
        create_time=timestamp_to_proto(booking.created_at),
        update_time=timestamp_to_proto(booking.updated_at),
        hold_expire_time=timestamp_to_proto(booking.hold_expires_at),
        events=[event_to_proto(event) for event in booking.events],
    )


# --- car writes ------------------------------------------------------------------------

# Update-mask path -> the CarDraft fields it writes.
CAR_MASK_PATHS: dict[str, tuple[str, ...]] = {
    "slug": ("slug",),
    "name": ("name",),
    "description": ("description",),
    "category": ("category",),
    "daily_rate": ("daily_rate_cents", "currency"),
    "deposit": ("deposit_cents",),
    "discount_percent": ("discount_percent",),
    "minimum_days": ("minimum_days",),
    "fees": ("fees",),
    "available": ("available",),
    "featured": ("featured",),
    "hidden": ("hidden",),
}


def _car_values(car: fleet_pb2.Car, default_currency: str) -> dict[str, object]:
    currency = car.daily_rate.currency_code or default_currency
    return {
        "slug": car.slug,
        "name": car.name,
        "description": car.description,
        "category": car.category,
        "daily_rate_cents": parse_money(car.daily_rate, "car.daily_rate", currency=currency),
        "currency": currency,
        "deposit_cents": parse_money(car.deposit, "car.deposit", currency=currency),
        "discount_percent": car.discount_percent,
        "minimum_days": car.minimum_days,
        "fees": tuple(
            Fee(fee.name, parse_money(fee.amount, f"car.fees[{i}].amount", currency=currency), fee.optional)
            for i, fee in enumerate(car.fees)
        ),
        "available": car.available,
        "featured": car.featured,
        "hidden": car.hidden,
    }


def car_draft_from_proto(car: fleet_pb2.Car, *, default_currency: str) -> dict[str, object]:
    """The CarDraft fields of a CreateCar request (car_id and times are ignored)."""
    return _car_values(car, default_currency)


def car_changes_from_proto(
    car: fleet_pb2.Car, mask_paths: list[str], *, default_currency: str
) -> dict[str, object]:
    """The CarDraft fields an UpdateCar request writes; an empty mask writes them all."""
    unknown = [path for path in mask_paths if path not in CAR_MASK_PATHS]
    if unknown:
        raise invalid_field("update_mask", f"cannot update: {', '.join(unknown)}")
    values = _car_values(car, default_currency)
    paths = mask_paths or list(CAR_MASK_PATHS)
    return {name: values[name] for path in paths for name in CAR_MASK_PATHS[path]}
