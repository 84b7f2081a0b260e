"""GraphQL for campaigns (issue 6): create, pause and resume them (admin key), one-off
sends to a segment, and what they delivered and achieved (read key). The engine is
``gateway.campaigns``; triggers are ``stream.operators.triggers``."""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON

from clients.channels import ChannelConfigError, TemplateError, check_template
from clients.channels import validate_channel_config as _validate_channel
from resolvers.errors import api_error, bad_input
from resolvers.fetch import Reader, to_segment
from resolvers.frames import zone
from resolvers.schema_common import page_size, window_of
from resolvers.schema_segments import plain_filter
from resolvers.types import PageInfo, SegmentFilter, TimeWindow
from resolvers.window import iso, parse_duration
from stream.operators.triggers import Condition, Trigger


@strawberry.enum
class TriggerType(Enum):
    ON_EVENT = "ON_EVENT"
    NOT_FOLLOWED_BY = "NOT_FOLLOWED_BY"
    INACTIVITY = "INACTIVITY"


@strawberry.enum
class ChannelType(Enum):
    WEBHOOK = "WEBHOOK"
    EMAIL = "EMAIL"
    LOG = "LOG"


@strawberry.input
class ConditionInput:
    key: str
    op: str
    value: JSON | None = None


@strawberry.input(description="ON_EVENT: `event` (+ `where`) fires at once. NOT_FOLLOWED_BY: "
                              "`event` not followed by `followedBy` within `within`. "
                              "INACTIVITY: no event for `within` after `event` (any).")
class TriggerInput:
    type: TriggerType
    event: str | None = None
    followed_by: str | None = None
    within: str | None = None
    where: list[ConditionInput] | None = None


@strawberry.input
class ChannelInput:
    type: ChannelType
    url: str | None = None
    to: str | None = None
    secret: str | None = strawberry.field(default=None, description=(
        "Webhook HMAC secret (else the server's CEP_WEBHOOK_SECRET)."))
    headers: JSON | None = None


@strawberry.input(description="Liquid-style `{{ trait }}` and `{{ city | default: \"there\" }}`.")
class TemplateInput:
    body: str
    subject: str | None = None


@strawberry.input
class FrequencyCapInput:
    count: int
    per: str


@strawberry.input
class QuietHoursInput:
    start_hour: int
    end_hour: int
    timezone: str | None = None


@strawberry.input(description="The event that counts as converting, within `within` (default "
                              "7d) after the message (or the holdout decision).")
class GoalInput:
    event: str
    within: str | None = None


@strawberry.input
class CampaignInput:
    name: str
    trigger: TriggerInput
    channel: ChannelInput
    template: TemplateInput
    segment: SegmentFilter | None = None
    frequency_cap: FrequencyCapInput | None = None
    quiet_hours: QuietHoursInput | None = None
    holdout: float = strawberry.field(default=0.0, description=(
        "Share (0-0.9) of triggered users kept out at random (recorded) to measure lift."))
    goal: GoalInput | None = None
    exit_on_conversion: bool = strawberry.field(default=False, description=(
        "The goal event cancels the user's pending timer."))


@strawberry.type
class Campaign:
    id: str
    name: str
    status: str = strawberry.field(description="ACTIVE, PAUSED, or SENT for a one-off send.")
    created_at: str
    spec: JSON = strawberry.field(description="The definition, secrets left out.")


@strawberry.type
class Delivery:
    id: str
    user_id: str
    firing: str = strawberry.field(description="What fired: the event's insert id, or `send`.")
    idempotency_key: str
    status: str = strawberry.field(description="pending, sent, failed, holdout, capped, "
                                               "skipped.")
    attempts: int
    detail: str
    channel: str
    created_at: str
    settled_at: str | None


@strawberry.type
class DeliveryEdge:
    cursor: str
    node: Delivery


@strawberry.type
class DeliveryConnection:
    total_count: int
    edges: list[DeliveryEdge]
    page_info: PageInfo


@strawberry.type
class CampaignResults:
    sent: int = strawberry.field(description="Users messaged.")
    converted: int = strawberry.field(description="Of them, users who did the goal in time.")
    holdout: int = strawberry.field(description="Users kept out.")
    holdout_converted: int
    conversion_rate: float | None
    holdout_conversion_rate: float | None
    lift: float | None = strawberry.field(description="conversionRate ÷ "
                                                      "holdoutConversionRate − 1.")
    deliveries: int


