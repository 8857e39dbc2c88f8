"""WebhookService over gRPC. The gateway passes the raw body as `HttpBody.data` and the provider's
signature headers (`svix-*`, `webhook-*`) as metadata."""

from __future__ import annotations

from exodrive.v1 import webhook_pb2, webhook_pb2_grpc
from grpc import aio

from server.convert import parse_uuid
from server.inbox_convert import (
    WEBHOOK_STATUS_TO_PROTO,
    parse_optional_time,
    parse_webhook_status,
    webhook_event_to_proto,
)
from server.interceptors.auth import ProviderCheck, signature_headers
from server.request_context import current_principal, current_provider_proof
from services.inbox_model import WebhookEventFilter
from services.webhook_signature import SignedDelivery
from services.webhooks import WebhookService

Context = aio.ServicerContext[object, object]

_SERVICE = webhook_pb2.DESCRIPTOR.services_by_name["WebhookService"]
HANDLE_RESEND_METHOD = f"/{_SERVICE.full_name}/HandleResendEvent"


def provider_checks(webhooks: WebhookService) -> dict[str, ProviderCheck]:
    """How the auth interceptor proves each provider method's sender: the service's verifier."""
    return {HANDLE_RESEND_METHOD: webhooks.verify_resend}


class WebhookServicer(webhook_pb2_grpc.WebhookServiceServicer):
    def __init__(self, webhooks: WebhookService) -> None:
        self._webhooks = webhooks

    async def HandleResendEvent(
        self, request: webhook_pb2.HandleResendEventRequest, context: Context
    ) -> webhook_pb2.HandleResendEventResponse:
        body = request.body.data
        proof = current_provider_proof()
        if isinstance(proof, SignedDelivery):
            receipt = await self._webhooks.ingest_resend(body, proof)
        else:  # served without the auth interceptor: the service verifies
            headers = signature_headers(context.invocation_metadata())
            receipt = await self._webhooks.handle_resend(body, headers)
        return webhook_pb2.HandleResendEventResponse(
            event_id=str(receipt.event_id),
            duplicate=receipt.duplicate,
            status=WEBHOOK_STATUS_TO_PROTO[receipt.status],
        )

    async def ListWebhookEvents(
        self, request: webhook_pb2.ListWebhookEventsRequest, context: Context
    ) -> webhook_pb2.ListWebhookEventsResponse:
        where = WebhookEventFilter(
            provider=request.provider or None,
            status=parse_webhook_status(request.status, "status"),
            received_from=parse_optional_time(
                request.start_time, "start_time", present=request.HasField("start_time")
            ),
            received_before=parse_optional_time(
                request.end_time, "end_time", present=request.HasField("end_time")
            ),
        )
        events, token = await self._webhooks.list_events(
            current_principal(), where, page_size=request.page_size, page_token=request.page_token
        )
        return webhook_pb2.ListWebhookEventsResponse(
            events=[webhook_event_to_proto(e) for e in events], next_page_token=token
        )

    async def ReplayWebhookEvent(
        self, request: webhook_pb2.ReplayWebhookEventRequest, context: Context
    ) -> webhook_pb2.ReplayWebhookEventResponse:
        event = await self._webhooks.replay(current_principal(), parse_uuid(request.event_id, "event_id"))
        return webhook_pb2.ReplayWebhookEventResponse(event=webhook_event_to_proto(event))
