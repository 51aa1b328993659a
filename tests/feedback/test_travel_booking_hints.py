"""Golden examples for the TravelAPI hints: for every rule, a real call on a real backend, the official
result it gets, and the augmented text the model sees instead; augmenting reads the state only.

The two pinned releases differ here (the 2025 backend takes `travel_cost` in book_flight, checks no
airport codes, and crashes instead of refusing a token when nobody is logged in), so each case runs
on the release it was written for (`hint_golden` runs the other release's cases in a child process).
"""

from __future__ import annotations

import re
from typing import Any

import hint_golden
import pytest
from hint_golden import DEFAULT_RELEASE, PAPER_RELEASE, Golden

from envtune.feedback import DEFAULT_RULES

TOKEN = "abc123token"
CARD_ID = "144756014771"
CARD_NUMBER = "4012888888881881"

# Logged in with a token the user gave; one card holding 500 USD; a budget limit of 400 USD.
SCENARIO: dict[str, Any] = {
    "credit_card_list": {CARD_ID: {"card_number": CARD_NUMBER, "cardholder_name": "Evelyn Montgomery", "balance": 500.0}},
    "booking_record": {}, "access_token": TOKEN, "token_type": "Bearer", "token_expires_in": 3600,
    "token_scope": "read_write", "user_first_name": "Evelyn", "user_last_name": "Montgomery", "budget_limit": 400.0,
}
TRAVEL = hint_golden.Domain("TravelAPI", SCENARIO, releases=(DEFAULT_RELEASE,))
NOBODY_LOGGED_IN: dict[str, Any] = {key: None for key in ("access_token", "token_type", "token_expires_in", "token_scope")}
LOG_IN = ("authenticate_travel(client_id='client', client_secret='secret', refresh_token='refresh', "
          "grant_type='read_write', user_first_name='Evelyn', user_last_name='Montgomery')")
LOG_IN_AGAIN = ("Log in with authenticate_travel (use the credentials and name the user gave you; ask for any you do "
                "not have) and pass the access_token it returns")
AIRPORT_LOOKUP = ("To find the right code: get_nearest_airport_by_city gives the airport code for a city name; "
                  "list_all_airports lists every airport the system knows.")
CARD_LOOKUP = "get_all_credit_cards lists the registered cards, keyed by their card ids"
WRONG_TOKEN_BALANCE = f"get_credit_card_balance(access_token='abc', card_id='{CARD_ID}')"


def book(**changes: str) -> str:
    """A book_flight call: economy from SFO to LAX on 2026-10-06 with the card above, some arguments changed."""
    arguments = {"access_token": TOKEN, "card_id": CARD_ID, "travel_date": "2026-10-06", "travel_from": "SFO",
                 "travel_to": "LAX", "travel_class": "economy", **changes}
    return f"book_flight({', '.join(f'{name}={value!r}' for name, value in arguments.items())})"


BOOK_SFO_LAX = book()  # costs 200 USD; the first booking of a session gets the id 3426812


def exchange(base: str, target: str) -> str:
    return f"compute_exchange_rate(base_currency='{base}', target_currency='{target}', value=100.0)"