@strawberry.type
class EngagementSend:
    campaign: Campaign
    queued: int


def _service(ctx: Any) -> Any:
    if ctx.campaigns is None:
        raise api_error("UNAVAILABLE", "campaigns are not available on this gateway")
    return ctx.campaigns


def _campaign(row: Any) -> Campaign:
    spec = dict(row.spec)
    if "channel" in spec:
        spec["channel"] = {k: v for k, v in spec["channel"].items() if k != "secret"}
    status = "SENT" if spec.get("trigger") is None else row.status
    return Campaign(id=row.id, name=row.name, status=status, created_at=iso(row.created_at) or "",
                    spec=cast(JSON, spec))


def _duration(text: str | None, field: str) -> int | None:
    return None if text is None else parse_duration(text, field)


def _channel(channel: ChannelInput, field: str, settings: Any) -> dict[str, Any]:
    config = {k: v for k, v in dataclasses.asdict(channel).items() if v is not None}
    config["type"] = channel.type.value
    try:
        _validate_channel(config, settings)
    except ChannelConfigError as exc:
        raise bad_input(f"{field}.{exc.field.removeprefix('channel.')}", exc.reason) from exc
    return config


def _template(template: TemplateInput, field: str) -> dict[str, Any]:
    for name in ("subject", "body"):
        text = getattr(template, name)
        if text is None:
            continue
        try:
            check_template(text)
        except TemplateError as exc:
            raise bad_input(f"{field}.{name}", str(exc)) from exc
    return {"subject": template.subject, "body": template.body}


def campaign_spec(data: CampaignInput, settings: Any) -> dict[str, Any]:
    """The stored definition of a campaign input; bad input names its field."""
    if not data.name.strip():
        raise bad_input("input.name", "must not be empty")
    t = data.trigger
    within = _duration(t.within, "input.trigger.within")
    where = [Condition(c.key, c.op, c.value) for c in t.where or ()]
    trigger = Trigger(t.type.value, t.event, tuple(where), t.followed_by, within)
    try:
        trigger.check("input.trigger")
    except ValueError as exc:
        field, _, reason = str(exc).partition(": ")
        raise bad_input(field, reason) from exc
    spec: dict[str, Any] = {
        "trigger": {"type": t.type.value, "event": t.event, "followedBy": t.followed_by,
                    "withinMs": within,
                    "where": [{"key": c.key, "op": c.op, "value": c.value} for c in where]},
        "channel": _channel(data.channel, "input.channel", settings),
        "template": _template(data.template, "input.template"),
        "holdout": data.holdout,
        "exitOnConversion": data.exit_on_conversion,
    }
    if not 0 <= data.holdout <= 0.9:
        raise bad_input("input.holdout", "must be between 0 and 0.9")
    if data.segment is not None:
        to_segment(data.segment, "input.segment")
        spec["segment"] = plain_filter(dataclasses.asdict(data.segment))
    if data.frequency_cap is not None:
        if data.frequency_cap.count < 1:
            raise bad_input("input.frequencyCap.count", "must be at least 1")
        spec["frequencyCap"] = {"count": data.frequency_cap.count, "perMs": parse_duration(
            data.frequency_cap.per, "input.frequencyCap.per")}
    if data.quiet_hours is not None:
        q = data.quiet_hours
        for name, hour in (("startHour", q.start_hour), ("endHour", q.end_hour)):
            if not 0 <= hour <= 23:
                raise bad_input(f"input.quietHours.{name}", "must be an hour, 0-23")
        zone(q.timezone)
        spec["quietHours"] = {"startHour": q.start_hour, "endHour": q.end_hour,
                              "timezone": q.timezone}
    if data.goal is not None:
        spec["goal"] = {"event": data.goal.event,
                        "withinMs": _duration(data.goal.within, "input.goal.within")}
    elif data.exit_on_conversion:
        raise bad_input("input.exitOnConversion", "needs a goal")
    return spec


