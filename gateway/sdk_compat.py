"""SDK-compatible ingestion (issue 8): what Segment / RudderStack, PostHog and Mixpanel SDKs
send, taken as they send it.

Each SDK message is translated into CEP's envelope (``stream.contract.envelope``) and the
list is handed to the same ``Ingestor`` as ``POST /v1/events`` and ``/v1/identify``: the
same validation, dead letters, dedup and pipeline. A message the envelope refuses becomes a
dead letter (its translated envelope is the payload, so a replay re-judges it); only a body
that is not the SDK's format at all is refused whole (400). The answer has the shape the
SDK reads, so its retries behave: 5xx only while the event log is unavailable (or the
pipeline is too far behind), with ``Retry-After``.

The translation functions (the first part of this module) are pure; the Starlette
handlers (``SDKEndpoints``, at the end) authenticate, rate-limit, ingest and answer.
Choices the SDKs' own documentation leaves open are in docs/decisions.md (issue 8).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs

import msgspec
import orjson
import xxhash
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from gateway.auth import credentials
from gateway.http_ingest import IngestEndpoints, Refused, error_response, read_body
from gateway.ingest import BodyTooLarge, Ingestor, inflate, is_gzip
from storage.local_log import LogClosed

log = logging.getLogger("cep.ingest.sdk")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PAGE_VIEW = "Page View"
SCREEN_VIEW = "Screen View"
GROUP = "Group"


class BadPayload(ValueError):
    """The body is not what the SDK sends (not JSON, not its form encoding): 400."""


# -- shared translation helpers -----------------------------------------------------------

@dataclass
class Translated:
    """One request's SDK messages as CEP records. ``*_origin[i]`` is the index of the SDK
    message record ``i`` came from, so rejections are reported against the SDK's batch."""

    key: str | None = None
    messages: int = 0
    events: list[Any] = field(default_factory=list)
    event_origin: list[int] = field(default_factory=list)
    profiles: list[Any] = field(default_factory=list)
    profile_origin: list[int] = field(default_factory=list)

    def event(self, origin: int, record: Any) -> None:
        self.events.append(record)
        self.event_origin.append(origin)

    def profile(self, origin: int, record: Any) -> None:
        self.profiles.append(record)
        self.profile_origin.append(origin)

    def found_key(self, value: Any) -> None:
        if self.key is None and isinstance(value, str) and value:
            self.key = value


def loads(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadPayload(f"body: invalid JSON ({exc})") from None


def loads_lines(data: bytes | str) -> Any:
    """JSON, or NDJSON (several objects, one a line) as a list."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        lines = [line for line in data.splitlines() if line.strip()]
        if len(lines) < 2:
            raise BadPayload(f"body: invalid JSON ({exc})") from None
        return [loads(line) for line in lines]


def decode_data(data: str | bytes, limit: int) -> Any:
    """A ``data`` value as the browser SDKs send it: JSON as is, or base64 of JSON or of
    gzipped JSON. (Form encoding turns base64's ``+`` into a space; it is put back.)"""
    raw = data.encode() if isinstance(data, str) else data
    text = raw.strip()
    if text[:1] in (b"{", b"["):
        return loads_lines(text)
    try:
        clean = text.replace(b" ", b"+").replace(b"\n", b"")
        clean += b"=" * (-len(clean) % 4)
        decoded = base64.b64decode(clean, altchars=b"-_" if b"-" in clean or b"_" in clean
                                   else None, validate=True)
    except (binascii.Error, ValueError):
        raise BadPayload("data: neither JSON nor base64-encoded JSON") from None
    if is_gzip(decoded):
        decoded = inflate(decoded, limit)
    return loads_lines(decoded)


def form_fields(body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body; the last value of a repeated name."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadPayload("body: form data is not UTF-8") from None
    return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}


def is_form(body: bytes, content_type: str) -> bool:
    kind = content_type.split(";")[0].strip().lower()
    return kind == "application/x-www-form-urlencoded" or body[:5] == b"data="


def iso_ms(value: Any) -> int | None:
    """An ISO-8601 time (``Z`` or an offset; no offset is UTC) or a unix number as unix
    ms; None when ``value`` is not a time."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return number_ms(value)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text[-1] in "Zz":
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            return number_ms(float(text))
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // timedelta(milliseconds=1)


def number_ms(value: float) -> int:
    """Unix time as Mixpanel takes it: seconds (fractions allowed), or milliseconds when the
    number is that large (1e11 seconds is the year 5138; 1e11 ms is 1973)."""
    return int(round(value)) if abs(value) >= 1e11 else int(round(value * 1000))


def corrected_time(timestamp: Any, sent_at: Any, received_ms: int) -> Any:
    """Segment's (and PostHog's) clock-skew correction: the device clock is trusted for the
    interval between the event and the send, the server's for the rest:
    time = timestamp + (receivedAt - sentAt). Without a timestamp the event happened when it
    was received; without ``sentAt`` the timestamp is taken as is. A timestamp that is not a
    time is returned as sent, so the envelope's validation names it in the dead letter."""
    if timestamp is None:
        return received_ms
    at = iso_ms(timestamp)
    if at is None:
        return timestamp
    sent = iso_ms(sent_at)
    return at if sent is None else at + (received_ms - sent)


def derived_insert_id(message: Any) -> str:
    """For a message sent without an id: a hash of the message as sent, so an SDK's retry
    of it dedupes."""
    return "h" + xxhash.xxh3_128_hexdigest(orjson.dumps(message, option=orjson.OPT_SORT_KEYS))


def ident(value: Any) -> Any:
    """An id as text: numbers become text, empty means absent; anything else is returned
    as is for the envelope to refuse by name."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value


def text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def flat_traits(traits: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Profile traits are flat: nested objects become dotted keys, arrays JSON text."""
    out: dict[str, Any] = {}
    for key, value in traits.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_traits(value, name + "."))
        elif isinstance(value, list):
            out[name] = orjson.dumps(value).decode()
        else:
            out[name] = value
    return out


