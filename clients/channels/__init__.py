"""Engagement channels: how a campaign's rendered message reaches a user.

- :class:`WebhookChannel`: signed JSON POST (also WhatsApp and push, via the provider's URL)
- :class:`EmailChannel`: plain-text mail over SMTP
- :class:`LogChannel`: a JSON line per message, for dry runs
- :func:`channel_from_config`: the channel for a campaign's ``channel`` input
- :func:`render`: fills user traits into a template

Every channel has ``async send(message) -> DeliveryResult`` and ``async aclose()``."""

from clients.channels.config import (
    ChannelConfigError,
    ChannelSettings,
    ChannelSpec,
    EmailSpec,
    LogSpec,
    WebhookSpec,
    channel_from_config,
    validate_channel_config,
)
from clients.channels.log import LogChannel, mask_contact
from clients.channels.message import Channel, DeliveryResult, DeliveryStatus, Message
from clients.channels.retry import Backoff
from clients.channels.smtp import EmailChannel, SmtpSettings, message_id_for
from clients.channels.template import TemplateError, check_template, render
from clients.channels.webhook import WebhookChannel, sign, verify_signature

__all__ = [
    "Backoff",
    "Channel",
    "ChannelConfigError",
    "ChannelSettings",
    "ChannelSpec",
    "DeliveryResult",
    "DeliveryStatus",
    "EmailChannel",
    "EmailSpec",
    "LogChannel",
    "LogSpec",
    "Message",
    "SmtpSettings",
    "TemplateError",
    "WebhookChannel",
    "WebhookSpec",
    "channel_from_config",
    "check_template",
    "mask_contact",
    "message_id_for",
    "render",
    "sign",
    "validate_channel_config",
    "verify_signature",
]
