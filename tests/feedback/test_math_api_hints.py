"""Golden hints for MathAPI: each failing call runs on a real session of both releases, and its
official result and augmented text must be exactly these. MathAPI has no scenario."""

from __future__ import annotations

import itertools

import hint_golden
import pytest
from hint_golden import Golden

from envtune.bfcl.calls import CallLimits
from envtune.bfcl.executor import ToolSession
from envtune.feedback import error_message
from envtune.feedback.rules.math_api import (
    DIMENSIONS,
    IMPERIAL_SI_PAIRS,
    SI_LENGTH_UNITS,
)

MATH = ("MathAPI",)
# Integers beyond the default 256-bit bound on literals, to reach the converters' overflow branch.
BIG_INTEGERS = CallLimits(max_int_bits=2048)
TOO_LARGE = ("The result of '{tool}' is too large to represent. Check that the arguments hold the values you meant "
             "(not swapped, no misplaced decimal point). If they are right, tell the user the result is too large to "
             "compute.")
PRECISION = ("'precision' is the number of significant digits of the result and must be a whole number from 1 to "
             "10000; {precision} is outside that range. Use the precision the user asked for.")
SI_UNITS = ("si_unit_conversion converts lengths between metric units only, written exactly as one of 'km', 'm', "
            "'cm', 'mm', 'um', 'nm';")
PAIRS = ("imperial_si_conversion converts only between these pairs of units, in either direction: 'cm' and 'in', "
         "'m' and 'ft', 'm' and 'yd', 'km' and 'miles', 'kg' and 'lb', 'celsius' and 'fahrenheit'.")


def not_supported(unit_in: str, unit_out: str) -> str:
    return f'{{"error": "Conversion from \'{unit_in}\' to \'{unit_out}\' is not supported"}}'