def envelope(name: Any, at: Any, insert_id: Any, user: Any, device: Any, *,
             properties: Any = None, url: Any = None, ip: Any = None, user_agent: Any = None,
             session: Any = None) -> dict[str, Any]:
    """A CEP event record; absent values are left out (required ones are then named by
    the envelope's validation)."""
    record: dict[str, Any] = {"event_name": name, "time": at, "insert_id": insert_id,
                              "distinct_user_id": user, "device_id": device,
                              "session_id": ident(session), "url": url, "ip": ip,
                              "user_agent": user_agent, "custom_properties": properties}
    return {k: v for k, v in record.items() if v is not None}


def profile(user: Any, device: Any = None, traits: Any = None) -> dict[str, Any]:
    record: dict[str, Any] = {"distinct_user_id": user, "traits": {} if traits is None
                              else traits}
    if device is not None and device != user:
        record["device_id"] = device
    return {k: v for k, v in record.items() if v is not None}


def properties_of(message: Mapping[str, Any], name: str = "properties") -> Any:
    """A message's properties as a fresh dict (``{}`` when absent); anything but an object
    is returned as is, for the envelope to refuse."""
    value = message.get(name)
    if value is None:
        return {}
    return dict(value) if isinstance(value, dict) else value


# -- Segment / RudderStack ------------------------------------------------------------------

SEGMENT_TYPES = ("track", "identify", "page", "screen", "alias", "group")
SEGMENT_SHORT = {"t": "track", "i": "identify", "p": "page", "s": "screen", "a": "alias",
                 "g": "group", "b": "batch"}
# Where Segment's servers fill ``context.ip`` from the request: client-side libraries.
SEGMENT_CLIENT_LIBRARIES = ("analytics.js", "analytics-next", "@segment/analytics",
                            "analytics-ios", "analytics-android", "analytics-kotlin",
                            "analytics-swift", "analytics-react-native", "analytics-flutter")
SEGMENT_MARKERS = frozenset({"type", "userId", "anonymousId", "writeKey", "messageId",
                             "sentAt", "timestamp", "context", "integrations"})
CEP_PROFILE_IDS = frozenset({"distinct_user_id", "distinct_id", "device_id"})
ADDRESS = (("city", "city"), ("state", "state"), ("country", "country"),
           ("postalCode", "postal_code"), ("postal_code", "postal_code"),
           ("street", "street"))


def is_segment_message(body: bytes) -> bool:
    """Whether a ``/v1/identify`` body is Segment's (one object with Segment's fields) rather
    than CEP's own (a JSON array, or NDJSON of ``{distinct_user_id, device_id, traits}``)."""
    if body.lstrip()[:1] != b"{":
        return False
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False  # several NDJSON lines, or not JSON: CEP's own route judges it
    return (isinstance(value, dict) and bool(SEGMENT_MARKERS & value.keys())
            and not CEP_PROFILE_IDS & value.keys())


