"""The built-in hint rules, one module per concern, each listing its own `RULES` in the order they are
tried. `ALL_RULES` puts them together: the schema-derived rules first (a call that breaks its tool's
schema is fixed there first), then the domain modules by name. A new module takes effect only once it
is listed here."""

from envtune.feedback.core import Rule
from envtune.feedback.rules import (
    file_system,
    math_api,
    message_api,
    posting_api,
    schema,
    ticket_api,
    trading_bot,
    travel_booking,
    vehicle_control,
)

DOMAINS = (file_system, math_api, message_api, posting_api, ticket_api, trading_bot, travel_booking, vehicle_control)

ALL_RULES: tuple[Rule, ...] = (*schema.RULES, *(rule for domain in DOMAINS for rule in domain.RULES))
