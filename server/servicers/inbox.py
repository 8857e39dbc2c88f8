"""InboxService over gRPC."""

from __future__ import annotations

from exodrive.v1 import inbox_pb2, inbox_pb2_grpc
from grpc import aio

from server.convert import parse_optional_uuid, parse_uuid
from server.inbox_convert import (
    EMAIL_STATUS_TO_PROTO,
    email_event_to_proto,
    email_to_proto,
    linked_booking_to_proto,
    parse_email_status,
    parse_optional_time,
)
from server.request_context import current_principal
from services.inbox import InboxService
from services.inbox_model import EmailFilter, EmailStats

Context = aio.ServicerContext[object, object]


class InboxServicer(inbox_pb2_grpc.InboxServiceServicer):
    def __init__(self, inbox: InboxService) -> None:
        self._inbox = inbox

    async def ListEmails(
        self, request: inbox_pb2.ListEmailsRequest, context: Context
    ) -> inbox_pb2.ListEmailsResponse:
        where = EmailFilter(
            status=parse_email_status(request.status, "status"),
            email_type=request.email_type or None,
            recipient=request.recipient or None,
            booking_id=parse_optional_uuid(request.booking_id, "booking_id"),
            sent_from=parse_optional_time(
                request.start_time, "start_time", present=request.HasField("start_time")
            ),
            sent_before=parse_optional_time(
                request.end_time, "end_time", present=request.HasField("end_time")
            ),
            search=request.search or None,
        )
        page, token = await self._inbox.list_emails(
            current_principal(), where, page_size=request.page_size, page_token=request.page_token
        )
        return inbox_pb2.ListEmailsResponse(
            emails=[email_to_proto(e) for e in page.emails],
            next_page_token=token,
            total_size=page.total,
            total_size_capped=page.capped,
        )

    async def GetEmail(
        self, request: inbox_pb2.GetEmailRequest, context: Context
    ) -> inbox_pb2.GetEmailResponse:
        detail = await self._inbox.get_email(current_principal(), parse_uuid(request.email_id, "email_id"))
        return inbox_pb2.GetEmailResponse(
            email=email_to_proto(detail.email),
            events=[email_event_to_proto(e) for e in detail.events],
            booking=linked_booking_to_proto(detail.booking) if detail.booking else None,
        )

    async def GetEmailStats(
        self, request: inbox_pb2.GetEmailStatsRequest, context: Context
    ) -> inbox_pb2.GetEmailStatsResponse:
        stats = await self._inbox.stats(
            current_principal(),
            parse_optional_time(request.start_time, "start_time", present=request.HasField("start_time")),
            parse_optional_time(request.end_time, "end_time", present=request.HasField("end_time")),
        )
        return stats_to_proto(stats)


def stats_to_proto(stats: EmailStats) -> inbox_pb2.GetEmailStatsResponse:
    return inbox_pb2.GetEmailStatsResponse(
        total=stats.total,
        status_counts=[
            inbox_pb2.EmailStatusCount(status=EMAIL_STATUS_TO_PROTO[s], count=n)
            for s, n in sorted(stats.by_status.items(), key=lambda item: EMAIL_STATUS_TO_PROTO[item[0]])
        ],
        type_counts=[
            inbox_pb2.EmailTypeCount(email_type=t, count=n) for t, n in sorted(stats.by_type.items())
        ],
        delivery_rate=EmailStats.rate(stats.delivered, stats.total),
        open_rate=EmailStats.rate(stats.opened, stats.delivered),
        bounce_rate=EmailStats.rate(stats.bounced, stats.total),
        complaint_rate=EmailStats.rate(stats.complained, stats.delivered),
    )