def segment_traits(traits: Any) -> Any:
    """Segment identify traits as CEP profile traits: ``address`` gives CEP's place traits
    (city, state, country, postal_code), other nested objects dotted keys."""
    if not isinstance(traits, dict):
        return traits
    rest = dict(traits)
    out: dict[str, Any] = {}
    address = rest.pop("address", None)
    if isinstance(address, dict):
        for src, dst in ADDRESS:
            if address.get(src) is not None:
                out[dst] = address[src]
    elif address is not None:
        rest["address"] = address
    out.update(flat_traits(rest))
    return out


def segment_translate(payload: Any, kind: str, received_ms: int,
                      client_ip: str | None = None) -> Translated:
    """A Segment HTTP API body: one message (``kind`` is the endpoint's type) or, for
    ``batch``, ``{"batch": [...], "sentAt", "writeKey", "context"}``."""
    if not isinstance(payload, dict):
        raise BadPayload("body: expected a JSON object")
    out = Translated()
    out.found_key(payload.get("writeKey"))
    if kind != "batch":
        out.messages = 1
        _segment_message(out, 0, payload, kind, None, {}, received_ms, client_ip)
        return out
    batch = payload.get("batch")
    if not isinstance(batch, list):
        raise BadPayload("batch: expected an array of messages")
    shared = payload.get("context")
    shared = shared if isinstance(shared, dict) else {}
    out.messages = len(batch)
    for index, message in enumerate(batch):
        _segment_message(out, index, message, None, payload.get("sentAt"), shared,
                         received_ms, client_ip)
    return out


def _segment_message(out: Translated, index: int, message: Any, forced: str | None,
                     batch_sent_at: Any, shared: dict[str, Any], received_ms: int,
                     client_ip: str | None) -> None:
    if not isinstance(message, dict):
        out.event(index, message)  # refused by the envelope: not an object
        return
    out.found_key(message.get("writeKey"))
    kind = forced or message.get("type")
    user, anon = ident(message.get("userId")), ident(message.get("anonymousId"))
    if kind in ("identify", "alias"):
        out.profile(index, _segment_profile(kind, message, user, anon))
        return
    context = message.get("context")
    context = {**shared, **context} if isinstance(context, dict) else dict(shared)
    at = corrected_time(message.get("timestamp"), message.get("sentAt", batch_sent_at),
                        received_ms)
    insert_id = ident(message.get("messageId")) or derived_insert_id(message)
    if kind not in SEGMENT_TYPES:
        # Refused by the envelope with the reason "type: unknown field".
        out.event(index, {**envelope(None, at, insert_id, user, anon), "type": kind})
        return
    name, url, props = _segment_what(kind, message, context)
    ip = text(context.get("ip"))
    if ip is None and _client_library(context):
        ip = client_ip
    if isinstance(props, dict):
        app = context.get("app")
        if isinstance(app, dict) and app.get("version") is not None:
            props.setdefault("app_version", str(app["version"]))
        rest = {k: v for k, v in context.items() if k not in ("ip", "userAgent")}
        if rest:
            props.setdefault("context", rest)
    out.event(index, envelope(name, at, insert_id, user, anon, properties=props, url=url,
                              ip=ip, user_agent=context.get("userAgent")))


def _segment_profile(kind: str, message: dict[str, Any], user: Any, anon: Any
                     ) -> dict[str, Any]:
    if kind == "alias":  # previousId (an anonymous id) is tied to userId like a device
        return profile(user, ident(message.get("previousId")))
    traits = message.get("traits") or {}
    # RudderStack's SDKs send identify traits in context.traits.
    context_traits = _dict(_dict(message.get("context")).get("traits"))
    if context_traits and isinstance(traits, dict):
        traits = {**context_traits, **traits}
    return profile(user or anon, anon if user else None, segment_traits(traits))


def _segment_what(kind: str, message: dict[str, Any], context: dict[str, Any]
                  ) -> tuple[Any, Any, Any]:
    """(event name, url, properties) of a track, page, screen or group message."""
    page = context.get("page")
    url = page.get("url") if isinstance(page, dict) else None
    props = properties_of(message)
    if kind == "group":
        return GROUP, url, {"group_id": ident(message.get("groupId")),
                            "group_traits": message.get("traits") or {}}
    if kind == "track":
        return message.get("event"), url, props
    if isinstance(props, dict):
        url = props.get("url") or url
        for key in ("name", "category"):
            if message.get(key) is not None:
                props.setdefault(key, message[key])
    if kind == "screen" and not url:
        url = message.get("name")  # an app's screens are its pages
    return PAGE_VIEW if kind == "page" else SCREEN_VIEW, url, props


def _client_library(context: Mapping[str, Any]) -> bool:
    library = context.get("library")
    name = library.get("name") if isinstance(library, dict) else None
    return isinstance(name, str) and name.startswith(SEGMENT_CLIENT_LIBRARIES)


