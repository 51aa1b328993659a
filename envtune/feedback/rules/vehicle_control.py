"""Hints for VehicleControlAPI errors (both pinned releases).

The vehicle backend hides its rules behind short messages: the engine only starts with every door
locked and the brake pedal fully pressed, the fuel amount is added to what is in the tank, enum-like
arguments are checked only against values listed in the tool descriptions, a wrong door name crashes
with a bare KeyError, and one of the two temperature tools is always down. These rules name the
cause and the tool that fixes it, using only the model's own arguments and what the tool docs say.
"""

from __future__ import annotations

import re

from envtune.feedback.core import FeedbackContext, agreeing, hint_rule, quoted

# Values the 2025 tool docs misspell, mapped to what the backend accepts.
DOC_TYPOS = {"brakePadle": "brakePedal"}
ZIPCODE = re.compile(r"\d{5}")
# What get_zipcode_based_on_city answers for a city it does not know.
UNKNOWN_CITY_ZIPCODE = "00000"


def _one_of(context: FeedbackContext, tool: str, argument: str) -> str:
    """The documented values, spelled the way the backend accepts them."""
    choices = [DOC_TYPOS.get(choice, choice) for choice in context.documented_choices(tool, argument)]
    if not choices:
        return "Use one of the values listed in the tool description."
    return f"Use exactly one of: {', '.join(repr(choice) for choice in choices)}."


# --- starting the engine ------------------------------------------------------------------------

@hint_rule("vehicle.engine_stopped_anyway", "state_prerequisite", r".", tools=["startEngine"])
def engine_stopped_anyway(context: FeedbackContext, match: re.Match) -> str | None:
    """startEngine(ignitionMode='STOP') stops the engine first and then reports an error anyway."""
    if context.arguments.get("ignitionMode") != "STOP" or getattr(context.instance, "engine_state", None) != "stopped":
        return None
    return ("Despite this message, ignitionMode 'STOP' took effect: the engine is stopped now, so nothing more is "
            "needed to stop it (displayCarStatus with option 'engine' confirms it).")


# The fix for either brake error of startEngine.
_PRESS_BRAKE_FULLY = ("Press it fully with pressBrakePedal (pedalPosition 1 means fully pressed), then call "
                      "startEngine again.")


def _brake_ready(context: FeedbackContext) -> bool:
    instance = context.instance
    return instance.brakePedalStatus == "pressed" and instance._brakePedalForce == 1000.0


@hint_rule("vehicle.doors_unlocked", "state_prerequisite", r"^All doors must be locked before starting the engine",
           tools=["startEngine"])
def doors_unlocked(context: FeedbackContext, match: re.Match) -> str:
    brake = "" if _brake_ready(context) else (
        " The brake pedal must also be fully pressed at that moment (pressBrakePedal with pedalPosition 1).")
    return ("The engine starts only when all four doors are locked. Lock the doors listed above with lockDoors "
            f"(unlock=False), then call startEngine again.{brake}")


@hint_rule("vehicle.brake_not_pressed", "state_prerequisite", r"^Brake pedal needs to be pressed",
           tools=["startEngine"])
def brake_not_pressed(context: FeedbackContext, match: re.Match) -> str:
    return f"The brake pedal must be held down while the engine starts. {_PRESS_BRAKE_FULLY}"


@hint_rule("vehicle.brake_not_fully_pressed", "state_prerequisite", r"^Must press the brake fully",
           tools=["startEngine"])
def brake_not_fully_pressed(context: FeedbackContext, match: re.Match) -> str:
    return f"The brake pedal is pressed, but not all the way. {_PRESS_BRAKE_FULLY}"


@hint_rule("vehicle.fuel_tank_empty", "resource_unavailable", r"^Fuel tank is empty\.$", tools=["startEngine"])
def fuel_tank_empty(context: FeedbackContext, match: re.Match) -> str:
    return "There is no fuel in the tank. Add fuel with fillFuelTank, then call startEngine again."


# --- arguments limited to documented values -----------------------------------------------------------

# tool -> (hint kind, argument, official error message)
CHOICE_ERRORS = {
    "startEngine": ("vehicle.invalid_ignition_mode", "ignitionMode", "Invalid ignition mode."),
    "setHeadlights": ("vehicle.invalid_headlight_mode", "mode", "Invalid headlight mode."),
    "displayCarStatus": ("vehicle.invalid_status_option", "option", "Invalid option"),
    "activateParkingBrake": ("vehicle.invalid_parking_brake_mode", "mode", "Invalid mode"),
}


def invalid_choice(context: FeedbackContext, match: re.Match) -> str:
    """One writer for every argument whose allowed values are listed in the tool description."""
    tool = context.call.name
    _, argument, _ = CHOICE_ERRORS[tool]
    given = context.arguments.get(argument)
    if given in DOC_TYPOS and given in context.documented_choices(tool, argument):
        return (f"{quoted(given)} is a typo in the tool description: the value the system accepts is "
                f"'{DOC_TYPOS[given]}'. Call it again with that spelling.")
    return f"{quoted(given)} is not a valid {argument} for {tool}. {_one_of(context, tool, argument)}"


invalid_choices = tuple(
    hint_rule(kind, "parameter_constraint", f"^{re.escape(message)}$", tools=[tool])(invalid_choice)
    for tool, (kind, _, message) in CHOICE_ERRORS.items()
)


@hint_rule("vehicle.unknown_door", "parameter_constraint", r"^'(.*)'$", tools=["lockDoors"])
def unknown_door(context: FeedbackContext, match: re.Match) -> str:
    """A door name outside the documented ones makes the backend raise a bare KeyError, after it
    has already changed the doors listed before it."""
    return (f"{quoted(match.group(1))} is not a door of this car. {_one_of(context, 'lockDoors', 'door')} Doors "
            "listed before it in this call were already changed; displayCarStatus with option 'doors' shows the "
            "current state.")