CASES = [
    *(
        Golden(f"empty list: {tool}", MATH, f"{tool}(numbers=[])", f'{{"error": "Cannot {what} of an empty list"}}',
               f"'numbers' is an empty list, so '{tool}' has nothing to work on. Pass the numbers the request is "
               "about, taken from the user's message or from earlier tool results.",
               "math.empty_list")
        for tool, what in [
            ("mean", "calculate mean"), ("standard_deviation", "calculate standard deviation"),
            ("min_value", "find minimum"), ("max_value", "find maximum"), ("sum_values", "calculate sum"),
        ]
    ),
    Golden("division by zero", MATH, "divide(a=5, b=0)", '{"error": "Cannot divide by zero"}',
           "The divisor b is 0, and division by zero is undefined. a is the number being divided and b the number it "
           "is divided by: check that b holds the value you meant (not swapped with a). If it really is 0, tell the "
           "user the result is undefined.",
           "math.divide_by_zero"),
    Golden("percentage of zero", MATH, "percentage(part=3, whole=0)", '{"error": "Whole value cannot be zero"}',
           "'whole' is 0, and a percentage of a zero total is undefined. 'part' is the portion and 'whole' the total "
           "it is a share of: check that whole holds the total you meant (not swapped with part). If it really is 0, "
           "tell the user the percentage is undefined.",
           "math.zero_whole"),
    Golden("negative square root", MATH, "square_root(number=-9, precision=4)",
           '{"error": "Cannot calculate square root of a negative number"}',
           "square_root needs a number of at least 0, and -9 is negative. Check how you obtained it (for example the "
           "order of a subtraction). If it really is negative, tell the user it has no real square root.",
           "math.negative_square_root"),
    # mpmath raises a ZeroDivisionError without a message, so the official error is empty.
    Golden("logarithm to base 1", MATH, "logarithm(value=8, base=1, precision=5)", '{"error": ""}',
           "A logarithm to base 1 does not exist (log(1) is 0, so it would divide by zero). The base must be a "
           "positive number other than 1: check that value and base are not swapped.",
           "math.logarithm_base_one"),
    Golden("zero to a negative power", MATH, "power(base=0, exponent=-2)",
           "Error during execution: 0.0 cannot be raised to a negative power",
           "0 raised to a negative exponent is undefined (it amounts to dividing by zero). Check that base and "
           "exponent hold the values you meant and are not swapped. If they are right, tell the user the result is "
           "undefined.",
           "math.zero_to_negative_power"),
    Golden("precision below 1", MATH, "square_root(number=2, precision=0)",
           "Error during execution: valid range for prec is [1, MAX_PREC]",
           PRECISION.format(precision=0), "math.invalid_precision"),
    Golden("precision above the executor's bound", MATH, "logarithm(value=2, base=10, precision=50000)",
           "Error during execution: precision 50000 is above the limit of 10000 digits",
           PRECISION.format(precision=50000), "math.invalid_precision"),
    Golden("float power overflow", MATH, "power(base=2.5, exponent=1000)",
           "Error during execution: (34, 'Numerical result out of range')",
           TOO_LARGE.format(tool="power"), "math.result_too_large"),
    Golden("integer power too long to print", MATH, "power(base=7, exponent=10000)",
           "Error during execution: Exceeds the limit (4300 digits) for integer string conversion; use "
           "sys.set_int_max_str_digits() to increase the limit",
           TOO_LARGE.format(tool="power"), "math.result_too_large"),
    Golden("integer power above the executor's bound", MATH, "power(base=3, exponent=10**7)",
           "Error during execution: integer power 3**10000000 would exceed 1048576 bits",
           TOO_LARGE.format(tool="power"), "math.result_too_large"),
    Golden("standard deviation overflow", MATH, "standard_deviation(numbers=[1e200, -1e200])",
           "Error during execution: (34, 'Numerical result out of range')",
           TOO_LARGE.format(tool="standard_deviation"), "math.result_too_large"),
    *(
        Golden(f"conversion overflow: {tool}", MATH, f"{tool}(value=2**1100, unit_in='m', unit_out='{unit_out}')",
               '{"error": "Conversion resulted in a value too large to represent"}',
               TOO_LARGE.format(tool=tool), "math.result_too_large", limits=BIG_INTEGERS)
        for tool, unit_out in [("si_unit_conversion", "mm"), ("imperial_si_conversion", "ft")]
    ),
    Golden("SI: unit spelt out", MATH, "si_unit_conversion(value=3, unit_in='meters', unit_out='cm')",
           not_supported("meters", "cm"), f"{SI_UNITS} 'meters' is not among them.", "math.unsupported_si_unit"),
    Golden("SI: imperial units", MATH, "si_unit_conversion(value=3, unit_in='ft', unit_out='lb')",
           not_supported("ft", "lb"),
           f"{SI_UNITS} 'ft' and 'lb' are not among them. imperial_si_conversion handles 'ft' and 'lb'.",
           "math.unsupported_si_unit"),
    Golden("SI: same unknown unit twice", MATH, "si_unit_conversion(value=3, unit_in='yard', unit_out='yard')",
           not_supported("yard", "yard"), f"{SI_UNITS} 'yard' is not among them.", "math.unsupported_si_unit"),
    Golden("SI: imperial unit, no imperial tool", MATH, "si_unit_conversion(value=3, unit_in='ft', unit_out='cm')",
           not_supported("ft", "cm"), f"{SI_UNITS} 'ft' is not among them.", "math.unsupported_si_unit",
           held_out=("imperial_si_conversion",)),
    Golden("imperial: capitalised units", MATH,
           "imperial_si_conversion(value=3, unit_in='Celsius', unit_out='Fahrenheit')",
           not_supported("Celsius", "Fahrenheit"),
           f"{PAIRS} Units must be written exactly as listed; 'Celsius' and 'Fahrenheit' are not among them.",
           "math.unsupported_imperial_pair"),
    Golden("imperial: different quantities", MATH, "imperial_si_conversion(value=3, unit_in='kg', unit_out='in')",
           not_supported("kg", "in"),
           f"{PAIRS} 'kg' is a mass unit and 'in' a length unit, so no conversion between them exists; check which "
           "units the user asked for.",
           "math.unsupported_imperial_pair"),
    Golden("imperial: two metric units", MATH, "imperial_si_conversion(value=3, unit_in='mm', unit_out='km')",
           not_supported("mm", "km"), f"{PAIRS} Both units are metric lengths: use si_unit_conversion.",
           "math.unsupported_imperial_pair"),
    Golden("imperial: two metric units, no SI tool", MATH,
           "imperial_si_conversion(value=3, unit_in='mm', unit_out='km')",
           not_supported("mm", "km"),
           f"{PAIRS} Both units are metric lengths: no tool available right now converts between them.",
           "math.unsupported_imperial_pair", held_out=("si_unit_conversion",)),
    Golden("imperial: not a direct pair", MATH, "imperial_si_conversion(value=3, unit_in='ft', unit_out='cm')",
           not_supported("ft", "cm"),
           f"{PAIRS} 'ft' to 'cm' is not one of the pairs: convert step by step through units of the pairs "
           "(si_unit_conversion converts between metric lengths).",
           "math.unsupported_imperial_pair"),
]


