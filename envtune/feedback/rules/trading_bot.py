"""Hints for the trading system (TradingBot), covering both pinned releases.

The backend's errors say what went wrong but rarely which tool fixes it: logging in, looking a stock
symbol up, finding an order ID or checking the balance. These rules name that tool, and only tools
the model can call right now (in missing-function tasks the lookup tools may be held out). They
never list symbols, order IDs or balances from the state: the model finds those with the tools.

Release differences handled here: 2025.6.8 has `make_transaction` (deposits and withdrawals by
account ID, with its own errors), `update_market_status` and `update_stock_price`; 2026.3.23 has
`withdraw_funds` instead and checks the balance before a buy order.
"""

from __future__ import annotations

import re
from datetime import datetime

from envtune.feedback.core import (
    FeedbackContext,
    hint_rule,
    login_required_rule,
    login_step,
)

# Tools that check the login first. The last three return that error inside a list, which
# `core.error_message` does not read as an error yet, so for them this rule cannot fire today.
_LOGIN_GATED = (
    "place_order", "withdraw_funds", "make_transaction", "get_account_info", "fund_account",
    "remove_stock_from_watchlist", "get_watchlist", "get_order_history", "get_transaction_history",
)
# Numeric arguments that the backend requires to be above zero, per tool.
_POSITIVE_ARGUMENTS = {
    "place_order": ("price", "amount"),
    "fund_account": ("amount",),
    "withdraw_funds": ("amount",),
    "make_transaction": ("amount",),
    "update_stock_price": ("new_price",),
}
# Arguments parsed with `datetime.strptime`, per tool: (argument names, format, how to write them).
_TIME_ARGUMENTS = {
    "get_transaction_history": (
        ("start_date", "end_date"), "%Y-%m-%d", "Write each date as YYYY-MM-DD (year, month and day joined by dashes)",
    ),
    "update_market_status": (
        ("current_time_str",), "%I:%M %p", "Write the time as HH:MM AM or HH:MM PM (12-hour clock, then AM or PM)",
    ),
}




def _parses(value: str, pattern: str) -> bool:
    """Whether `value` reads with the `datetime.strptime` pattern the backend uses."""
    try:
        datetime.strptime(value, pattern)
    except ValueError:
        return False
    return True


def _named(context: FeedbackContext, names: list[str]) -> str:
    """The arguments as the model gave them: "amount=-5" or "start_date='x' and end_date='y'"."""
    return " and ".join(f"{name}={context.arguments[name]!r}" for name in names)


not_authenticated = login_required_rule("trading.not_authenticated", "trading system", "trading_login", _LOGIN_GATED)


@hint_rule("trading.unknown_symbol", "dependency_missing",
           r"^Stock with symbol '.*' not found\.$|^Invalid stock symbol: ",
           tools=("get_stock_info", "place_order", "update_stock_price"))
def unknown_symbol(context: FeedbackContext, match: re.Match) -> str:
    symbol = context.arguments.get("symbol")
    problem = (f"The trading system has no stock with the symbol {symbol!r}; stocks are named by ticker symbols, "
               "not company names.")
    lookups = context.tool_uses({
        "get_symbol_by_name": "gives the symbol of a company name",
        "get_available_stocks": "lists the symbols of a sector",
    })
    if not lookups:
        return f"{problem} Ask the user for the stock's ticker symbol."
    return (f"{problem} Look the symbol up first: {' and '.join(lookups)}. If the symbol already came from "
            "one of these tools, this stock is not traded here: tell the user.")


@hint_rule("trading.unknown_order", "dependency_missing", r"^Order with ID .* not found\.",
           tools=("get_order_details", "cancel_order"))
def unknown_order(context: FeedbackContext, match: re.Match) -> str:
    problem = f"There is no order with ID {context.arguments.get('order_id')!r}."
    if not context.available("get_order_history"):
        return f"{problem} Use the order_id that place_order returned, or ask the user which order they mean."
    login = "" if context.instance.authenticated else f", which needs a login. {login_step(context, 'trading_login')}"
    return (f"{problem} Use the order_id that place_order returned, or find the order among the IDs listed "
            f"by get_order_history{login or '.'}")


@hint_rule("trading.order_already_completed", "state_prerequisite",
           r"^Can't cancel order .*\. Order is already completed\.", tools=("cancel_order",))
def order_already_completed(context: FeedbackContext, match: re.Match) -> str:
    details = " (get_order_details shows an order's status)" if context.available("get_order_details") else ""
    return (f"Order {context.arguments.get('order_id')!r} has already been executed, and completed orders cannot be "
            f"cancelled. Check that this is the order the user meant{details}; if it is, tell the user it cannot "
            "be cancelled.")