# -- PostHog ------------------------------------------------------------------------------

POSTHOG_DROP = frozenset({"token", "api_key", "distinct_id", "$ip", "$set", "$set_once"})


def posthog_decode(body: bytes, content_type: str, query: Mapping[str, str],
                   limit: int) -> Any:
    """A capture body: JSON (gzip already undone, with or without ``Content-Encoding``),
    or a form with ``data=<base64 JSON, maybe gzipped>``, or ``?data=`` on a GET."""
    compression = query.get("compression", "")
    if body.strip() and is_form(body, content_type):
        fields = form_fields(body)
        compression = fields.get("compression") or compression
        data: str | bytes | None = fields.get("data")
    else:
        data = body if body.strip() else query.get("data")
    if compression.lower() == "lz64":
        raise BadPayload("compression lz64 is not supported: use gzip-js or none")
    if data is None or not data.strip():
        raise BadPayload("body: empty")
    return decode_data(data, limit)


def posthog_translate(payload: Any, received_ms: int, client_ip: str | None = None,
                      sent_at: Any = None) -> Translated:
    """``/capture/`` one event, ``/batch/`` ``{"api_key", "batch": [...], "sent_at"}``,
    ``/e/`` an array of events with ``properties.token``. ``sent_at`` is the batch's (or
    posthog-js's ``?_=`` ms) when the body has none."""
    out = Translated()
    if isinstance(payload, dict):
        out.found_key(payload.get("api_key"))
        out.found_key(payload.get("token"))
        sent_at = payload.get("sent_at", sent_at)
        messages = payload.get("batch", [payload])
    elif isinstance(payload, list):
        messages = payload
    else:
        raise BadPayload("body: expected a JSON object or array")
    if not isinstance(messages, list):
        raise BadPayload("batch: expected an array of events")
    out.messages = len(messages)
    for index, message in enumerate(messages):
        _posthog_message(out, index, message, sent_at, received_ms, client_ip)
    return out


def _posthog_message(out: Translated, index: int, message: Any, sent_at: Any,
                     received_ms: int, client_ip: str | None) -> None:
    if not isinstance(message, dict):
        out.event(index, message)
        return
    props = properties_of(message)
    props_map = props if isinstance(props, dict) else {}
    out.found_key(message.get("api_key"))
    out.found_key(props_map.get("token"))
    name = message.get("event")
    distinct = ident(message.get("distinct_id") or props_map.get("distinct_id"))
    device = ident(props_map.get("$device_id"))
    user = distinct if distinct != device else None
    traits = {**_dict(message.get("$set_once") or props_map.get("$set_once")),
              **_dict(message.get("$set") or props_map.get("$set"))}
    if name == "$identify":
        anon = ident(props_map.get("$anon_distinct_id")) or device
        out.profile(index, profile(distinct, anon, flat_traits(traits)))
        return
    if name in ("$set", "$set_once"):
        out.profile(index, profile(distinct, None, flat_traits(traits)))
        return
    if name == "$create_alias":  # the alias is the identity the previous id now belongs to
        out.profile(index, profile(ident(props_map.get("alias")),
                                   ident(props_map.get("distinct_id")) or distinct))
        return
    if traits:  # $set on an ordinary event updates the person too
        out.profile(index, profile(distinct, device if user else None, flat_traits(traits)))
    url = props_map.get("$current_url")
    if name == "$pageview":
        name = PAGE_VIEW
    elif name == "$screen":
        name = SCREEN_VIEW
        url = url or props_map.get("$screen_name")
    at = _posthog_time(message, props_map, sent_at, received_ms)
    insert_id = (ident(message.get("uuid")) or ident(props_map.get("$insert_id"))
                 or derived_insert_id(message))
    ip = None
    if not props_map.get("$geoip_disable"):
        ip = text(props_map.get("$ip")) or client_ip
    if isinstance(props, dict):
        props = {k: v for k, v in props.items() if k not in POSTHOG_DROP}
        version = props_map.get("$app_version")
        if version is not None:
            props.setdefault("app_version", str(version))
    out.event(index, envelope(name, at, insert_id, user, device, properties=props, url=url,
                              ip=ip, user_agent=props_map.get("$raw_user_agent"),
                              session=props_map.get("$session_id")))


