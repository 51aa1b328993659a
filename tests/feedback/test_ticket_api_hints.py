"""Golden hints for the ticket system (TicketAPI): each failing call runs on a real session of both
releases (the backend's errors are worded the same in both), and its official result and augmented
text must be exactly these. Without a scenario the backend's default is used: no tickets, nobody
logged in; `TICKETS` logs alice in, with an open ticket 1 and a closed ticket 2.
"""

from __future__ import annotations

from typing import Any

import pytest

import hint_golden
from envtune.feedback import DEFAULT_RULES
from hint_golden import Golden

TICKETS = {
    "current_user": "alice",
    "ticket_counter": 3,
    "ticket_queue": [
        {"id": 1, "title": "Printer jam", "description": "", "status": "Open", "priority": 2, "created_by": "alice"},
        {"id": 2, "title": "VPN down", "description": "", "status": "Closed", "priority": 4, "created_by": "alice"},
    ],
}
LOGIN_STEP = ("Log in with ticket_login first (ask the user for the username and password if you do not have them), "
              "then try again.")


def ticket(name: str, call: str, result: str, hint: str, kind: str, state: dict[str, Any] | None = None,
           **options: Any) -> Golden:
    """A case on TicketAPI alone, starting from `state` (the backend's default when None)."""
    return Golden(name, ("TicketAPI",), call, result, hint, kind, scenario={"TicketAPI": state or {}}, **options)


CASES = [
    ticket("login before creating", "create_ticket(title='Printer jam')",
           '{"error": "User not authenticated. Please log in to create a ticket."}',
           f"You are not logged in to the ticket system, which is needed to create a ticket. {LOGIN_STEP}",
           "ticket.not_authenticated"),
    ticket("login tool held out", "create_ticket(title='Printer jam')",
           '{"error": "User not authenticated. Please log in to create a ticket."}',
           "You are not logged in to the ticket system, which is needed to create a ticket. No tool to log in is "
           "available right now, so tell the user this cannot be done yet.",
           "ticket.not_authenticated", held_out=("ticket_login",)),
    ticket("priority out of range", "create_ticket(title='Printer jam', priority=10)",
           '{"error": "Invalid priority. Priority must be between 1 and 5."}',
           "priority=10 is outside the scale: it must be a whole number from 1 (lowest) to 5 (highest); leaving it out "
           "gives 1. Choose the level that matches the user's request, or ask the user.",
           "ticket.invalid_priority", TICKETS),
    ticket("unknown ticket, logged out", "get_ticket(ticket_id=7)", '{"error": "Ticket with ID 7 not found."}',
           "There is no ticket with ID 7. Use the id that create_ticket returned, or find the ticket with "
           "get_user_tickets, which lists the tickets of the logged-in user. Listing needs a login, and you are not "
           f"logged in. {LOGIN_STEP}",
           "ticket.unknown_ticket"),
    ticket("unknown ticket, logged in", "resolve_ticket(ticket_id=7, resolution='Fixed')",
           '{"error": "Ticket with ID 7 not found."}',
           "There is no ticket with ID 7. Use the id that create_ticket returned, or find the ticket with "
           "get_user_tickets, which lists the tickets of the logged-in user.",
           "ticket.unknown_ticket", TICKETS),
    ticket("unknown ticket, no listing tool", "edit_ticket(ticket_id=7, updates={'priority': 3})",
           '{"error": "Ticket with ID 7 not found."}',
           "There is no ticket with ID 7. Use the id that create_ticket returned, or ask the user for the ticket ID.",
           "ticket.unknown_ticket", TICKETS, held_out=("get_user_tickets",)),
    ticket("close a closed ticket", "close_ticket(ticket_id=2)", '{"error": "Ticket with ID 2 is already closed."}',
           "Ticket 2 is already closed, so this call changes nothing. Check that it is the ticket the user meant "
           "(get_ticket shows a ticket's details); if it is, tell the user it was already closed.",
           "ticket.already_done", TICKETS),
    ticket("resolve a resolved ticket", "resolve_ticket(ticket_id=1, resolution='Done')",
           '{"error": "Ticket with ID 1 is already resolved."}',
           "Ticket 1 is already resolved, so this call changes nothing. Check that it is the ticket the user meant; if "
           "it is, tell the user it was already resolved.",
           "ticket.already_done", TICKETS, setup=("resolve_ticket(ticket_id=1, resolution='Replaced the roller')",),
           held_out=("get_ticket",)),
    # One unknown key only: with several, the backend lists them in set order, which varies between runs.
    ticket("edit an unknown field", "edit_ticket(ticket_id=1, updates={'priority': 5, 'assignee': 'bob'})",
           '{"error": "Invalid fields for update: assignee"}',
           "'assignee' is not a ticket field: updates may only change 'title', 'description', 'status', 'priority'. "
           "Put each change under one of these keys, or ask the user if a change fits none of them.",
           "ticket.invalid_update_fields", TICKETS),
    # A wrong type is fixed first: the schema rules run before the domain rules.
    ticket("schema rules come first", "get_ticket(ticket_id='1')", '{"error": "Ticket with ID 1 not found."}',
           "Argument 'ticket_id' of 'get_ticket' must be an integer, not str '1'. Call it again with a value of the "
           "right type.",
           "schema.wrong_type", TICKETS),
]


@pytest.mark.parametrize(("release", "case"), hint_golden.by_release(CASES), ids=hint_golden.case_id)
def test_golden_hint(release: str, case: Golden):
    hint_golden.check(__file__, CASES, release, case)


def test_every_ticket_rule_has_a_golden_case():
    assert {rule.kind for rule in DEFAULT_RULES if rule.kind.startswith("ticket.")} <= {case.kind for case in CASES}


if __name__ == "__main__":
    hint_golden.main(CASES)