@hint_rule("trading.non_positive_value", "parameter_constraint", r"must be (a )?positive",
           tools=tuple(_POSITIVE_ARGUMENTS))
def non_positive_value(context: FeedbackContext, match: re.Match) -> str | None:
    offending = [name for name in _POSITIVE_ARGUMENTS[context.call.name]
                 if isinstance(context.arguments.get(name), (int, float)) and context.arguments[name] <= 0]
    if not offending:
        return None
    return (f"{_named(context, offending)} must be greater than zero. Use the positive value the user asked for; "
            "if the request does not give one, ask the user.")


@hint_rule("trading.insufficient_funds_for_order", "resource_unavailable", r"^Insufficient funds: required",
           tools=("place_order",))
def insufficient_funds_for_order(context: FeedbackContext, match: re.Match) -> str:
    funding = " or to add money with fund_account first" if context.available("fund_account") else ""
    return ("A buy order costs price times amount, and that is more than the account balance. Check that the "
            "price and the number of shares are what the user asked for; if they are, ask the user whether to "
            f"buy fewer shares{funding}.")


@hint_rule("trading.insufficient_funds_for_withdrawal", "resource_unavailable", r"^Insufficient funds for withdrawal\.",
           tools=("withdraw_funds", "make_transaction"))
def insufficient_funds_for_withdrawal(context: FeedbackContext, match: re.Match) -> str:
    balance = " (get_account_info shows the balance)" if context.available("get_account_info") else ""
    return (f"Withdrawing {context.arguments.get('amount')!r} would take more than the account balance{balance}. "
            "Ask the user how much to withdraw instead.")


@hint_rule("trading.market_closed", "state_prerequisite", r"^Market is closed\.",
           tools=("withdraw_funds", "make_transaction"))
def market_closed(context: FeedbackContext, match: re.Match) -> str:
    problem = "This transaction is only allowed while the market is open, and the market is closed now."
    if not context.available("update_market_status"):
        return f"{problem} None of your tools can change that: tell the user the transaction cannot be made now."
    clock = ", which get_current_time gives" if context.available("get_current_time") else ""
    return (f"{problem} Update the market status first: call update_market_status with the current time{clock}; "
            "then retry if the market is open.")


@hint_rule("trading.unknown_account", "dependency_missing", r"^Account with ID .* not found\.",
           tools=("make_transaction",))
def unknown_account(context: FeedbackContext, match: re.Match) -> str:
    problem = f"{context.arguments.get('account_id')!r} is not the ID of this trading account."
    if context.available("get_account_info"):
        return f"{problem} Get the account ID with get_account_info, then retry."
    return f"{problem} Ask the user for the account ID."


@hint_rule("trading.invalid_transaction_type", "parameter_constraint", r"^Invalid transaction type\.",
           tools=("make_transaction",))
def invalid_transaction_type(context: FeedbackContext, match: re.Match) -> str:
    return (f"xact_type must be exactly 'deposit' or 'withdrawal' (lower case), not "
            f"{context.arguments.get('xact_type')!r}.")


@hint_rule("trading.not_on_watchlist", "state_prerequisite", r"^Stock .* not found in watchlist\.",
           tools=("remove_stock_from_watchlist",))
def not_on_watchlist(context: FeedbackContext, match: re.Match) -> str:
    problem = f"{context.arguments.get('symbol')!r} is not on the watchlist, so there is nothing to remove."
    if not context.available("get_watchlist"):
        return f"{problem} Check the symbol with the user."
    return (f"{problem} See which ticker symbols are on it with get_watchlist, and remove one of those if it "
            "is the stock the user meant.")


@hint_rule("trading.date_time_format", "format_mismatch", r"does not match format|unconverted data remains",
           tools=tuple(_TIME_ARGUMENTS))
def date_time_format(context: FeedbackContext, match: re.Match) -> str | None:
    """Only when an argument is at fault (the history's own timestamps are parsed too)."""
    names, pattern, how = _TIME_ARGUMENTS[context.call.name]
    malformed = [name for name in names if isinstance(context.arguments.get(name), str)
                 and not _parses(context.arguments[name], pattern)]
    if not malformed:
        return None
    return f"The format of {_named(context, malformed)} is wrong. {how}, then retry."


# The order they are tried in.
RULES = (
    not_authenticated, unknown_symbol, unknown_order, order_already_completed, non_positive_value,
    insufficient_funds_for_order, insufficient_funds_for_withdrawal, market_closed, unknown_account,
    invalid_transaction_type, not_on_watchlist, date_time_format,
)