def _posthog_time(message: Mapping[str, Any], props: Mapping[str, Any], sent_at: Any,
                  received_ms: int) -> Any:
    offset = message.get("offset")
    if message.get("timestamp") is None and isinstance(offset, int | float):
        return received_ms - int(offset)  # posthog-js: sent ``offset`` ms after the event
    sent = None if props.get("$ignore_sent_at") else message.get("sent_at", sent_at)
    return corrected_time(message.get("timestamp"), sent, received_ms)


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


POSTHOG_NEUTRAL_FLAGS = {"featureFlags": {}, "featureFlagPayloads": {}, "flags": {},
                         "errorsWhileComputingFlags": False, "quotaLimited": [],
                         "sessionRecording": False, "supportedCompression": ["gzip",
                                                                             "gzip-js"]}


# -- Mixpanel -----------------------------------------------------------------------------

MIXPANEL_DROP = frozenset({"token", "distinct_id", "time", "$insert_id", "ip", "$device_id",
                           "$user_id"})
MIXPANEL_TRAITS = {"$email": "email", "$phone": "phone", "$city": "city", "$region": "state",
                   "$country_code": "country", "$first_name": "first_name",
                   "$last_name": "last_name", "$name": "name", "$avatar": "avatar",
                   "$created": "created"}
# /engage fields that are not a profile operation CEP would refuse.
ENGAGE_META = frozenset({"$token", "$distinct_id", "$set", "$set_once", "$ip", "$time",
                         "$ignore_time", "$ignore_alias", "$latitude", "$longitude",
                         "$device_id", "$user_id", "$had_persisted_distinct_id"})
# CEP envelope field (as validation names it) → Mixpanel's name, for strict-mode answers.
MIXPANEL_FIELDS = {"time": "properties.time", "insert_id": "properties.$insert_id",
                   "distinct_user_id": "properties.distinct_id", "event_name": "event",
                   "device_id": "properties.$device_id", "url": "properties.$current_url",
                   "ip": "properties.ip", "custom_properties": "properties",
                   "traits": "$set", "record": "record"}


def mixpanel_decode(body: bytes, content_type: str, query: Mapping[str, str],
                    limit: int) -> tuple[Any, dict[str, str]]:
    """A Mixpanel body and its parameters (query, then form fields): a form with
    ``data=<JSON or base64 JSON>`` (the SDKs), JSON or NDJSON (``/import``), or ``?data=``."""
    params = dict(query)
    if body.strip() and is_form(body, content_type):
        fields = form_fields(body)
        data: str | bytes | None = fields.pop("data", None)
        params.update(fields)
    else:
        data = body if body.strip() else params.get("data")
    if data is None or not data.strip():
        raise BadPayload("data: missing")
    return decode_data(data, limit), params


def mixpanel_identity(props: Mapping[str, Any]) -> tuple[Any, Any]:
    """(user, device) from ``distinct_id``, ``$device_id`` and ``$user_id``: an id that is
    the device's (``$device:…`` or equal to ``$device_id``) is not a user."""
    distinct = ident(props.get("distinct_id"))
    device = ident(props.get("$device_id"))
    user = ident(props.get("$user_id"))
    if isinstance(distinct, str) and distinct.startswith("$device:"):
        device = device or distinct[len("$device:"):]
        distinct = None
    if user is None and distinct is not None and distinct != device:
        user = distinct
    return user, device


def mixpanel_time(value: Any) -> Any:
    """``properties.time``: seconds (float) or milliseconds; text as sent is refused."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return number_ms(value)
    if isinstance(value, str):
        try:
            return number_ms(float(value))
        except ValueError:
            return value
    return value


def mixpanel_translate_events(payload: Any, received_ms: int, client_ip: str | None = None,
                              *, request_ip: bool = False, fill_time: bool = True
                              ) -> Translated:
    """``/track`` and ``/import``: one event or an array. ``fill_time``: an event without a
    time happened when it was received (``/track``); ``/import`` requires one.
    ``request_ip``: the request's address stands for an event without ``ip`` (``ip=1``)."""
    messages = payload if isinstance(payload, list) else [payload]
    if not isinstance(payload, list | dict):
        raise BadPayload("data: expected a JSON object or array")
    out = Translated(messages=len(messages))
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            out.event(index, message)
            continue
        props = properties_of(message)
        props_map = props if isinstance(props, dict) else {}
        out.found_key(props_map.get("token"))
        if _mixpanel_identity_event(out, index, message.get("event"), props_map):
            continue
        user, device = mixpanel_identity(props_map)
        at = (mixpanel_time(props_map["time"]) if props_map.get("time") is not None
              else received_ms if fill_time else None)
        insert_id = ident(props_map.get("$insert_id")) or derived_insert_id(message)
        name = message.get("event")
        if name == "$mp_web_page_view":
            name = PAGE_VIEW
        ip = text(props_map.get("ip")) or (client_ip if request_ip else None)
        if isinstance(props, dict):
            props = {k: v for k, v in props.items() if k not in MIXPANEL_DROP}
            version = props_map.get("$app_version_string") or props_map.get("$app_release")
            if version is not None:
                props.setdefault("app_version", str(version))
        out.event(index, envelope(name, at, insert_id, user, device, properties=props,
                                  url=props_map.get("$current_url"), ip=ip))
    return out


