"""Hints for the ticket system (TicketAPI). Its errors are worded the same in both pinned releases.

The backend only checks the login when creating or listing tickets; getting, editing, closing and
resolving a ticket work on any ticket ID, logged in or not. Unknown ticket IDs are found with
`get_user_tickets` (the logged-in user's tickets), so the hints point there and never list IDs.
"""

from __future__ import annotations

import re

from envtune.feedback.core import (
    FeedbackContext,
    hint_rule,
    login_required_rule,
    login_step,
)

# The keys `edit_ticket` accepts in `updates` (its docs name all four; the backend rejects others).
_EDITABLE_FIELDS = ("title", "description", "status", "priority")

not_authenticated = login_required_rule(
    "ticket.not_authenticated", "ticket system", "ticket_login", ("create_ticket", "get_user_tickets"),
)


@hint_rule("ticket.invalid_priority", "parameter_constraint", r"^Invalid priority\.", tools=("create_ticket",))
def invalid_priority(context: FeedbackContext, match: re.Match) -> str:
    return (f"priority={context.arguments.get('priority')!r} is outside the scale: it must be a whole number from 1 "
            "(lowest) to 5 (highest); leaving it out gives 1. Choose the level that matches the user's request, or "
            "ask the user.")


@hint_rule("ticket.unknown_ticket", "dependency_missing", r"^Ticket with ID .* not found\.",
           tools=("get_ticket", "close_ticket", "resolve_ticket", "edit_ticket"))
def unknown_ticket(context: FeedbackContext, match: re.Match) -> str:
    problem = f"There is no ticket with ID {context.arguments.get('ticket_id')!r}."
    if not context.available("get_user_tickets"):
        return f"{problem} Use the id that create_ticket returned, or ask the user for the ticket ID."
    login = "" if context.instance.current_user else (
        f" Listing needs a login, and you are not logged in. {login_step(context, 'ticket_login')}")
    return (f"{problem} Use the id that create_ticket returned, or find the ticket with get_user_tickets, which "
            f"lists the tickets of the logged-in user.{login}")


@hint_rule("ticket.already_done", "state_prerequisite", r"^Ticket with ID .* is already (?P<status>closed|resolved)\.",
           tools=("close_ticket", "resolve_ticket"))
def already_done(context: FeedbackContext, match: re.Match) -> str:
    check = " (get_ticket shows a ticket's details)" if context.available("get_ticket") else ""
    return (f"Ticket {context.arguments.get('ticket_id')!r} is already {match['status']}, so this call changes "
            f"nothing. Check that it is the ticket the user meant{check}; if it is, tell the user it was already "
            f"{match['status']}.")


@hint_rule("ticket.invalid_update_fields", "parameter_constraint", r"^Invalid fields for update:",
           tools=("edit_ticket",))
def invalid_update_fields(context: FeedbackContext, match: re.Match) -> str:
    # The backend reads `updates.keys()` first, so this error means `updates` is a dict.
    invalid = [repr(key) for key in context.arguments["updates"] if key not in _EDITABLE_FIELDS]
    allowed = ", ".join(repr(field) for field in _EDITABLE_FIELDS)
    verb = "is not a ticket field" if len(invalid) == 1 else "are not ticket fields"
    return (f"{', '.join(invalid)} {verb}: updates may only change {allowed}. Put each change under one of "
            "these keys, or ask the user if a change fits none of them.")


# The order they are tried in.
RULES = (not_authenticated, invalid_priority, unknown_ticket, already_done, invalid_update_fields)