CASES = [
    # --- verifying the traveler (a false status with a reason, not an error)
    *(
        TRAVEL.case(
            f"verify-{name}",
            f"verify_traveler_information(first_name={first!r}, last_name={last!r}, date_of_birth={born!r}, "
            f"passport_number={passport!r})",
            f'{{"verification_status": false, "verification_failure": "{reason}"}}', hint,
            "travel.verification_failed",
        )
        for name, first, last, born, passport, reason, hint in [
            ("another-user", "Nobody", "X", "1990-01-01", "US1",
             "Cannot book flight information for another user.Expected Evelyn Montgomery, got Nobody X",
             "Only the account holder can be verified: pass the first and last name of the logged-in traveler, "
             "exactly as the user gave them; if you are not sure whose name that is, ask the user."),
            ("birth-date-format", "Evelyn", "Montgomery", "01/02/1990", "US1",
             "Invalid date of birth format. Please use YYYY-MM-DD.",
             "date_of_birth '01/02/1990' is not in the YYYY-MM-DD form (four-digit year, two-digit month and day). "
             "Rewrite the date the user gave in that form."),
            ("minor", "Evelyn", "Montgomery", "2020-01-01", "US1", "Traveler must be at least 18 years old.",
             "Travelers must be 18 or older, so this traveler cannot be verified. Tell the user."),
            ("foreign-passport", "Evelyn", "Montgomery", "1990-01-01", "FR123",
             "Passport must be issued by the United States.",
             "Only United States passports are accepted, and their numbers start with 'US'. Check the passport "
             "number with the user; if it is not a US passport, tell the user it cannot be used."),
        ]
    ),
    # --- logging in
    TRAVEL.case(
        "register-before-login",
        "register_credit_card(access_token='abc', card_number='4111111111111111', expiration_date='12/2028', "
        "cardholder_name='Evelyn Montgomery', card_verification_number=123)",
        '{"error": "Token not initialized"}',
        f"You are not logged in to the travel system yet, so no access token is valid. {LOG_IN_AGAIN} to "
        "'register_credit_card'.",
        "travel.not_logged_in", changes=NOBODY_LOGGED_IN,
    ),
    TRAVEL.case(
        "balance-before-login", WRONG_TOKEN_BALANCE,
        '{"error": "Invalid access token"}',
        f"You are not logged in to the travel system yet, so no access token is valid. {LOG_IN_AGAIN} to "
        "'get_credit_card_balance'.",
        "travel.not_logged_in", changes=NOBODY_LOGGED_IN,
    ),
    TRAVEL.case(  # the 2025 backend counts down a token that does not exist
        "balance-before-login-2025", WRONG_TOKEN_BALANCE,
        "Error during execution: unsupported operand type(s) for -=: 'NoneType' and 'int'",
        f"You are not logged in to the travel system yet, so no access token is valid. {LOG_IN_AGAIN} to "
        "'get_credit_card_balance'.",
        "travel.not_logged_in", changes=NOBODY_LOGGED_IN, releases=(PAPER_RELEASE,),
    ),
    TRAVEL.case(
        "login-tool-held-out", WRONG_TOKEN_BALANCE,
        '{"error": "Invalid access token"}',
        "You are not logged in to the travel system yet, so no access token is valid. Ask the user for a valid "
        "access token and pass it to 'get_credit_card_balance'.",
        "travel.not_logged_in", changes=NOBODY_LOGGED_IN, held_out=("authenticate_travel",),
    ),
    TRAVEL.case(
        "token-expired", BOOK_SFO_LAX,
        '{"booking_status": false, "error": "Token expired"}',
        f"The access token has expired, so every call that needs it is refused. {LOG_IN_AGAIN} to this and later "
        "calls.",
        "travel.token_expired", changes={"token_expires_in": 0},
    ),
    TRAVEL.case(  # in 2025 each wrong token uses up one of the two uses a fresh login grants
        "token-used-up-2025", WRONG_TOKEN_BALANCE,
        '{"error": "Token expired"}',
        f"The access token has expired, so every call that needs it is refused. {LOG_IN_AGAIN} to this and later "
        "calls.",
        "travel.token_expired", setup=(LOG_IN, WRONG_TOKEN_BALANCE, WRONG_TOKEN_BALANCE),
        setup_errors=('{"error": "Invalid access token"}',) * 2, releases=(PAPER_RELEASE,),
    ),
    TRAVEL.case(
        "wrong-token", "set_budget_limit(access_token='token123', budget_limit=1000.0)",
        '{"error": "Invalid access token"}',
        "'token123' is not the current access token. Pass, exactly as written, the token the user gave you or the "
        "access_token returned by your latest authenticate_travel call; if you have neither, ask the user for it.",
        "travel.invalid_access_token",
    ),
    # --- credit cards
    TRAVEL.case(  # the backend compares the new number with the registered card ids
        "card-already-registered",
        f"register_credit_card(access_token='{TOKEN}', card_number='{CARD_ID}', expiration_date='12/2028', "
        "cardholder_name='Evelyn Montgomery', card_verification_number=123)",
        '{"error": "Card already registered"}',
        f"A registered card already has the id '{CARD_ID}', so nothing was added. If that is the card the user means, "
        f"use it directly ({CARD_LOOKUP}); otherwise check the card number with the user.",
        "travel.card_already_registered",
    ),
    TRAVEL.case(
        "balance-of-unknown-card", f"get_credit_card_balance(access_token='{TOKEN}', card_id='card_1')",
        f"{{\"error\": \"Card not registered. Here are a list of card_id's: ['{CARD_ID}']\"}}",
        f"No registered card has the id 'card_1'. Card ids are assigned by the system: {CARD_LOOKUP} (or register a "
        "new one with register_credit_card if the user wants to add a card). Pass the id exactly as listed.",
        "travel.card_not_registered",
    ),
    TRAVEL.case(
        "book-with-card-number", book(card_id=CARD_NUMBER),
        '{"booking_status": false, "error": "Card not registered"}',
        f"'{CARD_NUMBER}' is the number printed on a registered card, not its card id. Pass the card's id instead: "
        f"{CARD_LOOKUP}.",
        "travel.card_not_registered",
    ),
    TRAVEL.case(
        "insure-with-unknown-card",
        f"purchase_insurance(access_token='{TOKEN}', insurance_type='comprehensive', booking_id='3426812', "
        "insurance_cost=50.0, card_id='card_1')",
        '{"insurance_status": false, "error": "Credit card not registered"}',
        "No registered card has the id 'card_1'. Card ids are assigned by the system: ask the user which registered "
        "card to use. Pass the id exactly as listed.",
        "travel.card_not_registered", setup=(BOOK_SFO_LAX,), held_out=("get_all_credit_cards", "register_credit_card"),
    ),
    TRAVEL.case(
        "card-without-balance", book(card_id="card_2"),
        '{"booking_status": false, "error": "Balance not found"}',
        f"Card 'card_2' has no balance on record, so it cannot pay for a flight. Pay with another registered card "
        f"({CARD_LOOKUP}) or ask the user which card to use.",
        "travel.card_without_balance", changes={"credit_card_list": {"card_2": {"card_number": "5500000000000004"}}},
    ),
    TRAVEL.case(
        "insufficient-funds", book(travel_to="JFK", travel_class="first"),
        '{"booking_status": false, "error": "Insufficient funds"}',
        f"The balance of card '{CARD_ID}' does not cover the price of this flight (get_flight_cost shows the price of "
        "the flight; get_credit_card_balance shows the balance of a card). Pay with another card, or ask the user how "
        "to proceed.",
        "travel.insufficient_funds",
    ),
    TRAVEL.case(  # the 2025 book_flight takes the price from the caller
        "insufficient-funds-2025",
        f"book_flight(access_token='{TOKEN}', card_id='{CARD_ID}', travel_date='2026-10-06', travel_from='SFO', "
        "travel_to='JFK', travel_class='first', travel_cost=2500.0)",
        '{"booking_status": false, "error": "Insufficient funds"}',
        f"The balance of card '{CARD_ID}' does not cover the travel_cost of 2500.0 (get_flight_cost shows the price "
        "of the flight; get_credit_card_balance shows the balance of a card). Pay with another card, or ask the user "
        "how to proceed.",
        "travel.insufficient_funds", releases=(PAPER_RELEASE,),
    ),
    TRAVEL.case(
        "balance-below-budget-limit", BOOK_SFO_LAX,
        '{"booking_status": false, "error": "Balance is less than budget limit"}',
        f"The booking was refused because the balance of card '{CARD_ID}' is lower than the budget limit set for this "
        "account: the system only books with a card whose balance is at least that limit. Ask the user whether to pay "
        "with another card or to change the budget limit with set_budget_limit.",
        "travel.balance_below_budget_limit", changes={"budget_limit": 1000.0},
    ),
    # --- flights
    TRAVEL.case(
        "book-from-city-name", book(travel_from="San Francisco"),
        '{"booking_status": false, "error": "Invalid departure airport code: San Francisco"}',
        f"'San Francisco' is not a known departure airport. Airports are given as 3-letter IATA codes, not city "
        f"names. {AIRPORT_LOOKUP}",
        "travel.invalid_airport_code",
    ),
    TRAVEL.case(
        "book-to-unknown-code", book(travel_to="XYZ"),
        '{"booking_status": false, "error": "Invalid destination airport code: XYZ"}',
        "'XYZ' is not a known destination airport. Airports are given as 3-letter IATA codes, not city names. Ask "
        "the user for the correct airport code.",
        "travel.invalid_airport_code", held_out=("get_nearest_airport_by_city", "list_all_airports"),
    ),
    TRAVEL.case(
        "cost-from-city-name",
        "get_flight_cost(travel_from='Rivermist', travel_to='LAX', travel_date='2026-10-06', travel_class='economy')",
        "Error during execution: No available route for the given airports.",
        f"travel_from='Rivermist' is not an airport code: travel_from and travel_to take 3-letter IATA codes. "
        f"{AIRPORT_LOOKUP}",
        "travel.not_an_airport_code",
    ),
    TRAVEL.case(
        "cost-of-unserved-route",
        "get_flight_cost(travel_from='LAX', travel_to='PEK', travel_date='2026-10-06', travel_class='economy')",
        "Error during execution: No available route for the given airports.",
        f"The system has no flight from 'LAX' to 'PEK'. Make sure both codes are the airports the user meant. "
        f"{AIRPORT_LOOKUP} If they are, this route is not offered: tell the user instead of picking other airports "
        "yourself.",
        "travel.no_route",
    ),
    TRAVEL.case(
        "book-unserved-route", book(travel_from="LAX", travel_to="PEK"),
        '{"booking_status": false, "error": "No available route for the given airports."}',
        f"The system has no flight from 'LAX' to 'PEK'. Make sure both codes are the airports the user meant. "
        f"{AIRPORT_LOOKUP} If they are, this route is not offered: tell the user instead of picking other airports "
        "yourself.",
        "travel.no_route",
    ),
    TRAVEL.case(
        "cost-in-coach",
        "get_flight_cost(travel_from='SFO', travel_to='LAX', travel_date='2026-10-06', travel_class='coach')",
        "Error during execution: Invalid travel class. Options are: economy, business, first.",
        "travel_class must be exactly 'economy', 'business' or 'first' (lowercase); 'coach' is not one of them. Map "
        "the user's wording to one of these three.",
        "travel.invalid_travel_class",
    ),
    TRAVEL.case(  # the official message prints a set, in an order that changes from run to run
        "book-capitalised-class", book(travel_class="Economy"),
        "{\"booking_status\": false, \"error\": \"Invalid travel class. Must be one of {'business', 'economy', 'first'}\"}",
        "travel_class must be exactly 'economy', 'business' or 'first' (lowercase); 'Economy' is not one of them. Map "
        "the user's wording to one of these three.",
        "travel.invalid_travel_class",
    ),
    TRAVEL.case(
        "book-us-date", book(travel_date="10/06/2026"),
        '{"booking_status": false, "error": "Invalid date format. Use YYYY-MM-DD."}',
        "travel_date '10/06/2026' is not a valid date in the form YYYY-MM-DD (four-digit year, then two-digit month "
        "and day, separated by hyphens). Rewrite the date the user gave in that form.",
        "travel.invalid_date_format",
    ),
    # --- bookings and insurance
    TRAVEL.case(
        "cancel-unknown-booking", f"cancel_booking(access_token='{TOKEN}', booking_id='1234567')",
        '{"cancel_status": false, "error": "Booking not found"}',
        "There is no booking with the id '1234567'. Use the booking_id that book_flight returned or the ids that "
        "get_booking_history lists, exactly as written; a cancelled booking no longer exists. If you cannot find it, "
        "ask the user for the booking id.",
        "travel.booking_not_found",
    ),
    TRAVEL.case(  # the 2025 release has no get_booking_history
        "cancel-unknown-booking-2025", f"cancel_booking(access_token='{TOKEN}', booking_id='1234567')",
        '{"cancel_status": false, "error": "Booking not found"}',
        "There is no booking with the id '1234567'. Use the booking_id that book_flight returned, exactly as written; "
        "a cancelled booking no longer exists. If you cannot find it, ask the user for the booking id.",
        "travel.booking_not_found", releases=(PAPER_RELEASE,),
    ),
    TRAVEL.case(
        "invoice-by-insurance-id", f"retrieve_invoice(access_token='{TOKEN}', insurance_id='498120388')",
        '{"error": "Booking not found"}',
        "'retrieve_invoice' needs the booking_id of the booking; an insurance_id alone does not identify it. Pass the "
        "booking_id too.",
        "travel.booking_not_found",
    ),
    TRAVEL.case(
        "support-for-unknown-booking",
        "contact_customer_support(booking_id='booking_1', message='My flight was changed.')",
        '{"error": "Booking not found"}',
        "There is no booking with the id 'booking_1'. Use the booking_id that book_flight returned or the ids that "
        "get_booking_history lists, exactly as written; a cancelled booking no longer exists. If you cannot find it, "
        "ask the user for the booking id.",
        "travel.booking_not_found",
    ),
    TRAVEL.case(
        "insurance-over-budget",
        f"purchase_insurance(access_token='{TOKEN}', insurance_type='comprehensive', booking_id='3426812', "
        f"insurance_cost=450.0, card_id='{CARD_ID}')",
        '{"insurance_status": false, "error": "Exceeded budget limit"}',
        "An insurance cost of 450.0 is above the budget limit set for this account, so nothing was bought. Check the "
        "cost with the user, or ask whether they want to raise the budget limit first.",
        "travel.insurance_over_budget", setup=(BOOK_SFO_LAX,),
    ),
    # --- currencies
    TRAVEL.case(
        "unsupported-currency", exchange("CNY", "USD"),
        "Error during execution: No available exchange rate for the given currencies.",
        "'CNY' is not a supported currency code. The supported currency codes are USD, RMB, EUR, JPY, GBP, CAD, AUD, "
        "INR, RUB, BRL, MXN. Use the code of the currency the user means, written exactly like that.",
        "travel.no_exchange_rate",
    ),
    TRAVEL.case(
        "lowercase-currencies", exchange("usd", "eur"),
        "Error during execution: No available exchange rate for the given currencies.",
        "'usd' and 'eur' are not supported currency codes. The supported currency codes are USD, RMB, EUR, JPY, GBP, "
        "CAD, AUD, INR, RUB, BRL, MXN. Use the code of the currency the user means, written exactly like that.",
        "travel.no_exchange_rate",
    ),
    TRAVEL.case(
        "cross-rate", exchange("EUR", "GBP"),
        "Error during execution: No available exchange rate for the given currencies.",
        "There is no direct rate between 'EUR' and 'GBP': rates exist only between USD and the other currencies. "
        "Convert from 'EUR' to 'USD' first, then from 'USD' to 'GBP'.",
        "travel.no_exchange_rate",
    ),
    TRAVEL.case(
        "same-currency", exchange("USD", "USD"),
        "Error during execution: No available exchange rate for the given currencies.",
        "Both currencies are 'USD': no conversion is needed, the amount stays the same.",
        "travel.no_exchange_rate",
    ),
]

_SET_LITERAL = re.compile(r"\{('[^']*'(?:, '[^']*')*)\}")


def canonical(text: str) -> str:
    """The text with the items of every printed set of strings sorted (their order is per process)."""
    return _SET_LITERAL.sub(lambda match: "{" + ", ".join(sorted(match.group(1).split(", "))) + "}", text)


@pytest.mark.parametrize(("release", "case"), hint_golden.by_release(CASES), ids=hint_golden.case_id)
def test_golden_hint(release: str, case: Golden):
    hint_golden.check(__file__, CASES, release, case, normalise=canonical)


def test_canonical_sorts_printed_sets():
    printed = "Must be one of {'first', 'business', 'economy'}"
    assert canonical(printed) == "Must be one of {'business', 'economy', 'first'}"


def test_every_travel_rule_has_a_golden_example():
    kinds = {rule.kind for rule in DEFAULT_RULES if rule.kind.startswith("travel.")}
    assert kinds == {case.kind for case in CASES}


if __name__ == "__main__":
    hint_golden.main(CASES)
