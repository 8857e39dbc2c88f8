"""FleetService over gRPC."""

from __future__ import annotations

from exodrive.v1 import fleet_pb2, fleet_pb2_grpc
from grpc import aio

from server.convert import (
    availability_to_proto,
    car_changes_from_proto,
    car_draft_from_proto,
    car_to_proto,
    parse_date,
    parse_page_size,
    parse_uuid,
    quote_to_proto,
)
from server.request_context import current_principal
from services.errors import invalid_field
from services.fleet import FleetService
from services.model import CarDraft

Context = aio.ServicerContext[object, object]


class FleetServicer(fleet_pb2_grpc.FleetServiceServicer):
    def __init__(self, fleet: FleetService, *, default_currency: str = "USD") -> None:
        self._fleet = fleet
        self._currency = default_currency

    async def ListCars(
        self, request: fleet_pb2.ListCarsRequest, context: Context
    ) -> fleet_pb2.ListCarsResponse:
        cars, token = await self._fleet.list_cars(
            current_principal(),
            page_size=parse_page_size(request.page_size),
            page_token=request.page_token,
            category=request.category,
            featured_only=request.featured_only,
            show_hidden=request.show_hidden,
        )
        return fleet_pb2.ListCarsResponse(cars=[car_to_proto(car) for car in cars], next_page_token=token)

    async def GetCar(self, request: fleet_pb2.GetCarRequest, context: Context) -> fleet_pb2.GetCarResponse:
        car = await self._fleet.get_car(current_principal(), parse_uuid(request.car_id, "car_id"))
        return fleet_pb2.GetCarResponse(car=car_to_proto(car))

    async def GetCarAvailability(
        self, request: fleet_pb2.GetCarAvailabilityRequest, context: Context
    ) -> fleet_pb2.GetCarAvailabilityResponse:
        car_id = parse_uuid(request.car_id, "car_id")
        start = parse_date(request.start_date, "start_date", present=request.HasField("start_date"))
        end = parse_date(request.end_date, "end_date", present=request.HasField("end_date"))
        availability = await self._fleet.availability(current_principal(), car_id, start, end)
        return availability_to_proto(availability)

    async def QuotePrice(
        self, request: fleet_pb2.QuotePriceRequest, context: Context
    ) -> fleet_pb2.QuotePriceResponse:
        car_id = parse_uuid(request.car_id, "car_id")
        start = parse_date(request.start_date, "start_date", present=request.HasField("start_date"))
        end = parse_date(request.end_date, "end_date", present=request.HasField("end_date"))
        price = await self._fleet.quote(current_principal(), car_id, start, end)
        return fleet_pb2.QuotePriceResponse(quote=quote_to_proto(price))

    async def CreateCar(
        self, request: fleet_pb2.CreateCarRequest, context: Context
    ) -> fleet_pb2.CreateCarResponse:
        if not request.HasField("car"):
            raise invalid_field("car", "is required")
        draft = CarDraft(**car_draft_from_proto(request.car, default_currency=self._currency))  # type: ignore[arg-type]
        car = await self._fleet.create_car(current_principal(), draft)
        return fleet_pb2.CreateCarResponse(car=car_to_proto(car))

    async def UpdateCar(
        self, request: fleet_pb2.UpdateCarRequest, context: Context
    ) -> fleet_pb2.UpdateCarResponse:
        car_id = parse_uuid(request.car_id, "car_id")
        if not request.HasField("car"):
            raise invalid_field("car", "is required")
        changes = car_changes_from_proto(
            request.car, list(request.update_mask.paths), default_currency=self._currency
        )
        car = await self._fleet.update_car(current_principal(), car_id, changes)
        return fleet_pb2.UpdateCarResponse(car=car_to_proto(car))
