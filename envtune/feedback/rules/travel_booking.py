"""Hints for TravelAPI errors (both pinned releases).

The travel backend answers with short messages such as "Invalid access token" or "No available route
for the given airports." that say neither why nor what to do. These rules name the cause and point
to the tool that fixes it (log in, look up a card id or an airport code) without revealing anything
from the environment the model has not seen: no card ids, booking ids, balances, budget limits or
airport lists, only the model's own arguments and what the tool docs already say.
"""

from __future__ import annotations

import re

from envtune.feedback.core import FeedbackContext, agreeing, hint_rule, quoted

# Tools that check an access token before doing anything else.
TOKEN_TOOLS = (
    "register_credit_card", "get_credit_card_balance", "book_flight", "retrieve_invoice",
    "get_booking_history", "cancel_booking", "set_budget_limit", "purchase_insurance",
)
CARD_TOOLS = ("get_credit_card_balance", "book_flight", "purchase_insurance")
BOOKING_TOOLS = ("retrieve_invoice", "cancel_booking", "purchase_insurance", "contact_customer_support")

AIRPORT_CODE = re.compile(r"[A-Z]{3}")


def _log_in(context: FeedbackContext) -> str:
    """How to get a valid access token with the tools available now."""
    if context.available("authenticate_travel"):
        return ("Log in with authenticate_travel (use the credentials and name the user gave you; ask for any you "
                "do not have) and pass the access_token it returns")
    return "Ask the user for a valid access token and pass it"


def _airport_lookup(context: FeedbackContext) -> str:
    """Which tools turn a city into an airport code, or what to do without them."""
    tools = context.tool_uses({
        "get_nearest_airport_by_city": "gives the airport code for a city name",
        "list_all_airports": "lists every airport the system knows",
    })
    if not tools:
        return "Ask the user for the correct airport code."
    return f"To find the right code: {'; '.join(tools)}."


def _card_lookup(context: FeedbackContext) -> str:
    if context.available("get_all_credit_cards"):
        return "get_all_credit_cards lists the registered cards, keyed by their card ids"
    return "ask the user which registered card to use"


def _card_numbers(context: FeedbackContext) -> set[str]:
    """The card numbers stored on the registered cards (scenarios name the field either way)."""
    cards = getattr(context.instance, "credit_card_list", {}) or {}
    return {str(card.get("card_number", card.get("number"))) for card in cards.values() if isinstance(card, dict)}


# --- logging in -------------------------------------------------------------------------------------

@hint_rule(
    "travel.not_logged_in", "state_prerequisite",
    r"^Token not initialized$|^Invalid access token$|unsupported operand type\(s\) for -=: 'NoneType' and 'int'",
    tools=TOKEN_TOOLS,
)
def not_logged_in(context: FeedbackContext, match: re.Match) -> str | None:
    """Nobody has logged in (no token, or a token without an expiry): the release of 2025 even
    crashes with a TypeError here instead of reporting a bad token."""
    instance = context.instance
    if instance is None or (instance.access_token is not None and instance.token_expires_in is not None):
        return None
    return (f"You are not logged in to the travel system yet, so no access token is valid. {_log_in(context)} "
            f"to '{context.call.name}'.")


@hint_rule("travel.token_expired", "state_prerequisite", r"^Token expired$", tools=TOKEN_TOOLS)
def token_expired(context: FeedbackContext, match: re.Match) -> str:
    return (f"The access token has expired, so every call that needs it is refused. {_log_in(context)} "
            "to this and later calls.")


@hint_rule("travel.invalid_access_token", "parameter_constraint", r"^Invalid access token$", tools=TOKEN_TOOLS)
def invalid_access_token(context: FeedbackContext, match: re.Match) -> str:
    given = context.arguments.get("access_token")
    return (f"{quoted(given)} is not the current access token. Pass, exactly as written, the token the user gave "
            "you or the access_token returned by your latest authenticate_travel call; if you have neither, ask "
            "the user for it.")


# --- credit cards ----------------------------------------------------------------------------------

@hint_rule("travel.card_already_registered", "parameter_constraint", r"^Card already registered$",
           tools=["register_credit_card"])
def card_already_registered(context: FeedbackContext, match: re.Match) -> str:
    """The backend compares the new card number with the ids of the registered cards."""
    number = context.arguments.get("card_number")
    return (f"A registered card already has the id {quoted(number)}, so nothing was added. If that is the card the "
            f"user means, use it directly ({_card_lookup(context)}); otherwise check the card number with the user.")


@hint_rule("travel.card_not_registered", "dependency_missing", r"^(Credit card|Card) not registered",
           tools=CARD_TOOLS)
