"""Golden examples for the VehicleControlAPI hints: for every rule, a real call on a real backend, the
official result it gets, and the augmented text the model sees instead; augmenting reads the state only."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import hint_golden
import pytest
from hint_golden import DEFAULT_RELEASE, PAPER_RELEASE, Golden

from envtune.bfcl.executor import ToolSession
from envtune.bfcl.release import resolve_release
from envtune.feedback import DEFAULT_RULES, FeedbackContext, find_hint

# Engine off, driver door unlocked, brake released, 10 gallons in the tank.
SCENARIO: dict[str, Any] = {
    "fuelLevel": 10.0, "batteryVoltage": 12.6, "engineState": "stopped",
    "doorStatus": {"driver": "unlocked", "passenger": "locked", "rear_left": "locked", "rear_right": "locked"},
    "acTemperature": 25.0, "fanSpeed": 50, "acMode": "auto", "humidityLevel": 50.0, "headLightStatus": "off",
    "parkingBrakeStatus": "released", "brakePedalStatus": "released", "distanceToNextVehicle": 50.0,
    "cruiseStatus": "inactive", "destination": "None",
}
VEHICLE = hint_golden.Domain("VehicleControlAPI", SCENARIO, releases=(DEFAULT_RELEASE,))
READY_TO_START = ("lockDoors(unlock=False, door=['driver'])", "pressBrakePedal(pedalPosition=1.0)")

WEATHER = VEHICLE.case(
    "weather-service-down", "get_outside_temperature_from_weather_com()",
    '{"error": 404}',
    "This weather service is unavailable (error 404). Get the outside temperature with "
    "get_outside_temperature_from_google instead.",
    "vehicle.weather_service_down",
)

CASES = [
    VEHICLE.case(
        "stop-reported-as-error", "startEngine(ignitionMode='STOP')",
        '{"error": "All doors must be locked before starting the engine. Here are the unlocked doors: driver"}',
        "Despite this message, ignitionMode 'STOP' took effect: the engine is stopped now, so nothing more is needed "
        "to stop it (displayCarStatus with option 'engine' confirms it).",
        "vehicle.engine_stopped_anyway",
    ),
    VEHICLE.case(
        "doors-unlocked", "startEngine(ignitionMode='START')",
        '{"error": "All doors must be locked before starting the engine. Here are the unlocked doors: driver"}',
        "The engine starts only when all four doors are locked. Lock the doors listed above with lockDoors "
        "(unlock=False), then call startEngine again. The brake pedal must also be fully pressed at that moment "
        "(pressBrakePedal with pedalPosition 1).",
        "vehicle.doors_unlocked",
    ),
    VEHICLE.case(
        "doors-unlocked-brake-ready", "startEngine(ignitionMode='START')",
        '{"error": "All doors must be locked before starting the engine. Here are the unlocked doors: driver"}',
        "The engine starts only when all four doors are locked. Lock the doors listed above with lockDoors "
        "(unlock=False), then call startEngine again.",
        "vehicle.doors_unlocked", setup=("pressBrakePedal(pedalPosition=1.0)",),
    ),
    VEHICLE.case(
        "brake-released", "startEngine(ignitionMode='START')",
        '{"error": "Brake pedal needs to be pressed when starting the engine."}',
        "The brake pedal must be held down while the engine starts. Press it fully with pressBrakePedal "
        "(pedalPosition 1 means fully pressed), then call startEngine again.",
        "vehicle.brake_not_pressed", setup=READY_TO_START[:1],
    ),
    VEHICLE.case(
        "brake-half-pressed", "startEngine(ignitionMode='START')",
        '{"error": "Must press the brake fully before starting the engine."}',
        "The brake pedal is pressed, but not all the way. Press it fully with pressBrakePedal (pedalPosition 1 means "
        "fully pressed), then call startEngine again.",
        "vehicle.brake_not_fully_pressed", setup=(READY_TO_START[0], "pressBrakePedal(pedalPosition=0.5)"),
    ),
    VEHICLE.case(  # only a scenario with a negative fuel level reaches it
        "tank-empty", "startEngine(ignitionMode='START')",
        '{"error": "Fuel tank is empty."}',
        "There is no fuel in the tank. Add fuel with fillFuelTank, then call startEngine again.",
        "vehicle.fuel_tank_empty", setup=READY_TO_START, changes={"fuelLevel": -1.0},
    ),
    VEHICLE.case(
        "ignition-lowercase", "startEngine(ignitionMode='start')",
        '{"error": "Invalid ignition mode."}',
        "'start' is not a valid ignitionMode for startEngine. Use exactly one of: 'START', 'STOP'.",
        "vehicle.invalid_ignition_mode", setup=READY_TO_START,
    ),
    VEHICLE.case(
        "headlights", "setHeadlights(mode='bright')",
        '{"error": "Invalid headlight mode."}',
        "'bright' is not a valid mode for setHeadlights. Use exactly one of: 'on', 'off', 'auto'.",
        "vehicle.invalid_headlight_mode",
    ),
    VEHICLE.case(
        "status-option", "displayCarStatus(option='tires')",
        '{"error": "Invalid option"}',
        "'tires' is not a valid option for displayCarStatus. Use exactly one of: 'fuel', 'battery', 'doors', "
        "'climate', 'headlights', 'parkingBrake', 'brakePedal', 'engine'.",
        "vehicle.invalid_status_option",
    ),
    VEHICLE.case(  # the 2025 docs list 'brakePadle', which the backend rejects
        "status-option-doc-typo", "displayCarStatus(option='brakePadle')",
        '{"error": "Invalid option"}',
        "'brakePadle' is a typo in the tool description: the value the system accepts is 'brakePedal'. Call it "
        "again with that spelling.",
        "vehicle.invalid_status_option", docs_release=PAPER_RELEASE,
    ),
    VEHICLE.case(  # the typo corrected when listing the 2025 choices
        "status-option-2025-docs", "displayCarStatus(option='brake')",
        '{"error": "Invalid option"}',
        "'brake' is not a valid option for displayCarStatus. Use exactly one of: 'fuel', 'battery', 'doors', "
        "'climate', 'headlights', 'parkingBrake', 'brakePedal', 'engine'.",
        "vehicle.invalid_status_option", docs_release=PAPER_RELEASE,
    ),
    VEHICLE.case(
        "parking-brake", "activateParkingBrake(mode='on')",
        '{"error": "Invalid mode"}',
        "'on' is not a valid mode for activateParkingBrake. Use exactly one of: 'engage', 'release'.",
        "vehicle.invalid_parking_brake_mode",
    ),
    VEHICLE.case(
        "unknown-door", "lockDoors(unlock=False, door=['driver', 'front_left'])",
        "Error during execution: 'front_left'",
        "'front_left' is not a door of this car. Use exactly one of: 'driver', 'passenger', 'rear_left', "
        "'rear_right'. Doors listed before it in this call were already changed; displayCarStatus with option "
        "'doors' shows the current state.",
        "vehicle.unknown_door",
    ),
    VEHICLE.case(
        "negative-fuel", "fillFuelTank(fuelAmount=-5)",
        '{"error": "Fuel amount cannot be negative."}',
        "fuelAmount is the amount of fuel to add, in gallons, so it cannot be negative (-5 given). This tool cannot "
        "remove fuel.",
        "vehicle.negative_fuel_amount",
    ),
    VEHICLE.case(
        "overfill", "fillFuelTank(fuelAmount=45)",
        '{"error": "Cannot fill gas above the tank capacity."}',
        "Adding 45 gallons would overflow the tank, which holds 50 gallons: fuelAmount is added to the fuel already "
        "in the tank. Check the current level with displayCarStatus (option 'fuel') and add at most the difference; "
        "amounts are in gallons (liter_to_gallon converts liters).",
        "vehicle.tank_overfill",
    ),
    VEHICLE.case(
        "pedal-percent", "pressBrakePedal(pedalPosition=50)",
        '{"error": "Pedal position must be between 0 and 1."}',
        "pedalPosition is a fraction from 0 (released) to 1 (fully pressed); 50 is outside that range. If you meant "
        "a percentage, divide it by 100.",
        "vehicle.pedal_position_range",
    ),
    VEHICLE.case(
        "pedal-negative", "pressBrakePedal(pedalPosition=-0.5)",
        '{"error": "Pedal position must be between 0 and 1."}',
        "pedalPosition is a fraction from 0 (released) to 1 (fully pressed); -0.5 is outside that range.",
        "vehicle.pedal_position_range",
    ),
    VEHICLE.case(
        "fan-speed", "adjustClimateControl(temperature=20, fanSpeed=150)",
        '{"error": "Fan speed must be between 0 and 100."}',
        "fanSpeed is a setting from 0 to 100; 150 is outside that range. Pass a value in range, or leave fanSpeed "
        "out if the user did not ask to change it.",
        "vehicle.fan_speed_range",
    ),
    VEHICLE.case(
        "cruise-engine-off", "setCruiseControl(speed=65, activate=True, distanceToNextVehicle=100)",
        '{"error": "Start the engine before activating the cruise control."}',
        "Cruise control can only be set while the engine is running. Start it with startEngine first (every door "
        "locked and the brake pedal fully pressed), then set the cruise control again.",
        "vehicle.engine_off_for_cruise",
    ),
    VEHICLE.case(
        "cruise-speed", "setCruiseControl(speed=63, activate=True, distanceToNextVehicle=100)",
        '{"error": "Invalid speed"}',
        "Cruise speed must be a multiple of 5 from 0 to 120; 63 is not. If the user asked for a speed that does not "
        "fit, ask them which allowed speed to use.",
        "vehicle.invalid_cruise_speed", setup=(*READY_TO_START, "startEngine(ignitionMode='START')"),
    ),
    VEHICLE.case(
        "zipcodes-are-cities", "estimate_distance(cityA='Rivermist', cityB='Stonebrook')",
        '{"error": "distance not found in database."}',
        "estimate_distance takes 5-digit zipcodes, not city names, and cityA='Rivermist' and cityB='Stonebrook' are "
        "not zipcodes. get_zipcode_based_on_city gives the zipcode of a city name.",
        "vehicle.unknown_zipcode_pair",
    ),
    VEHICLE.case(
        "zipcode-of-unknown-city", "estimate_distance(cityA='00000', cityB='74532')",
        '{"error": "distance not found in database."}',
        "'00000' (given as cityA) is what get_zipcode_based_on_city returns for a city it does not know, not a real "
        "zipcode. Check the spelling of the city name (ask the user if unsure); if it is right, tell the user the "
        "distance is not available.",
        "vehicle.unknown_zipcode_pair",
    ),
    VEHICLE.case(
        "zipcode-pair-unknown", "estimate_distance(cityA='12345', cityB='74532')",
        '{"error": "distance not found in database."}',
        "No distance is known between the zipcodes '12345' and '74532': at least one of them is not a zipcode this "
        "system knows. Make sure each one is the zipcode of the city the user meant. get_zipcode_based_on_city gives "
        "the zipcode of a city name. If both are right, tell the user the distance is not available.",
        "vehicle.unknown_zipcode_pair",
    ),
    VEHICLE.case(
        "zipcode-lookup-held-out", "estimate_distance(cityA='Rivermist', cityB='74532')",
        '{"error": "distance not found in database."}',
        "estimate_distance takes 5-digit zipcodes, not city names, and cityA='Rivermist' is not a zipcode. Ask the "
        "user for the zipcodes.",
        "vehicle.unknown_zipcode_pair", held_out=("get_zipcode_based_on_city",),
    ),
    WEATHER,
]


@pytest.mark.parametrize(("release", "case"), hint_golden.by_release(CASES), ids=hint_golden.case_id)
def test_golden_hint(release: str, case: Golden):
    hint_golden.check(__file__, CASES, release, case)


@pytest.mark.parametrize("held_out, hint", [
    ((), WEATHER.hint),
    (("get_outside_temperature_from_google",),
     ("This weather service is unavailable (error 404) and no other temperature tool is available now: tell the "
      "user you cannot get the outside temperature.")),
])
def test_weather_service_down_rule(held_out: tuple[str, ...], hint: str):
    """The rule itself, on the error text '404' that augment hands it (it reads non-string errors as text)."""
    case = replace(WEATHER, hint=hint, held_out=held_out)
    with ToolSession(case.classes, case.scenario) as session:
        assert session.execute(case.call) == case.result
        context = FeedbackContext(
            call=session.describe(case.call), result=case.result, error="404", class_name=VEHICLE.class_name,
            instance=session.instances[VEHICLE.class_name],
            tool_docs=hint_golden.tool_docs(case, resolve_release().version),
        )
        found = find_hint(context, DEFAULT_RULES)
    assert (found.kind, found.text) == (case.kind, case.hint)


def test_every_vehicle_rule_has_a_golden_example():
    kinds = {rule.kind for rule in DEFAULT_RULES if rule.kind.startswith("vehicle.")}
    assert kinds == {case.kind for case in CASES}


if __name__ == "__main__":
    hint_golden.main(CASES)
