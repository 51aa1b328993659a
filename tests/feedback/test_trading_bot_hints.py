"""Golden hints for the trading system (TradingBot): each failing call runs on a real session of the
releases it exists in, and its official result and augmented text must be exactly these.

Scenarios change the backend's default state, which is the same in both releases: not logged in,
market closed, a balance of 10000.0, a completed order 12345 and a watchlist without AAPL. The
releases differ in tools: 2026.3.23 withdraws with `withdraw_funds` and checks the balance of a buy
order; 2025.6.8 has `make_transaction`, `update_market_status` and `update_stock_price` instead.
"""

from __future__ import annotations

from typing import Any

import pytest

import hint_golden
from envtune.feedback import DEFAULT_RULES
from hint_golden import DEFAULT_RELEASE, PAPER_RELEASE, Golden

LOGGED_IN = {"authenticated": True}
OPEN = {"authenticated": True, "market_status": "Open"}
LOGIN_STEP = ("Log in with trading_login first (ask the user for the username and password if you do not have "
              "them), then try again.")
NO_LOGIN_TOOL = "No tool to log in is available right now, so tell the user this cannot be done yet."
LOOKUPS = ("get_symbol_by_name gives the symbol of a company name and get_available_stocks lists the symbols of a "
           "sector")
AFTER_LOOKUP = "If the symbol already came from one of these tools, this stock is not traded here: tell the user."
POSITIVE = ("must be greater than zero. Use the positive value the user asked for; if the request does not give one, "
            "ask the user.")


def trading(name: str, call: str, result: str, hint: str | None, kind: str | None, state: dict[str, Any] | None = None,
            **options: Any) -> Golden:
    """A case on TradingBot alone, starting from the default state changed by `state`."""
    return Golden(name, ("TradingBot",), call, result, hint, kind, scenario={"TradingBot": state or {}}, **options)