def _mixpanel_identity_event(out: Translated, index: int, name: Any,
                             props: Mapping[str, Any]) -> bool:
    """``$identify`` / ``$create_alias`` / ``$merge`` tie an anonymous id to a user."""
    if name == "$identify":
        out.profile(index, profile(ident(props.get("$identified_id") or props.get(
            "distinct_id")), ident(props.get("$anon_id"))))
    elif name == "$create_alias":
        out.profile(index, profile(ident(props.get("alias")), ident(props.get("distinct_id"))))
    elif name == "$merge":
        ids = props.get("$distinct_ids")
        pair = ids if isinstance(ids, list) and len(ids) == 2 else [None, None]
        out.profile(index, profile(ident(pair[0]), ident(pair[1])))
    else:
        return False
    return True


def mixpanel_traits(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        return {}
    return flat_traits({MIXPANEL_TRAITS.get(str(k), str(k)): v for k, v in value.items()})


def mixpanel_translate_engage(payload: Any) -> Translated:
    """``/engage``: ``$set`` and ``$set_once`` (applied like ``$set``: CEP keeps the last
    value) become profile traits; any other operation (``$add``, ``$unset``, …) is left on
    the record, so the envelope refuses it by name into a dead letter."""
    updates = payload if isinstance(payload, list) else [payload]
    if not isinstance(payload, list | dict):
        raise BadPayload("data: expected a JSON object or array")
    out = Translated(messages=len(updates))
    for index, update in enumerate(updates):
        if not isinstance(update, dict):
            out.profile(index, update)
            continue
        out.found_key(update.get("$token"))
        traits = {**mixpanel_traits(update.get("$set_once")),
                  **mixpanel_traits(update.get("$set"))}
        for src, dst in (("$latitude", "lat"), ("$longitude", "long")):
            if update.get(src) is not None:
                traits[dst] = update[src]
        user, device = mixpanel_identity({"distinct_id": update.get("$distinct_id"),
                                          "$device_id": update.get("$device_id"),
                                          "$user_id": update.get("$user_id")})
        # An anonymous profile's traits stay with the device (what it resolves to).
        record = profile(user or device, device if user else None, traits)
        record.update({k: v for k, v in update.items() if k not in ENGAGE_META})
        out.profile(index, record)
    return out


def mixpanel_failed_records(translated: Translated, rejected: list[tuple[int, str]]
                            ) -> list[dict[str, Any]]:
    """Strict-mode ``failed_records`` for rejections ``(message index, "field: why")``."""
    failed = []
    for index, reason in rejected:
        where, _, message = reason.partition(": ")
        head, dot, tail = where.partition(".")
        name = MIXPANEL_FIELDS.get(head, head)
        if dot:
            name = f"{name}.{tail}"
        insert_id = _insert_id_of(translated, index)
        failed.append({"index": index, "$insert_id": insert_id, "insert_id": insert_id,
                       "field": name, "message": message or reason})
    return failed


def _insert_id_of(translated: Translated, index: int) -> str | None:
    for record, origin in zip(translated.events, translated.event_origin, strict=True):
        if origin == index and isinstance(record, dict):
            value = record.get("insert_id")
            return value if isinstance(value, str) else None
    return None


# -- HTTP ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Outcome:
    accepted: int  # SDK messages all of whose records were accepted
    rejected: list[tuple[int, str]]  # (SDK message index, reason), in message order


def _raw(records: list[Any]) -> list[msgspec.Raw]:
    return [msgspec.Raw(_dumps(r)) for r in records]


def _dumps(record: Any) -> bytes:
    """orjson, else the standard library for what orjson cannot encode (an integer past 64
    bits): the envelope parser then refuses that field by name, as for /v1/events."""
    try:
        return orjson.dumps(record)
    except TypeError:
        return json.dumps(record, default=str).encode()


def now_ms() -> int:
    return int(time.time() * 1000)


def client_ip(request: Request) -> str | None:
    return request.client.host if request.client else None


Handler = Callable[[Request], Awaitable[Response]]


class SDKEndpoints:
    """The SDK-compatible routes. ``ingest`` is CEP's own: its admission (keys, backlog
    bound, rate budget, body limit) is theirs, and it takes ``/v1/identify`` bodies in CEP's
    format."""

    def __init__(self, ingest: IngestEndpoints, ingestor: Ingestor) -> None:
        self._ingest = ingest  # its admission: keys, backlog bound, rate budget, body limit
        self._ingestor = ingestor
        self._limit = ingest.body_limit

    def routes(self) -> list[Route]:
        """Every SDK route except ``/v1/identify``, which is shared with CEP's own."""
        routes = [Route(f"/v1/{name}", _cors(self._segment(kind)), methods=["POST", "OPTIONS"])
                  for name, kind in [*((t, t) for t in SEGMENT_TYPES if t != "identify"),
                                     ("batch", "batch"), *SEGMENT_SHORT.items()]]
        for path in ("/capture", "/batch", "/e", "/i/v0/e", "/track", "/engage", "/import"):
            handler = {"/track": self.mixpanel_track, "/engage": self.mixpanel_engage,
                       "/import": self.mixpanel_import}.get(path, self.posthog_capture)
            for variant in (path, path + "/"):
                routes.append(Route(variant, _cors(handler), methods=["GET", "POST", "OPTIONS"]))
        for path in ("/decide", "/flags"):
            for variant in (path, path + "/"):
                routes.append(Route(variant, _cors(self.posthog_flags),
                                    methods=["GET", "POST", "OPTIONS"]))
        return routes

    # -- Segment

    def _segment(self, kind: str) -> Handler:
        async def handle(request: Request) -> Response:
            try:
                body = await self._read(request)
                await self._segment_body(request, body, kind)
            except Refused as failure:
                return _segment_error(failure)
            return _json({"success": True})
        return handle

    async def identify(self, request: Request) -> Response:
        """``POST /v1/identify``: Segment's identify, or CEP's own profiles."""
        try:
            body = await self._read(request)
        except Refused as failure:
            return _with_retry(error_response(failure.status, failure.message, failure.code),
                               failure)
        if not is_segment_message(body):
            return await self._ingest.identify(_replay(request, body))
        try:
            await self._segment_body(request, body, "identify")
        except Refused as failure:
            return _segment_error(failure)
        return _json({"success": True})

    async def _segment_body(self, request: Request, body: bytes, kind: str) -> Outcome:
        now = now_ms()
        translated = self._translate(lambda: segment_translate(loads(body), kind, now,
                                                               client_ip(request)))
        return await self._submit(request, translated, "segment")

    # -- PostHog

    async def posthog_capture(self, request: Request) -> Response:
        try:
            body = await self._read(request)
            now, query = now_ms(), dict(request.query_params)
            sent = iso_ms(query["_"]) if query.get("_", "").isdigit() else None
            translated = self._translate(lambda: posthog_translate(
                posthog_decode(body, request.headers.get("content-type", ""), query,
                               self._limit), now, client_ip(request), sent))
            await self._submit(request, translated, "posthog")
        except Refused as failure:
            kind = {400: "validation_error", 401: "authentication_error",
                    403: "authentication_error"}.get(failure.status, "server_error")
            return _with_retry(_json({"type": kind, "code": failure.code.lower(),
                                      "detail": failure.message, "attr": None},
                                     failure.status), failure)
        return _json({"status": 1})

    async def posthog_flags(self, request: Request) -> Response:
        """``/decide/`` and ``/flags/``: CEP has no feature flags; a neutral answer keeps
        the SDKs quiet."""
        return _json(POSTHOG_NEUTRAL_FLAGS)

    # -- Mixpanel

    async def mixpanel_track(self, request: Request) -> Response:
        return await self._mixpanel(request, "track")

    async def mixpanel_import(self, request: Request) -> Response:
        return await self._mixpanel(request, "import")

    async def mixpanel_engage(self, request: Request) -> Response:
        return await self._mixpanel(request, "engage")

    async def _mixpanel(self, request: Request, endpoint: str) -> Response:
        params: dict[str, str] = dict(request.query_params)
        try:
            body = await self._read(request)
            now = now_ms()

            def translate() -> Translated:
                payload, found = mixpanel_decode(
                    body, request.headers.get("content-type", ""), request.query_params,
                    self._limit)
                params.update(found)
                if endpoint == "engage":
                    return mixpanel_translate_engage(payload)
                return mixpanel_translate_events(
                    payload, now, client_ip(request), request_ip=params.get("ip") == "1",
                    fill_time=endpoint == "track")

            translated = self._translate(translate)
            outcome = await self._submit(request, translated, "mixpanel")
        except Refused as failure:
            body_json: dict[str, Any] = {"status": 0, "error": failure.message}
            if endpoint == "import":
                body_json = {"code": failure.status, "error": failure.message,
                             "num_records_imported": 0,
                             "status": "Bad Request" if failure.status == 400 else 0}
            return _with_retry(_json(body_json, failure.status), failure)
        verbose = params.get("verbose") == "1"
        if endpoint != "import":
            return _json({"status": 1, "error": None}) if verbose else _plain("1")
        if params.get("strict") == "1" and outcome.rejected:
            return _json({"code": 400,
                          "error": "some data points in the request failed validation",
                          "failed_records": mixpanel_failed_records(translated,
                                                                    outcome.rejected),
                          "num_records_imported": outcome.accepted,
                          "status": "Bad Request"}, 400)
        if verbose:
            return _json({"code": 200, "error": None,
                          "num_records_imported": outcome.accepted, "status": 1})
        return _json({"code": 200, "num_records_imported": outcome.accepted, "status": "OK"})

    # -- shared

    async def _read(self, request: Request) -> bytes:
        try:
            return await read_body(request, self._limit)
        except BodyTooLarge as exc:
            raise Refused(413, str(exc), "PAYLOAD_TOO_LARGE") from None
        except ValueError as exc:
            raise Refused(400, str(exc), "BAD_REQUEST") from None

    @staticmethod
    def _translate(translate: Callable[[], Translated]) -> Translated:
        try:
            return translate()
        except BodyTooLarge as exc:
            raise Refused(413, str(exc), "PAYLOAD_TOO_LARGE") from None
        except BadPayload as exc:
            raise Refused(400, str(exc), "BAD_REQUEST") from None

    async def _submit(self, request: Request, translated: Translated, source: str) -> Outcome:
        """Authenticate, bound, and hand the records to the Ingestor: the same path, answers
        and errors as CEP's own routes."""
        key = credentials(request.headers) or translated.key
        info = self._ingest.authorize(key, hint="")
        await self._ingest.check_backlog()
        self._ingest.spend(key or "", len(translated.events) + len(translated.profiles))
        rejected: list[tuple[int, str]] = []
        try:
            if translated.events:
                result = await self._ingestor.events(info.project, _raw(translated.events),
                                                     source=source)
                rejected += [(translated.event_origin[i], r) for i, r in result.rejected]
            if translated.profiles:
                result = await self._ingestor.profiles(info.project,
                                                       _raw(translated.profiles),
                                                       source=source)
                rejected += [(translated.profile_origin[i], r) for i, r in result.rejected]
        except BodyTooLarge as exc:
            raise Refused(413, str(exc), "PAYLOAD_TOO_LARGE") from None
        except (LogClosed, OSError) as exc:
            log.error("event log unavailable: %s", exc)
            raise Refused(503, "the event log is unavailable; retry the same batch",
                          "UNAVAILABLE", "1") from None
        rejected.sort(key=lambda item: item[0])
        failed = {index for index, _ in rejected}
        return Outcome(translated.messages - len(failed), rejected)


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def _plain(content: str, status: int = 200) -> Response:
    return Response(content, status_code=status, media_type="text/plain")


def _with_retry(response: Response, failure: Refused) -> Response:
    if failure.retry_after:
        response.headers["Retry-After"] = failure.retry_after
    return response


def _segment_error(failure: Refused) -> Response:
    """Segment's SDKs read ``code`` and ``message`` of an error answer."""
    return _with_retry(_json({"success": False, "code": failure.code.lower(),
                              "message": failure.message}, failure.status), failure)


def _cors(handler: Handler) -> Handler:
    """Browser SDKs post from other origins: answer preflights and let them read answers."""
    async def handle(request: Request) -> Response:
        if request.method == "OPTIONS":
            response = Response(status_code=204)
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            response.headers["Access-Control-Allow-Headers"] = request.headers.get(
                "access-control-request-headers", "Content-Type, Authorization")
            response.headers["Access-Control-Max-Age"] = "86400"
        else:
            response = await handler(request)
        response.headers["Access-Control-Allow-Origin"] = request.headers.get("origin", "*")
        response.headers["Vary"] = "Origin"
        return response
    return handle


def _replay(request: Request, body: bytes) -> Request:
    """``request`` again with its (already read and inflated) body, for CEP's own handler."""
    headers = [(k, v) for k, v in request.scope["headers"]
               if k.lower() not in (b"content-encoding", b"content-length")]
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request({**request.scope, "headers": headers}, receive)