# --- fuel, pedals, climate, cruise control -------------------------------------------------------

@hint_rule("vehicle.negative_fuel_amount", "parameter_constraint", r"^Fuel amount cannot be negative",
           tools=["fillFuelTank"])
def negative_fuel_amount(context: FeedbackContext, match: re.Match) -> str:
    amount = context.arguments.get("fuelAmount")
    return (f"fuelAmount is the amount of fuel to add, in gallons, so it cannot be negative ({amount} given). "
            "This tool cannot remove fuel.")


@hint_rule("vehicle.tank_overfill", "parameter_constraint", r"^Cannot fill gas above the tank capacity",
           tools=["fillFuelTank"])
def tank_overfill(context: FeedbackContext, match: re.Match) -> str:
    amount = context.arguments.get("fuelAmount")
    return (f"Adding {amount} gallons would overflow the tank, which holds 50 gallons: fuelAmount is added to the fuel "
            "already in the tank. Check the current level with displayCarStatus (option 'fuel') and add at most the "
            "difference; amounts are in gallons (liter_to_gallon converts liters).")


@hint_rule("vehicle.pedal_position_range", "parameter_constraint", r"^Pedal position must be between 0 and 1",
           tools=["pressBrakePedal"])
def pedal_position_range(context: FeedbackContext, match: re.Match) -> str:
    position = context.arguments.get("pedalPosition")
    percentage = isinstance(position, (int, float)) and 1 < position <= 100
    return (f"pedalPosition is a fraction from 0 (released) to 1 (fully pressed); {position} is outside that range."
            + (" If you meant a percentage, divide it by 100." if percentage else ""))


@hint_rule("vehicle.fan_speed_range", "parameter_constraint", r"^Fan speed must be between 0 and 100",
           tools=["adjustClimateControl"])
def fan_speed_range(context: FeedbackContext, match: re.Match) -> str:
    speed = context.arguments.get("fanSpeed")
    return (f"fanSpeed is a setting from 0 to 100; {speed} is outside that range. Pass a value in range, or leave "
            "fanSpeed out if the user did not ask to change it.")


@hint_rule("vehicle.engine_off_for_cruise", "state_prerequisite", r"^Start the engine before activating",
           tools=["setCruiseControl"])
def engine_off_for_cruise(context: FeedbackContext, match: re.Match) -> str:
    return ("Cruise control can only be set while the engine is running. Start it with startEngine first (every "
            "door locked and the brake pedal fully pressed), then set the cruise control again.")


@hint_rule("vehicle.invalid_cruise_speed", "parameter_constraint", r"^Invalid speed$", tools=["setCruiseControl"])
def invalid_cruise_speed(context: FeedbackContext, match: re.Match) -> str:
    speed = context.arguments.get("speed")
    return (f"Cruise speed must be a multiple of 5 from 0 to 120; {speed} is not. If the user asked for a speed "
            "that does not fit, ask them which allowed speed to use.")


# --- services and lookups -----------------------------------------------------------------------------

@hint_rule("vehicle.weather_service_down", "resource_unavailable", r"^404$",
           tools=["get_outside_temperature_from_weather_com"])
def weather_service_down(context: FeedbackContext, match: re.Match) -> str:
    """This tool always answers {"error": 404}, an int, which the core reads as the error text '404'."""
    other = "get_outside_temperature_from_google"
    if context.available(other):
        return f"This weather service is unavailable (error 404). Get the outside temperature with {other} instead."
    return ("This weather service is unavailable (error 404) and no other temperature tool is available now: tell "
            "the user you cannot get the outside temperature.")


@hint_rule("vehicle.unknown_zipcode_pair", "dependency_missing", r"^distance not found in database",
           tools=["estimate_distance"])
def unknown_zipcode_pair(context: FeedbackContext, match: re.Match) -> str:
    given = {name: context.arguments.get(name) for name in ("cityA", "cityB")}
    lookup = ("get_zipcode_based_on_city gives the zipcode of a city name."
              if context.available("get_zipcode_based_on_city") else "Ask the user for the zipcodes.")
    not_zipcodes = context.misfits(ZIPCODE, "cityA", "cityB")
    if not_zipcodes:
        return ("estimate_distance takes 5-digit zipcodes, not city names, and "
                f"{agreeing(not_zipcodes, 'is not a zipcode', 'are not zipcodes')}. {lookup}")
    unknown_city = [name for name, value in given.items() if value == UNKNOWN_CITY_ZIPCODE]
    if unknown_city:
        return (f"'{UNKNOWN_CITY_ZIPCODE}' (given as {' and '.join(unknown_city)}) is what get_zipcode_based_on_city "
                "returns for a city it does not know, not a real zipcode. Check the spelling of the city name (ask the "
                "user if unsure); if it is right, tell the user the distance is not available.")
    return (f"No distance is known between the zipcodes {quoted(given['cityA'])} and {quoted(given['cityB'])}: at "
            "least one of them is not a zipcode this system knows. Make sure each one is the zipcode of the city the "
            f"user meant. {lookup} If both are right, tell the user the distance is not available.")


# The order they are tried in.
RULES = (
    engine_stopped_anyway, doors_unlocked, brake_not_pressed, brake_not_fully_pressed, fuel_tank_empty,
    *invalid_choices, unknown_door, negative_fuel_amount, tank_overfill, pedal_position_range, fan_speed_range,
    engine_off_for_cruise, invalid_cruise_speed, weather_service_down, unknown_zipcode_pair,
)
