"""The OpenAPI document generated from the contract: complete, valid 3.1, policy as extensions."""

from __future__ import annotations

from typing import Any

import pytest

from server.gateway.openapi import openapi_document
from server.gateway.path_template import TemplateError, parse
from server.gateway.routes import RouteTable
from server.policy import PolicyTable


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document(RouteTable(PolicyTable()))


def test_every_http_rule_is_a_documented_operation(document: dict[str, Any]) -> None:
    operations = {
        (method.upper(), path): op["x-grpc-method"]
        for path, item in document["paths"].items()
        for method, op in item.items()
    }
    assert operations == {
        ("GET", "/v1/cars"): "/exodrive.v1.FleetService/ListCars",
        ("POST", "/v1/cars"): "/exodrive.v1.FleetService/CreateCar",
        ("GET", "/v1/cars/{car_id}"): "/exodrive.v1.FleetService/GetCar",
        ("PATCH", "/v1/cars/{car_id}"): "/exodrive.v1.FleetService/UpdateCar",
        ("GET", "/v1/cars/{car_id}/availability"): "/exodrive.v1.FleetService/GetCarAvailability",
        ("GET", "/v1/cars/{car_id}/quote"): "/exodrive.v1.FleetService/QuotePrice",
        ("POST", "/v1/bookings"): "/exodrive.v1.BookingService/CreateBooking",
        ("GET", "/v1/bookings"): "/exodrive.v1.BookingService/ListBookings",
        ("GET", "/v1/bookings/{booking_id}"): "/exodrive.v1.BookingService/GetBooking",
        ("POST", "/v1/bookings/{booking_id}:cancel"): "/exodrive.v1.BookingService/CancelBooking",
        ("POST", "/v1/bookings/{booking_id}:transition"): "/exodrive.v1.BookingService/UpdateBookingStatus",
        ("GET", "/v1/inbox/emails"): "/exodrive.v1.InboxService/ListEmails",
        ("GET", "/v1/inbox/emails/{email_id}"): "/exodrive.v1.InboxService/GetEmail",
        ("GET", "/v1/inbox/stats"): "/exodrive.v1.InboxService/GetEmailStats",
        ("POST", "/api/webhooks/resend"): "/exodrive.v1.WebhookService/HandleResendEvent",
        ("GET", "/v1/webhooks/events"): "/exodrive.v1.WebhookService/ListWebhookEvents",
        ("POST", "/v1/webhooks/events/{event_id}:replay"): "/exodrive.v1.WebhookService/ReplayWebhookEvent",
    }


def test_policy_extensions_and_security(document: dict[str, Any]) -> None:
    get_car = document["paths"]["/v1/cars/{car_id}"]["get"]
    assert get_car["x-cache-ttl-seconds"] == 1800
    assert get_car["x-rate-limit-tier"] == "CALLER"
    assert get_car["x-access"] == "PUBLIC"
    assert get_car["security"] == [{}, {"bearerAuth": []}]
    assert document["paths"]["/v1/cars"]["get"]["x-cache-ttl-seconds"] == 3600

    create_booking = document["paths"]["/v1/bookings"]["post"]
    assert create_booking["x-rate-limit-tier"] == "BOOKING_CREATE"
    assert "201" in create_booking["responses"]
    assert "x-cache-ttl-seconds" not in create_booking

    create_car = document["paths"]["/v1/cars"]["post"]
    assert create_car["x-access"] == "ADMIN"
    assert create_car["security"] == [{"bearerAuth": []}]

    webhook = document["paths"]["/api/webhooks/resend"]["post"]
    assert webhook["x-rate-limit-tier"] == "WEBHOOK"
    assert {p["name"] for p in webhook["parameters"]} == {"svix-id", "svix-timestamp", "svix-signature"}
    assert document["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }


def test_parameters_schemas_and_descriptions(document: dict[str, Any]) -> None:
    availability = document["paths"]["/v1/cars/{car_id}/availability"]["get"]
    parameters = {p["name"]: p for p in availability["parameters"]}
    assert parameters["car_id"]["in"] == "path"
    assert parameters["startDate"]["schema"] == {"type": "string", "format": "date"}
    assert parameters["startDate"]["description"] == "First day of the range."
    assert availability["summary"] == "Tells which days of a date range are taken"

    schemas = document["components"]["schemas"]
    money = schemas["exodrive.v1.Money"]["properties"]
    assert money["amountMinor"]["type"] == "string"  # int64 travels as a string
    assert schemas["exodrive.v1.Car"]["description"] == "A car of the fleet with its pricing."
    status = schemas["exodrive.v1.Booking"]["properties"]["status"]
    assert "$ref" in status or "BOOKING_STATUS_PENDING" in status["enum"]
    assert schemas["exodrive.v1.Booking"]["properties"]["createTime"]["format"] == "date-time"
    assert set(schemas["Error"]["properties"]["error"]["required"]) == {
        "code", "message", "details", "timestamp", "traceId"
    }  # fmt: skip
    for item in document["paths"].values():
        for operation in item.values():
            assert operation["responses"]["default"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"
            }


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    import schemathesis

    assert document["openapi"] == "3.1.0"

    schema = schemathesis.openapi.from_dict(document)
    assert len(list(schema.get_all_operations())) == 17


def test_path_templates() -> None:
    nested = parse("/v1/{parent.name=shelves/*}/books/{book_id}:publish")
    assert nested.verb == "publish"
    assert nested.openapi_path == "/v1/{parent.name}/books/{book_id}:publish"
    found = nested.match("/v1/shelves/s%201/books/b1:publish")
    assert found == {"parent.name": "shelves/s 1", "book_id": "b1"}
    assert nested.match("/v1/shelves/s1/books/b1") is None

    tail = parse("/files/{path=**}")
    assert tail.match("/files/a/b/c.txt") == {"path": "a/b/c.txt"}
    wildcard = parse("/v1/*/x")
    assert wildcard.match("/v1/anything/x") == {}

    for bad in ("v1/cars", "/v1/{car", "/v1/{1bad}", "/v1/cars:", "/v1//x"):
        with pytest.raises(TemplateError):
            parse(bad)