CASES = [
    trading("login before an order", "place_order(order_type='Buy', symbol='AAPL', price=227.16, amount=10)",
            '{"error": "User not authenticated. Please log in to place an order."}',
            f"You are not logged in to the trading system, which is needed to place an order. {LOGIN_STEP}",
            "trading.not_authenticated"),
    trading("login tool held out", "get_account_info()",
            '{"error": "User not authenticated. Please log in to view account information."}',
            "You are not logged in to the trading system, which is needed to view account information. "
            f"{NO_LOGIN_TOOL}",
            "trading.not_authenticated", held_out=("trading_login",)),
    trading("company name as symbol", "get_stock_info(symbol='Apple')",
            '{"error": "Stock with symbol \'Apple\' not found."}',
            "The trading system has no stock with the symbol 'Apple'; stocks are named by ticker symbols, not company "
            f"names. Look the symbol up first: {LOOKUPS}. {AFTER_LOOKUP}",
            "trading.unknown_symbol"),
    trading("order for an unknown symbol", "place_order(order_type='Buy', symbol='Apple', price=227.16, amount=10)",
            '{"error": "Invalid stock symbol: Apple"}',
            "The trading system has no stock with the symbol 'Apple'; stocks are named by ticker symbols, not company "
            f"names. Look the symbol up first: get_available_stocks lists the symbols of a sector. {AFTER_LOOKUP}",
            "trading.unknown_symbol", LOGGED_IN, held_out=("get_symbol_by_name",)),
    trading("unknown symbol, no lookup tools", "get_stock_info(symbol='APPL')",
            '{"error": "Stock with symbol \'APPL\' not found."}',
            "The trading system has no stock with the symbol 'APPL'; stocks are named by ticker symbols, not company "
            "names. Ask the user for the stock's ticker symbol.",
            "trading.unknown_symbol", held_out=("get_symbol_by_name", "get_available_stocks")),
    trading("unknown order, logged out", "get_order_details(order_id=1)",
            '{"error": "Order with ID 1 not found.Here is the list of orders_id: [12345, 12446]"}',
            "There is no order with ID 1. Use the order_id that place_order returned, or find the order among the IDs "
            f"listed by get_order_history, which needs a login. {LOGIN_STEP}",
            "trading.unknown_order"),
    trading("unknown order, logged in", "cancel_order(order_id=1)", '{"error": "Order with ID 1 not found."}',
            "There is no order with ID 1. Use the order_id that place_order returned, or find the order among the IDs "
            "listed by get_order_history.",
            "trading.unknown_order", LOGGED_IN),
    trading("unknown order, no history tool", "cancel_order(order_id=1)", '{"error": "Order with ID 1 not found."}',
            "There is no order with ID 1. Use the order_id that place_order returned, or ask the user which order they "
            "mean.",
            "trading.unknown_order", LOGGED_IN, held_out=("get_order_history",)),
    trading("cancel a completed order", "cancel_order(order_id=12345)",
            '{"error": "Can\'t cancel order 12345. Order is already completed."}',
            "Order 12345 has already been executed, and completed orders cannot be cancelled. Check that this is the "
            "order the user meant (get_order_details shows an order's status); if it is, tell the user it cannot be "
            "cancelled.",
            "trading.order_already_completed"),
    trading("order price and amount", "place_order(order_type='Buy', symbol='AAPL', price=0, amount=-1)",
            '{"error": "Price and amount must be positive values."}', f"price=0 and amount=-1 {POSITIVE}",
            "trading.non_positive_value", LOGGED_IN),
    trading("funding amount", "fund_account(amount=-500.0)", '{"error": "Funding amount must be positive."}',
            f"amount=-500.0 {POSITIVE}", "trading.non_positive_value", LOGGED_IN),
    trading("not on the watchlist", "remove_stock_from_watchlist(symbol='AAPL')",
            '{"error": "Stock AAPL not found in watchlist."}',
            "'AAPL' is not on the watchlist, so there is nothing to remove. See which ticker symbols are on it with "
            "get_watchlist, and remove one of those if it is the stock the user meant.",
            "trading.not_on_watchlist", LOGGED_IN),
    trading("history date with slashes", "get_transaction_history(start_date='2024/09/01')",
            "Error during execution: time data '2024/09/01' does not match format '%Y-%m-%d'",
            "The format of start_date='2024/09/01' is wrong. Write each date as YYYY-MM-DD (year, month and day joined "
            "by dashes), then retry.",
            "trading.date_time_format", LOGGED_IN),
    trading("history date with a time", "get_transaction_history(start_date='2024-09-01', end_date='2024-09-02 18:00')",
            "Error during execution: unconverted data remains:  18:00",
            "The format of end_date='2024-09-02 18:00' is wrong. Write each date as YYYY-MM-DD (year, month and day "
            "joined by dashes), then retry.",
            "trading.date_time_format", LOGGED_IN),
    # The backend parses the history's own timestamps too: a bad one there is not the model's to fix.
    trading("bad timestamp in the scenario", "get_transaction_history(start_date='2024-09-01')",
            "Error during execution: time data '2024-09-01' does not match format '%Y-%m-%d %H:%M:%S'", None, None,
            {**LOGGED_IN, "transaction_history": [{"type": "deposit", "amount": 1.0, "timestamp": "2024-09-01"}]}),
    # A wrong type is fixed first: the schema rules run before the domain rules.
    trading("schema rules come first", "fund_account(amount='500')",
            "Error during execution: '<=' not supported between instances of 'str' and 'int'",
            "Argument 'amount' of 'fund_account' must be a number, not str '500'. Call it again with a value of the "
            "right type.",
            "schema.wrong_type", LOGGED_IN),
    # 2026.3.23 only: withdraw_funds, and the balance check of buy orders.
    trading("withdrawal amount", "withdraw_funds(amount=0)", '{"error": "Transaction amount must be positive."}',
            f"amount=0 {POSITIVE}", "trading.non_positive_value", OPEN, releases=(DEFAULT_RELEASE,)),
    trading("withdrawal over the balance", "withdraw_funds(amount=20000)",
            '{"error": "Insufficient funds for withdrawal."}',
            "Withdrawing 20000 would take more than the account balance (get_account_info shows the balance). Ask the "
            "user how much to withdraw instead.",
            "trading.insufficient_funds_for_withdrawal", OPEN, releases=(DEFAULT_RELEASE,)),
    trading("withdrawal while the market is closed", "withdraw_funds(amount=500)",
            '{"error": "Market is closed. Transactions are not allowed."}',
            "This transaction is only allowed while the market is open, and the market is closed now. None of your "
            "tools can change that: tell the user the transaction cannot be made now.",
            "trading.market_closed", LOGGED_IN, releases=(DEFAULT_RELEASE,)),
    trading("order over the balance", "place_order(order_type='Buy', symbol='AAPL', price=227.16, amount=100)",
            '{"error": "Insufficient funds: required $22716.00 but only $10000.00 available."}',
            "A buy order costs price times amount, and that is more than the account balance. Check that the price and "
            "the number of shares are what the user asked for; if they are, ask the user whether to buy fewer shares "
            "or to add money with fund_account first.",
            "trading.insufficient_funds_for_order", LOGGED_IN, releases=(DEFAULT_RELEASE,)),
    # 2025.6.8 only: make_transaction, update_market_status and update_stock_price.
    trading("login before a transaction", "make_transaction(account_id=12345, xact_type='deposit', amount=100)",
            '{"error": "User not authenticated. Please log in to make a transaction."}',
            f"You are not logged in to the trading system, which is needed to make a transaction. {LOGIN_STEP}",
            "trading.not_authenticated", releases=(PAPER_RELEASE,)),
    trading("transaction while the market is closed",
            "make_transaction(account_id=12345, xact_type='deposit', amount=100)",
            '{"error": "Market is closed. Transactions are not allowed."}',
            "This transaction is only allowed while the market is open, and the market is closed now. Update the "
            "market status first: call update_market_status with the current time, which get_current_time gives; "
            "then retry if the market is open.",
            "trading.market_closed", LOGGED_IN, releases=(PAPER_RELEASE,)),
    trading("market closed, no clock tool", "make_transaction(account_id=12345, xact_type='withdrawal', amount=100)",
            '{"error": "Market is closed. Transactions are not allowed."}',
            "This transaction is only allowed while the market is open, and the market is closed now. Update the "
            "market status first: call update_market_status with the current time; then retry if the market is open.",
            "trading.market_closed", LOGGED_IN, held_out=("get_current_time",), releases=(PAPER_RELEASE,)),
    trading("market closed, market status tool held out",
            "make_transaction(account_id=12345, xact_type='withdrawal', amount=100)",
            '{"error": "Market is closed. Transactions are not allowed."}',
            "This transaction is only allowed while the market is open, and the market is closed now. None of your "
            "tools can change that: tell the user the transaction cannot be made now.",
            "trading.market_closed", LOGGED_IN, held_out=("update_market_status",), releases=(PAPER_RELEASE,)),
    trading("unknown account", "make_transaction(account_id=1, xact_type='deposit', amount=100)",
            '{"error": "Account with ID 1 not found."}',
            "1 is not the ID of this trading account. Get the account ID with get_account_info, then retry.",
            "trading.unknown_account", OPEN, releases=(PAPER_RELEASE,)),
    trading("unknown account, no account tool", "make_transaction(account_id=1, xact_type='deposit', amount=100)",
            '{"error": "Account with ID 1 not found."}',
            "1 is not the ID of this trading account. Ask the user for the account ID.",
            "trading.unknown_account", OPEN, held_out=("get_account_info",), releases=(PAPER_RELEASE,)),
    trading("transaction type", "make_transaction(account_id=12345, xact_type='Deposit', amount=100)",
            '{"error": "Invalid transaction type. Use \'deposit\' or \'withdrawal\'."}',
            "xact_type must be exactly 'deposit' or 'withdrawal' (lower case), not 'Deposit'.",
            "trading.invalid_transaction_type", OPEN, releases=(PAPER_RELEASE,)),
    trading("transaction over the balance",
            "make_transaction(account_id=12345, xact_type='withdrawal', amount=20000.0)",
            '{"error": "Insufficient funds for withdrawal."}',
            "Withdrawing 20000.0 would take more than the account balance (get_account_info shows the balance). Ask "
            "the user how much to withdraw instead.",
            "trading.insufficient_funds_for_withdrawal", OPEN, releases=(PAPER_RELEASE,)),
    trading("transaction amount", "make_transaction(account_id=12345, xact_type='deposit', amount=-5)",
            '{"error": "Transaction amount must be positive."}', f"amount=-5 {POSITIVE}",
            "trading.non_positive_value", OPEN, releases=(PAPER_RELEASE,)),
    trading("new stock price", "update_stock_price(symbol='AAPL', new_price=-3.5)",
            '{"error": "New price must be a positive value."}', f"new_price=-3.5 {POSITIVE}",
            "trading.non_positive_value", releases=(PAPER_RELEASE,)),
    trading("price of an unknown symbol", "update_stock_price(symbol='Tesla', new_price=700)",
            '{"error": "Stock with symbol \'Tesla\' not found."}',
            "The trading system has no stock with the symbol 'Tesla'; stocks are named by ticker symbols, not company "
            f"names. Look the symbol up first: {LOOKUPS}. {AFTER_LOOKUP}",
            "trading.unknown_symbol", releases=(PAPER_RELEASE,)),
    trading("time without AM or PM", "update_market_status(current_time_str='14:00')",
            "Error during execution: time data '14:00' does not match format '%I:%M %p'",
            "The format of current_time_str='14:00' is wrong. Write the time as HH:MM AM or HH:MM PM (12-hour clock, "
            "then AM or PM), then retry.",
            "trading.date_time_format", releases=(PAPER_RELEASE,)),
    trading("time with a zone", "update_market_status(current_time_str='02:00 PM EST')",
            "Error during execution: unconverted data remains:  EST",
            "The format of current_time_str='02:00 PM EST' is wrong. Write the time as HH:MM AM or HH:MM PM (12-hour "
            "clock, then AM or PM), then retry.",
            "trading.date_time_format", releases=(PAPER_RELEASE,)),
]


@pytest.mark.parametrize(("release", "case"), hint_golden.by_release(CASES), ids=hint_golden.case_id)
def test_golden_hint(release: str, case: Golden):
    hint_golden.check(__file__, CASES, release, case)


def test_every_trading_rule_has_a_golden_case():
    assert {rule.kind for rule in DEFAULT_RULES if rule.kind.startswith("trading.")} <= {case.kind for case in CASES}


if __name__ == "__main__":
    hint_golden.main(CASES)