def card_not_registered(context: FeedbackContext, match: re.Match) -> str:
    card = context.arguments.get("card_id")
    if str(card) in _card_numbers(context):
        return (f"{quoted(card)} is the number printed on a registered card, not its card id. Pass the card's id "
                f"instead: {_card_lookup(context)}.")
    register = (" (or register a new one with register_credit_card if the user wants to add a card)"
                if context.available("register_credit_card") else "")
    return (f"No registered card has the id {quoted(card)}. Card ids are assigned by the system: "
            f"{_card_lookup(context)}{register}. Pass the id exactly as listed.")


@hint_rule("travel.card_without_balance", "resource_unavailable", r"^Balance not found$", tools=["book_flight"])
def card_without_balance(context: FeedbackContext, match: re.Match) -> str:
    card = context.arguments.get("card_id")
    return (f"Card {quoted(card)} has no balance on record, so it cannot pay for a flight. Pay with another "
            f"registered card ({_card_lookup(context)}) or ask the user which card to use.")


@hint_rule("travel.insufficient_funds", "resource_unavailable", r"^Insufficient funds$", tools=["book_flight"])
def insufficient_funds(context: FeedbackContext, match: re.Match) -> str:
    card, cost = context.arguments.get("card_id"), context.arguments.get("travel_cost")
    price = "the price of this flight" if cost is None else f"the travel_cost of {cost}"
    checks = context.tool_uses({
        "get_flight_cost": "shows the price of the flight", "get_credit_card_balance": "shows the balance of a card",
    })
    check = f" ({'; '.join(checks)})" if checks else ""
    return (f"The balance of card {quoted(card)} does not cover {price}{check}. Pay with another card, or ask the "
            "user how to proceed.")


@hint_rule("travel.balance_below_budget_limit", "resource_unavailable", r"^Balance is less than budget limit$",
           tools=["book_flight"])
def balance_below_budget_limit(context: FeedbackContext, match: re.Match) -> str:
    """A surprising rule of the backend: the paying card must hold at least the budget limit."""
    card = context.arguments.get("card_id")
    change = " or to change the budget limit with set_budget_limit" if context.available("set_budget_limit") else ""
    return (f"The booking was refused because the balance of card {quoted(card)} is lower than the budget limit set "
            "for this account: the system only books with a card whose balance is at least that limit. Ask the user "
            f"whether to pay with another card{change}.")


# --- flights ----------------------------------------------------------------------------------------

@hint_rule("travel.invalid_airport_code", "dependency_missing",
           r"^Invalid (departure|destination) airport code: (.*)$", tools=["book_flight"])
def invalid_airport_code(context: FeedbackContext, match: re.Match) -> str:
    end, code = match.group(1), match.group(2)
    return (f"{quoted(code)} is not a known {end} airport. Airports are given as 3-letter IATA codes, not city "
            f"names. {_airport_lookup(context)}")


@hint_rule("travel.not_an_airport_code", "dependency_missing", r"^No available route", tools=["get_flight_cost"])
def not_an_airport_code(context: FeedbackContext, match: re.Match) -> str | None:
    """get_flight_cost does not validate its codes: a city name just makes the route 'unavailable'."""
    wrong = context.misfits(AIRPORT_CODE, "travel_from", "travel_to")
    if not wrong:
        return None
    return (f"{agreeing(wrong, 'is not an airport code', 'are not airport codes')}: travel_from and travel_to take "
            f"3-letter IATA codes. {_airport_lookup(context)}")


@hint_rule("travel.no_route", "resource_unavailable", r"^No available route", tools=["get_flight_cost", "book_flight"])
def no_route(context: FeedbackContext, match: re.Match) -> str:
    origin, destination = context.arguments.get("travel_from"), context.arguments.get("travel_to")
    return (f"The system has no flight from {quoted(origin)} to {quoted(destination)}. Make sure both codes are "
            f"the airports the user meant. {_airport_lookup(context)} If they are, this route is not offered: tell "
            "the user instead of picking other airports yourself.")


@hint_rule("travel.invalid_travel_class", "parameter_constraint", r"^Invalid travel class",
           tools=["get_flight_cost", "book_flight"])
def invalid_travel_class(context: FeedbackContext, match: re.Match) -> str:
    given = context.arguments.get("travel_class")
    return (f"travel_class must be exactly 'economy', 'business' or 'first' (lowercase); {quoted(given)} is not "
            "one of them. Map the user's wording to one of these three.")


