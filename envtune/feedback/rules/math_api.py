"""Hints for the calculator (MathAPI), for both pinned releases (its code is the same in both).

Wrongly typed inputs ("Both inputs must be numbers", "All elements in the list must be numbers", ...)
are already explained by the schema rules. What is left are values a computation cannot take (zero
divisors, negative square roots, empty lists, a logarithm base of 1, out-of-range precision, results
too large to represent) and unit names the converters do not know. The converters' docs do not list
their units, so the hints name them, copied from the backend's fixed conversion tables: they are the
tools' vocabulary, not facts about a scenario.
"""

from __future__ import annotations

import re

from envtune.bfcl.executor import MAX_PRECISION_DIGITS
from envtune.feedback.core import FeedbackContext, hint_rule

# The backend's conversion tables (local to si_unit_conversion and imperial_si_conversion).
SI_LENGTH_UNITS = ("km", "m", "cm", "mm", "um", "nm")
IMPERIAL_SI_PAIRS = (
    ("cm", "in"), ("m", "ft"), ("m", "yd"), ("km", "miles"), ("kg", "lb"), ("celsius", "fahrenheit"),
)
# What each unit of the two tables measures: units of different quantities never convert.
DIMENSIONS = {unit: "length" for unit in (*SI_LENGTH_UNITS, "in", "ft", "yd", "miles")} | {
    "kg": "mass", "lb": "mass", "celsius": "temperature", "fahrenheit": "temperature",
}

_LIST_TOOLS = ("mean", "standard_deviation", "min_value", "max_value", "sum_values")
_TOO_LARGE = (
    r"Numerical result out of range"  # float overflow (power, standard_deviation)
    r"|for integer string conversion"  # an integer result too long to print (power)
    r"|^integer power .* would exceed \d+ bits$"  # the executor's bound on integer powers
    r"|too large to represent"  # the converters' own overflow message
)



def _units(context: FeedbackContext) -> list:
    """The call's two units, once each."""
    unit_in, unit_out = context.arguments.get("unit_in"), context.arguments.get("unit_out")
    return [unit_in] if unit_in == unit_out else [unit_in, unit_out]


def _listed(units: list) -> str:
    """One or two units the call gave, as 'a' or 'a' and 'b'."""
    return " and ".join(f"'{unit}'" for unit in units)


def _dimension(unit: object) -> str | None:
    """What a unit of the conversion tables measures (None for a unit neither tool knows)."""
    return DIMENSIONS.get(unit) if isinstance(unit, str) else None


def _not_among(units: list) -> str:
    return f"{_listed(units)} {'is' if len(units) == 1 else 'are'} not among them"


@hint_rule("math.empty_list", "parameter_constraint", r"^Cannot (calculate|find) .* of an empty list$",
           tools=_LIST_TOOLS)
def empty_list(context: FeedbackContext, match: re.Match) -> str:
    return (f"'numbers' is an empty list, so '{context.call.name}' has nothing to work on. Pass the numbers the "
            "request is about, taken from the user's message or from earlier tool results.")


@hint_rule("math.divide_by_zero", "parameter_constraint", r"^Cannot divide by zero$", tools=("divide",))
def divide_by_zero(context: FeedbackContext, match: re.Match) -> str:
    return ("The divisor b is 0, and division by zero is undefined. a is the number being divided and b the number "
            "it is divided by: check that b holds the value you meant (not swapped with a). If it really is 0, tell "
            "the user the result is undefined.")


@hint_rule("math.zero_whole", "parameter_constraint", r"^Whole value cannot be zero$", tools=("percentage",))
def zero_whole(context: FeedbackContext, match: re.Match) -> str:
    return ("'whole' is 0, and a percentage of a zero total is undefined. 'part' is the portion and 'whole' the total "
            "it is a share of: check that whole holds the total you meant (not swapped with part). If it really is 0, "
            "tell the user the percentage is undefined.")


@hint_rule("math.negative_square_root", "parameter_constraint", r"^Cannot calculate square root of a negative number$",
           tools=("square_root",))
def negative_square_root(context: FeedbackContext, match: re.Match) -> str:
    return (f"square_root needs a number of at least 0, and {context.arguments.get('number')!r} is negative. Check how "
            "you obtained it (for example the order of a subtraction). If it really is negative, tell the user it has "
            "no real square root.")


