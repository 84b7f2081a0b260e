"""Real-time campaigns: triggers evaluated as the embedded runner commits (or by the PyFlink
job: ``stream.flink.campaigns``), timers that survive restarts, and a delivery worker
(issue 6).

In the distributed profile the gateway keeps the campaigns and the delivery log here too, and
mirrors the active triggers to Redis for the job (``on_change``); the job's firings come back
through a Redis stream (``follow``) into the same outbox.

- **Triggers** (``stream.operators.triggers``) see every committed event before the store
  commit (``before_commit``): timer changes and firings go to the campaign store first, so a
  crash before the analytics commit replays the batch into the same, idempotent state.
  Events are keyed by the resolved identity (the user; a device tied to one counts as that
  user). Timers fire on the runner's event-time watermark while it catches up, on the wall
  clock once it has (``tick``).
- **The delivery worker** takes firings from the outbox and, per campaign: drops paused
  ones, checks the segment, keeps the holdout share out (recorded, deterministic per user),
  honours the frequency cap and quiet hours (postponed to their end), renders the template
  with the user's profile and sends through the campaign's channel (``clients.channels``).
- **Results** compare the messaged users with the holdout on the campaign's goal event.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pyarrow as pa
import xxhash

from clients.channels import Channel, ChannelSettings, Message, channel_from_config, render
from storage.campaigns import CampaignRow, CampaignStore, OutboxRow
from storage.ports import EventQuery, StoredEvents, WriteBatch
from storage.redis_firings import FiringRecord
from stream.operators.triggers import (
    Firing,
    Trigger,
    TriggerEvent,
    Triggers,
    trigger_event,
    trigger_of,
)

log = logging.getLogger("cep.campaigns")

DAY_MS = 86_400_000
SEGMENT_WINDOW_MS = 30 * DAY_MS  # behaviour filters of a campaign's segment look this far back


def in_holdout(campaign: str, user: str, share: float) -> bool:
    """Whether ``user`` is kept out of ``campaign`` (the same answer every time)."""
    draw = xxhash.xxh3_64_intdigest(f"{campaign}\x1f{user}".encode()) / 2**64
    return draw < share


def quiet_until(now_ms: int, quiet: dict[str, Any] | None) -> int | None:
    """The end of the quiet hours ``now_ms`` falls in (unix ms), or ``None``."""
    if not quiet:
        return None
    tz = ZoneInfo(quiet.get("timezone") or "UTC")
    now = datetime.fromtimestamp(now_ms / 1000, tz=UTC).astimezone(tz)
    start, end = int(quiet["startHour"]), int(quiet["endHour"])
    hour = now.hour
    inside = start <= hour < end if start < end else (hour >= start or hour < end)
    if not inside:
        return None
    until = now.replace(hour=end, minute=0, second=0, microsecond=0)
    if until <= now:
        until += timedelta(days=1)
    return int(until.timestamp() * 1000)


@dataclass
class _StoreContext:
    """What ``resolvers.fetch.Reader`` needs, straight on the stores (no request)."""

    events: Any
    profiles: Any

    async def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)


class Campaigns:
    def __init__(self, store: CampaignStore, events: Any, channel_settings: ChannelSettings,
                 ties: Iterable[tuple[str, str, str]] = (),
                 now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
                 on_change: Callable[[str, dict[str, dict[str, Any]]], None] | None = None
                 ) -> None:
        self.store = store
        self._on_change = on_change
        self._events = events  # EventStore + ProfileStore
        self.channel_settings = channel_settings
        self._now = now_ms
        self._ties = {(p, d): u for p, d, u in ties}
        self._triggers: dict[str, Triggers] = {}
        self._watermark = 0
        self._lock = threading.Lock()
        # steps whose before_commit has begun / whose commit has finished: the worker waits
        # for the commit of any step whose firings it read, so a message never renders a
        # profile that the same step is still writing
        self._steps = threading.Condition()
        self._begun = self._committed = 0
        # (channel type, status) of each delivery settled or postponed: metrics
        self.on_delivery: Callable[[str, str], None] | None = None
        timers: dict[str, list[Any]] = {}
        for project, timer in store.timers():
            timers.setdefault(project, []).append(timer)
        for project in {c.project for c in store.campaigns()} | set(timers):
            self._triggers[project] = Triggers(self._active(project), timers.get(project, ()))

    def _active(self, project: str) -> dict[str, Trigger]:
        out = {}
        for c in self.store.campaigns(project):
            trigger = trigger_of(c.spec)
            if c.status == "ACTIVE" and trigger is not None:
                out[c.id] = trigger
        return out

    # -- management ------------------------------------------------------------------------

    def create(self, project: str, name: str, spec: dict[str, Any]) -> CampaignRow:
        campaign_id = "c_" + secrets.token_hex(6)
        self.store.create(project, campaign_id, name, spec)
        self.reload(project)
        row = self.store.campaign(project, campaign_id)
        assert row is not None
        return row

    def set_status(self, project: str, campaign_id: str, status: str) -> CampaignRow | None:
        if not self.store.set_status(project, campaign_id, status):
            return None
        self.reload(project)
        return self.store.campaign(project, campaign_id)

    def reload(self, project: str) -> None:
        with self._lock:
            t = self._triggers.get(project)
            if t is None:
                t = self._triggers[project] = Triggers({})
            t.set_campaigns(self._active(project))
            self.store.apply(project, t.changes(), [])
        self.publish(project)

    def forget(self, project: str, users: Iterable[str]) -> int:
        """An erasure: drop the users' armed timers (they must not fire) and delete their
        timers, waiting firings and deliveries; returns the rows deleted."""
        users = set(users)
        with self._lock:
            t = self._triggers.get(project)
            if t is not None:
                t.forget(users)
                self.store.apply(project, t.changes(), [])
            self._ties = {k: u for k, u in self._ties.items()
                          if not (k[0] == project and (u in users or k[1] in users))}
            return self.store.erase_users(project, users)

    def publish(self, project: str) -> None:
        """Hand the project's active triggered campaigns to ``on_change`` (the distributed
        profile mirrors them to Redis for the PyFlink job)."""
        if self._on_change is not None:
            self._on_change(project, {c.id: c.spec for c in self.store.campaigns(project)
                                      if c.status == "ACTIVE" and trigger_of(c.spec)})

    async def follow(self, read: Callable[[str], list[tuple[str, FiringRecord]]],
                     feed: str = "redis") -> None:
        """The distributed profile: firings from the PyFlink job (``read`` blocks a while for
        those after a cursor) into the outbox, with the cursor, until cancelled."""
        cursor = await asyncio.to_thread(self.store.cursor, feed, "0")
        while True:
            try:
                batch = await asyncio.to_thread(read, cursor)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - Redis down: try again shortly
                log.warning("cannot read campaign firings (retrying): %r", exc)
                await asyncio.sleep(1.0)
                continue
            if not batch:
                continue
            firings: dict[str, list[Firing]] = {}
            for _, f in batch:
                event = (None if f.event_name is None
                         else TriggerEvent(f.user, f.firing, f.event_name, f.at))
                firings.setdefault(f.project, []).append(
                    Firing(f.campaign, f.user, f.firing, f.at, event))
            cursor = batch[-1][0]
            await asyncio.to_thread(self.store.apply_feed, feed, cursor, firings)

    def enqueue(self, project: str, campaign_id: str, users: Iterable[str], at: int) -> int:
        """Firings of a one-off send, one per user."""
        firings = [Firing(campaign_id, u, "send", at) for u in users]
        self.store.apply(project, [], firings)
        return len(firings)

    # -- the stream side -------------------------------------------------------------------

    def before_commit(self, batch: WriteBatch) -> None:
        with self._steps:
            self._begun += 1
        for project, device, user, _ in batch.ties:
            self._ties[(project, device)] = user
        if not batch.events.events:
            return
        with self._lock:
            self._watermark = max(self._watermark, max(e.time for e in batch.events.events))
            if not any(t.campaigns for t in self._triggers.values()):
                return
            for project, events in self._trigger_events(batch.events).items():
                t = self._triggers.get(project)
                if t is None or not t.campaigns:
                    continue
                fired = t.observe(events)
                self.store.apply(project, t.changes(), fired)

    def after_commit(self) -> None:
        with self._steps:
            self._committed += 1
            self._steps.notify_all()

    def _wait_committed(self, begun: int, timeout: float = 30.0) -> bool:
        with self._steps:
            return self._steps.wait_for(lambda: self._committed >= begun, timeout)

    def _outbox(self) -> list[OutboxRow]:
        """Due rows, once the steps that may have written them have committed (an empty
        round if a commit fails to finish)."""
        rows = self.store.outbox(self._now())
        with self._steps:
            begun = self._begun
        return rows if self._wait_committed(begun) else []

    def _trigger_events(self, stored: StoredEvents) -> dict[str, list[TriggerEvent]]:
        out: dict[str, list[TriggerEvent]] = {}
        for e, enrichment in zip(stored.events, stored.enrichments, strict=True):
            t = self._triggers.get(e.project)
            if t is None or not t.campaigns:
                continue
            user = e.distinct_user_id or self._ties.get((e.project, e.device_id or ""),
                                                        e.device_id or "")
            out.setdefault(e.project, []).append(trigger_event(e, enrichment, user))
        return out

    def tick(self, caught_up: bool) -> int:
        """Fire due timers: on the wall clock when the runner has caught up, else on the
        event time it has processed up to."""
        clock = self._now() if caught_up else self._watermark
        n = 0
        with self._lock:
            for project, t in self._triggers.items():
                fired = t.due(clock)
                if fired:
                    self.store.apply(project, t.changes(), fired)
                    n += len(fired)
        return n

    # -- delivery --------------------------------------------------------------------------

    async def run(self, caught_up: Callable[[], bool], interval: float = 0.25) -> None:
        """The worker: tick and deliver until cancelled."""
        while True:
            try:
                await asyncio.to_thread(self.tick, caught_up())
                await self.deliver_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # keep the worker alive; the row stays in the outbox
                log.exception("campaign delivery round failed")
            await asyncio.sleep(interval)

    async def deliver_once(self) -> int:
        """One round over the outbox: each campaign, its segment and its channel are looked
        up once per round."""
        rows = await asyncio.to_thread(self._outbox)
        campaigns: dict[tuple[str, str], tuple[CampaignRow, set[str] | None] | None] = {}
        channels: dict[tuple[str, str], Channel] = {}
        done = 0
        try:
            for row in rows:
                key = (row.project, row.campaign)
                if key not in campaigns:
                    found = await asyncio.to_thread(self.store.campaign, *key)
                    campaigns[key] = (None if found is None
                                      else (found, await self._segment_users(found)))
                entry = campaigns[key]
                if entry is None:
                    continue
                campaign, segment = entry
                await self._deliver(row, campaign, segment, channels)
                done += 1
        finally:
            for c in channels.values():
                await c.aclose()
        return done

    async def _segment_users(self, campaign: CampaignRow) -> set[str] | None:
        flt = campaign.spec.get("segment")
        if not flt:
            return None
        from resolvers.fetch import Reader, to_segment
        from resolvers.schema_segments import filter_input
        from resolvers.window import Window

        now = self._now()
        reader = Reader(_StoreContext(self._events, self._events), campaign.project)
        table = await reader.segment(to_segment(filter_input(flt)),
                                     Window(now - SEGMENT_WINDOW_MS, now + 1))
        return set(table.column("user_id").to_pylist())

    async def _deliver(self, row: OutboxRow, campaign: CampaignRow,
                       segment: set[str] | None,
                       channels: dict[tuple[str, str], Channel]) -> None:
        """Deliver one firing; ``channels`` keeps the round's channel per campaign."""
        spec = campaign.spec
        channel_type = str(spec["channel"]["type"])
        delivery = await asyncio.to_thread(self.store.begin, row, channel_type)
        key = delivery.idempotency_key
        if delivery.status != "pending":  # settled before a crash cleared the outbox row
            await asyncio.to_thread(self.store.settle, row, key, delivery.status,
                                    delivery.detail, 0)
            return

        def counted(status: str) -> None:
            if self.on_delivery is not None:
                self.on_delivery(channel_type, status)

        async def settle(status: str, detail: str, attempts: int = 0) -> None:
            await asyncio.to_thread(self.store.settle, row, key, status, detail, attempts)
            counted(status)

        if campaign.status != "ACTIVE" and spec.get("trigger") is not None:
            await settle("skipped", "campaign paused")
            return
        if segment is not None and row.user_id not in segment:
            await settle("skipped", "not in the campaign's segment")
            return
        if in_holdout(row.campaign, row.user_id, float(spec.get("holdout") or 0.0)):
            await settle("holdout", "kept out to measure the campaign")
            return
        cap = spec.get("frequencyCap")
        if cap:
            since = self._now() - int(cap["perMs"])
            sent = await asyncio.to_thread(self.store.sent_since, row.project, row.campaign,
                                           row.user_id, since)
            if sent >= int(cap["count"]):
                await settle("capped", f"{sent} sent in the cap's period")
                return
        until = quiet_until(self._now(), spec.get("quietHours"))
        if until is not None:
            await asyncio.to_thread(self.store.postpone, row, until)
            counted("postponed")
            return
        profile = await asyncio.to_thread(self._profile, row.project, row.user_id)
        template = spec.get("template") or {}
        message = Message(campaign_id=row.campaign, user_id=row.user_id, idempotency_key=key,
                          subject=render(template.get("subject") or "", profile),
                          body=render(template.get("body") or "", profile),
                          to=profile.get("email"),
                          data={"firing": row.firing, "at": row.at,
                                "event": (row.event or {}).get("event_name")})
        campaign_key = (row.project, row.campaign)
        if campaign_key not in channels:
            channels[campaign_key] = channel_from_config(spec["channel"], self.channel_settings)
        result = await channels[campaign_key].send(message)
        if result.status == "retry":
            await asyncio.to_thread(self.store.postpone, row,
                                    self._now() + int((result.retry_after or 60) * 1000))
            counted("postponed")
            return
        await settle(result.status, result.detail, result.attempts)

    def _profile(self, project: str, user: str) -> dict[str, Any]:
        table: pa.Table = self._events.scan_profiles(project, [user])
        rows = table.to_pylist()
        if not rows:
            return {"user_id": user}
        row = rows[0]
        traits = orjson.loads(row.pop("traits") or "{}")
        return {**traits, **{k: v for k, v in row.items() if v is not None}, "user_id": user}

    # -- results ---------------------------------------------------------------------------

    def results(self, project: str, campaign: CampaignRow) -> dict[str, Any]:
        """Messaged users and the holdout, and how many of each reached the goal within its
        window after their firing was decided."""
        sent: dict[str, int] = {}
        held: dict[str, int] = {}
        after = 0
        while True:
            page = self.store.deliveries(project, campaign.id, after, 5000)
            if not page:
                break
            for d in page:
                if d.status == "sent":
                    sent.setdefault(d.user_id, d.created_at)
                elif d.status == "holdout":
                    held.setdefault(d.user_id, d.created_at)
            after = page[-1].id
        goal = campaign.spec.get("goal") or {}
        converted = held_converted = 0
        if goal.get("event") and (sent or held):
            within = int(goal.get("withinMs") or 7 * DAY_MS)
            start = min([*sent.values(), *held.values()])
            table = self._events.scan_events(project, EventQuery(
                start, self._now() + 1, (goal["event"],), ("user_id", "time"), False))
            times: dict[str, list[int]] = {}
            for u, t in zip(table.column("user_id").to_pylist(),
                            table.column("time").to_pylist(), strict=True):
                times.setdefault(u, []).append(t)

            def reached(user: str, at: int) -> bool:
                return any(at <= t <= at + within for t in times.get(user, ()))

            converted = sum(reached(u, at) for u, at in sent.items())
            held_converted = sum(reached(u, at) for u, at in held.items())
        rate = converted / len(sent) if sent else None
        held_rate = held_converted / len(held) if held else None
        lift = (rate / held_rate - 1) if rate is not None and held_rate else None
        return {"sent": len(sent), "converted": converted, "holdout": len(held),
                "holdout_converted": held_converted, "conversion_rate": rate,
                "holdout_conversion_rate": held_rate, "lift": lift,
                "deliveries": self.store.count_deliveries(project, campaign.id)}