@strawberry.type
class CampaignQueries:
    @strawberry.field(description="The project's campaigns, oldest first.")
    def campaigns(self, info: strawberry.Info) -> list[Campaign]:
        ctx = info.context
        project = ctx.require("read")
        return [_campaign(r) for r in _service(ctx).store.campaigns(project)]

    @strawberry.field(description="One campaign's deliveries, oldest first.")
    def deliveries(self, info: strawberry.Info, campaign_id: str, first: int = 100,
                   after: str | None = None) -> DeliveryConnection:
        ctx = info.context
        project = ctx.require("read")
        first = page_size(ctx, first)
        service = _service(ctx)
        if service.store.campaign(project, campaign_id) is None:
            raise api_error("NOT_FOUND", f"campaignId: no campaign {campaign_id!r}")
        try:
            after_id = int(after) if after else 0
        except ValueError as exc:
            raise bad_input("after", "not a cursor from this connection") from exc
        rows = service.store.deliveries(project, campaign_id, after_id, first + 1)
        page = rows[:first]
        edges = [DeliveryEdge(cursor=str(d.id), node=Delivery(
            id=str(d.id), user_id=d.user_id, firing=d.firing,
            idempotency_key=d.idempotency_key, status=d.status, attempts=d.attempts,
            detail=d.detail, channel=d.channel, created_at=iso(d.created_at) or "",
            settled_at=None if d.settled_at is None else iso(d.settled_at))) for d in page]
        return DeliveryConnection(
            total_count=service.store.count_deliveries(project, campaign_id), edges=edges,
            page_info=PageInfo(has_next_page=len(rows) > first,
                               end_cursor=edges[-1].cursor if edges else None))

    @strawberry.field(description="Messaged users against the holdout on the campaign's goal.")
    async def campaign_results(self, info: strawberry.Info, id: str) -> CampaignResults:
        ctx = info.context
        project = ctx.require("read")
        service = _service(ctx)
        row = service.store.campaign(project, id)
        if row is None:
            raise api_error("NOT_FOUND", f"id: no campaign {id!r}")
        r = await ctx.call(service.results, project, row)
        return CampaignResults(sent=r["sent"], converted=r["converted"], holdout=r["holdout"],
                               holdout_converted=r["holdout_converted"],
                               conversion_rate=r["conversion_rate"],
                               holdout_conversion_rate=r["holdout_conversion_rate"],
                               lift=r["lift"], deliveries=r["deliveries"])


@strawberry.type
class CampaignMutations:
    @strawberry.mutation(description="A campaign that acts on behaviour as it happens.")
    def create_campaign(self, info: strawberry.Info, input: CampaignInput) -> Campaign:
        ctx = info.context
        project = ctx.require("admin")
        service = _service(ctx)
        spec = campaign_spec(input, service.channel_settings)
        return _campaign(service.create(project, input.name, spec))

    @strawberry.mutation(description="Stop firing (pending timers are dropped).")
    def pause_campaign(self, info: strawberry.Info, id: str) -> Campaign:
        return _status(info, id, "PAUSED")

    @strawberry.mutation
    def resume_campaign(self, info: strawberry.Info, id: str) -> Campaign:
        return _status(info, id, "ACTIVE")

    @strawberry.mutation(description="Message a segment's users once, now (e.g. a thank-you "
                                     "to New York buyers).")
    async def send_engagement(self, info: strawberry.Info, segment: SegmentFilter,
                              channel: ChannelInput, template: TemplateInput,
                              window: TimeWindow | None = None,
                              name: str | None = None) -> EngagementSend:
        ctx = info.context
        project = ctx.require("admin")
        service = _service(ctx)
        spec = {"trigger": None, "segment": plain_filter(dataclasses.asdict(segment)),
                "channel": _channel(channel, "channel", service.channel_settings),
                "template": _template(template, "template"), "holdout": 0.0}
        w = window_of(ctx, window or TimeWindow(last="30d"))
        users = await Reader(ctx, project).segment_users(to_segment(segment, "segment"), w)
        if users is None:
            raise bad_input("segment", "give at least one condition (this would message "
                                       "everyone)")
        row = service.create(project, name or "one-off send", spec)
        queued = service.enqueue(project, row.id, sorted(users), ctx.now_ms())
        return EngagementSend(campaign=_campaign(row), queued=queued)


def _status(info: strawberry.Info, campaign_id: str, status: str) -> Campaign:
    ctx = info.context
    project = ctx.require("admin")
    row = _service(ctx).set_status(project, campaign_id, status)
    if row is None:
        raise api_error("NOT_FOUND", f"id: no campaign {campaign_id!r}")
    return _campaign(row)