@hint_rule("travel.invalid_date_format", "format_mismatch", r"^Invalid date format", tools=["book_flight"])
def invalid_date_format(context: FeedbackContext, match: re.Match) -> str:
    given = context.arguments.get("travel_date")
    return (f"travel_date {quoted(given)} is not a valid date in the form YYYY-MM-DD (four-digit year, then "
            "two-digit month and day, separated by hyphens). Rewrite the date the user gave in that form.")


# --- bookings and insurance ----------------------------------------------------------------------

@hint_rule("travel.booking_not_found", "dependency_missing", r"^Booking not found$", tools=BOOKING_TOOLS)
def booking_not_found(context: FeedbackContext, match: re.Match) -> str:
    booking = context.arguments.get("booking_id")
    if booking is None:
        return (f"'{context.call.name}' needs the booking_id of the booking; an insurance_id alone does not "
                "identify it. Pass the booking_id too.")
    sources = ["the booking_id that book_flight returned"]
    if context.available("get_booking_history"):
        sources.append("the ids that get_booking_history lists")
    return (f"There is no booking with the id {quoted(booking)}. Use {' or '.join(sources)}, exactly as written; "
            "a cancelled booking no longer exists. If you cannot find it, ask the user for the booking id.")


@hint_rule("travel.insurance_over_budget", "parameter_constraint", r"^Exceeded budget limit$",
           tools=["purchase_insurance"])
def insurance_over_budget(context: FeedbackContext, match: re.Match) -> str:
    cost = context.arguments.get("insurance_cost")
    return (f"An insurance cost of {cost} is above the budget limit set for this account, so nothing was bought. "
            "Check the cost with the user, or ask whether they want to raise the budget limit first.")


# --- currencies -------------------------------------------------------------------------------------

@hint_rule("travel.no_exchange_rate", "parameter_constraint", r"^No available exchange rate",
           tools=["compute_exchange_rate"])
def no_exchange_rate(context: FeedbackContext, match: re.Match) -> str:
    """Rates exist only between USD and each other documented currency."""
    base, target = context.arguments.get("base_currency"), context.arguments.get("target_currency")
    supported = context.documented_choices("compute_exchange_rate", "base_currency")
    listing = (f"The supported currency codes are {', '.join(supported)}." if supported
               else "The tool description lists the supported currency codes.")
    unknown = list(dict.fromkeys(code for code in (base, target) if supported and code not in supported))
    if unknown:
        names = agreeing([quoted(code) for code in unknown], "is not a supported currency code",
                         "are not supported currency codes")
        return f"{names}. {listing} Use the code of the currency the user means, written exactly like that."
    if base == target:
        return f"Both currencies are {quoted(base)}: no conversion is needed, the amount stays the same."
    if "USD" in supported and "USD" not in (base, target):
        return (f"There is no direct rate between {quoted(base)} and {quoted(target)}: rates exist only between USD "
                f"and the other currencies. Convert from {quoted(base)} to 'USD' first, then from 'USD' to "
                f"{quoted(target)}.")
    return f"There is no exchange rate between {quoted(base)} and {quoted(target)}. {listing}"


@hint_rule("travel.verification_failed", "parameter_constraint", r".", tools=("verify_traveler_information",))
def verification_failed(context: FeedbackContext, match: re.Match) -> str | None:
    """verify_traveler_information reports a failed check as a reason, not as an error."""
    reason = context.error
    if reason.startswith("Cannot book flight information for another user"):
        return ("Only the account holder can be verified: pass the first and last name of the logged-in traveler, "
                "exactly as the user gave them; if you are not sure whose name that is, ask the user.")
    if reason.startswith("Invalid date of birth format"):
        return (f"date_of_birth {context.arguments.get('date_of_birth')!r} is not in the YYYY-MM-DD form "
                "(four-digit year, two-digit month and day). Rewrite the date the user gave in that form.")
    if reason.startswith("Traveler must be at least 18"):
        return "Travelers must be 18 or older, so this traveler cannot be verified. Tell the user."
    if reason.startswith("Passport must be issued by the United States"):
        return ("Only United States passports are accepted, and their numbers start with 'US'. Check the passport "
                "number with the user; if it is not a US passport, tell the user it cannot be used.")
    return None


# The order they are tried in.
RULES = (
    not_logged_in, token_expired, invalid_access_token, card_already_registered, card_not_registered,
    card_without_balance, insufficient_funds, balance_below_budget_limit, invalid_airport_code, not_an_airport_code,
    no_route, invalid_travel_class, invalid_date_format, booking_not_found, insurance_over_budget, no_exchange_rate,
    verification_failed,
)