@pytest.mark.parametrize(("release", "case"), hint_golden.by_release(CASES), ids=hint_golden.case_id)
def test_golden_hint(release: str, case: Golden):
    hint_golden.check(__file__, CASES, release, case)


@pytest.mark.parametrize(("call", "official"), [
    ("add(a=1, b='x')", "Both inputs must be numbers"),
    ("multiply(a='x', b=2)", "Both inputs must be numbers"),
    ("divide(a=1, b=None)", "Both inputs must be numbers"),
    ("percentage(part='1', whole=2)", "Both inputs must be numbers"),
    ("mean(numbers=[1, 'a'])", "All elements in the list must be numbers"),
    ("sum_values(numbers='123')", "All elements in the list must be numbers"),
    ("si_unit_conversion(value='1', unit_in='km', unit_out='m')", "Value must be a number"),
    ("imperial_si_conversion(value=None, unit_in='ft', unit_out='m')", "Value must be a number"),
    ("absolute_value(number='x')", "Input must be a number"),
    ("round_number(number=1.5, decimal_places=1.5)", "First input must be a number, second input must be an integer"),
    ("square_root(number='4', precision=5)", "Input must be a number or computation resulted in an invalid operation"),
    ("logarithm(value='a', base=10, precision=5)", "cannot create mpf from 'a'"),
])
def test_wrongly_typed_inputs_are_left_to_schema_rules(call: str, official: str):
    result, kind = hint_golden.hint_kind(MATH, call)
    assert error_message(result) == official
    assert kind == "schema.wrong_type"


def test_unit_tables_match_the_backend():
    """The units the hints name are exactly those the converters accept (same code in both releases)."""
    units = sorted(DIMENSIONS) + ["meter", "C", "lbs", ""]
    supported_pairs = {*IMPERIAL_SI_PAIRS, *((b, a) for a, b in IMPERIAL_SI_PAIRS)}
    with ToolSession(MATH, {}) as env:
        for unit_in, unit_out in itertools.product(units, repeat=2):
            si = env.execute(f"si_unit_conversion(value=1, unit_in={unit_in!r}, unit_out={unit_out!r})")
            imperial = env.execute(f"imperial_si_conversion(value=1, unit_in={unit_in!r}, unit_out={unit_out!r})")
            assert (error_message(si) is None) == (unit_in in SI_LENGTH_UNITS and unit_out in SI_LENGTH_UNITS)
            assert (error_message(imperial) is None) == (unit_in == unit_out or (unit_in, unit_out) in supported_pairs)


if __name__ == "__main__":
    hint_golden.main(CASES)