@hint_rule("math.logarithm_base_one", "parameter_constraint", r"^$", tools=("logarithm",))
def logarithm_base_one(context: FeedbackContext, match: re.Match) -> str | None:
    # mpmath divides by log(base) = 0 and raises a ZeroDivisionError without a message.
    if context.arguments.get("base") != 1:
        return None
    return ("A logarithm to base 1 does not exist (log(1) is 0, so it would divide by zero). The base must be a "
            "positive number other than 1: check that value and base are not swapped.")


@hint_rule("math.zero_to_negative_power", "parameter_constraint", r"cannot be raised to a negative power$",
           tools=("power",))
def zero_to_negative_power(context: FeedbackContext, match: re.Match) -> str:
    return ("0 raised to a negative exponent is undefined (it amounts to dividing by zero). Check that base and "
            "exponent hold the values you meant and are not swapped. If they are right, tell the user the result "
            "is undefined.")


@hint_rule("math.invalid_precision", "parameter_constraint",
           r"^valid range for prec is|^precision .* is above the limit of \d+ digits$",
           tools=("logarithm", "square_root"))
def invalid_precision(context: FeedbackContext, match: re.Match) -> str:
    return (f"'precision' is the number of significant digits of the result and must be a whole number from 1 to "
            f"{MAX_PRECISION_DIGITS}; {context.arguments.get('precision')!r} is outside that range. Use the precision "
            "the user asked for.")


@hint_rule("math.result_too_large", "parameter_constraint", _TOO_LARGE,
           tools=("power", "standard_deviation", "si_unit_conversion", "imperial_si_conversion"))
def result_too_large(context: FeedbackContext, match: re.Match) -> str:
    return (f"The result of '{context.call.name}' is too large to represent. Check that the arguments hold the values "
            "you meant (not swapped, no misplaced decimal point). If they are right, tell the user the result is too "
            "large to compute.")


@hint_rule("math.unsupported_si_unit", "parameter_constraint", r"^Conversion from '.*' to '.*' is not supported$",
           tools=("si_unit_conversion",))
def unsupported_si_unit(context: FeedbackContext, match: re.Match) -> str:
    unknown = [unit for unit in _units(context) if unit not in SI_LENGTH_UNITS]
    hint = (f"si_unit_conversion converts lengths between metric units only, written exactly as one of "
            f"{', '.join(repr(unit) for unit in SI_LENGTH_UNITS)}; {_not_among(unknown)}.")
    imperial = [unit for unit in unknown if _dimension(unit)]
    if imperial and context.available("imperial_si_conversion"):
        hint += f" imperial_si_conversion handles {_listed(imperial)}."
    return hint


@hint_rule("math.unsupported_imperial_pair", "parameter_constraint", r"^Conversion from '.*' to '.*' is not supported$",
           tools=("imperial_si_conversion",))
def unsupported_imperial_pair(context: FeedbackContext, match: re.Match) -> str:
    unit_in, unit_out = context.arguments.get("unit_in"), context.arguments.get("unit_out")
    pairs = ", ".join(f"'{a}' and '{b}'" for a, b in IMPERIAL_SI_PAIRS)
    hint = f"imperial_si_conversion converts only between these pairs of units, in either direction: {pairs}."
    unknown = [unit for unit in _units(context) if _dimension(unit) is None]
    si_tool = context.available("si_unit_conversion")
    if unknown:
        return f"{hint} Units must be written exactly as listed; {_not_among(unknown)}."
    if _dimension(unit_in) != _dimension(unit_out):
        return (f"{hint} '{unit_in}' is a {_dimension(unit_in)} unit and '{unit_out}' a {_dimension(unit_out)} unit, "
                "so no conversion between them exists; check which units the user asked for.")
    if unit_in in SI_LENGTH_UNITS and unit_out in SI_LENGTH_UNITS:
        other = "use si_unit_conversion" if si_tool else "no tool available right now converts between them"
        return f"{hint} Both units are metric lengths: {other}."
    via = " (si_unit_conversion converts between metric lengths)" if si_tool else ""
    return (f"{hint} '{unit_in}' to '{unit_out}' is not one of the pairs: convert step by step through units of "
            f"the pairs{via}.")


# The order they are tried in.
RULES = (
    empty_list, divide_by_zero, zero_whole, negative_square_root, logarithm_base_one, zero_to_negative_power,
    invalid_precision, result_too_large, unsupported_si_unit, unsupported_imperial_pair,
)
