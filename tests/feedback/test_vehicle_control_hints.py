"""Golden examples for the VehicleControlAPI hints: for every rule, a real call on a real backend, the
official result it gets, and the augmented text the model sees instead; augmenting reads the state only."""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass, field
from typing import Any

import pytest

from envtune.bfcl.backends import class_tool_docs
from envtune.bfcl.executor import ToolSession
from envtune.bfcl.release import PAPER_RELEASE
from envtune.feedback import (
    HINT_PREFIX,
    augment,
    rules,  # noqa: F401  (registers every rule, for the coverage test)
)
from envtune.feedback.core import RULES, FeedbackContext, find_hint

CLASS = "VehicleControlAPI"

# Engine off, driver door unlocked, brake released, 10 gallons in the tank.
SCENARIO: dict[str, Any] = {
    "fuelLevel": 10.0, "batteryVoltage": 12.6, "engineState": "stopped",
    "doorStatus": {"driver": "unlocked", "passenger": "locked", "rear_left": "locked", "rear_right": "locked"},
    "acTemperature": 25.0, "fanSpeed": 50, "acMode": "auto", "humidityLevel": 50.0, "headLightStatus": "off",
    "parkingBrakeStatus": "released", "brakePedalStatus": "released", "distanceToNextVehicle": 50.0,
    "cruiseStatus": "inactive", "destination": "None",
}
READY_TO_START = ("lockDoors(unlock=False, door=['driver'])", "pressBrakePedal(pedalPosition=1.0)")


@dataclass(frozen=True)
class Golden:
    id: str
    kind: str
    call: str
    standard: str  # the official result
    hint: str  # what augmentation appends
    setup: tuple[str, ...] = ()  # calls run before `call`
    scenario: dict[str, Any] = field(default_factory=dict)  # overrides of SCENARIO
    docs_release: str | None = None  # tool docs of another release (None: the default one)
    hidden: tuple[str, ...] = ()  # tools left out of the docs, as in a missing-function task


GOLDEN = [
    Golden(
        "stop-reported-as-error", "vehicle.engine_stopped_anyway",
        "startEngine(ignitionMode='STOP')",
        '{"error": "All doors must be locked before starting the engine. Here are the unlocked doors: driver"}',
        "Despite this message, ignitionMode 'STOP' took effect: the engine is stopped now, so nothing more is needed "
        "to stop it (displayCarStatus with option 'engine' confirms it).",
    ),
    Golden(
        "doors-unlocked", "vehicle.doors_unlocked",
        "startEngine(ignitionMode='START')",
        '{"error": "All doors must be locked before starting the engine. Here are the unlocked doors: driver"}',
        "The engine starts only when all four doors are locked. Lock the doors listed above with lockDoors "
        "(unlock=False), then call startEngine again. The brake pedal must also be fully pressed at that moment "
        "(pressBrakePedal with pedalPosition 1).",
    ),
    Golden(
        "doors-unlocked-brake-ready", "vehicle.doors_unlocked",
        "startEngine(ignitionMode='START')",
        '{"error": "All doors must be locked before starting the engine. Here are the unlocked doors: driver"}',
        "The engine starts only when all four doors are locked. Lock the doors listed above with lockDoors "
        "(unlock=False), then call startEngine again.",
        setup=("pressBrakePedal(pedalPosition=1.0)",),
    ),
    Golden(
        "brake-released", "vehicle.brake_not_pressed",
        "startEngine(ignitionMode='START')",
        '{"error": "Brake pedal needs to be pressed when starting the engine."}',
        "The brake pedal must be held down while the engine starts. Press it fully with pressBrakePedal "
        "(pedalPosition 1 means fully pressed), then call startEngine again.",
        setup=READY_TO_START[:1],
    ),
    Golden(
        "brake-half-pressed", "vehicle.brake_not_fully_pressed",
        "startEngine(ignitionMode='START')",
        '{"error": "Must press the brake fully before starting the engine."}',
        "The brake pedal is pressed, but not all the way. Press it fully with pressBrakePedal (pedalPosition 1 means "
        "fully pressed), then call startEngine again.",
        setup=(READY_TO_START[0], "pressBrakePedal(pedalPosition=0.5)"),
    ),
    Golden(  # only a scenario with a negative fuel level reaches it
        "tank-empty", "vehicle.fuel_tank_empty",
        "startEngine(ignitionMode='START')",
        '{"error": "Fuel tank is empty."}',
        "There is no fuel in the tank. Add fuel with fillFuelTank, then call startEngine again.",
        setup=READY_TO_START, scenario={"fuelLevel": -1.0},
    ),
    Golden(
        "ignition-lowercase", "vehicle.invalid_ignition_mode",
        "startEngine(ignitionMode='start')",
        '{"error": "Invalid ignition mode."}',
        "'start' is not a valid ignitionMode for startEngine. Use exactly one of: 'START', 'STOP'.",
        setup=READY_TO_START,
    ),
    Golden(
        "headlights", "vehicle.invalid_headlight_mode",
        "setHeadlights(mode='bright')",
        '{"error": "Invalid headlight mode."}',
        "'bright' is not a valid mode for setHeadlights. Use exactly one of: 'on', 'off', 'auto'.",
    ),
    Golden(
        "status-option", "vehicle.invalid_status_option",
        "displayCarStatus(option='tires')",
        '{"error": "Invalid option"}',
        "'tires' is not a valid option for displayCarStatus. Use exactly one of: 'fuel', 'battery', 'doors', "
        "'climate', 'headlights', 'parkingBrake', 'brakePedal', 'engine'.",
    ),
    Golden(  # the 2025 docs list 'brakePadle', which the backend rejects
        "status-option-doc-typo", "vehicle.invalid_status_option",
        "displayCarStatus(option='brakePadle')",
        '{"error": "Invalid option"}',
        "'brakePadle' is a typo in the tool description: the value the system accepts is 'brakePedal'. Call it "
        "again with that spelling.",
        docs_release=PAPER_RELEASE,
    ),
    Golden(  # the typo corrected when listing the 2025 choices
        "status-option-2025-docs", "vehicle.invalid_status_option",
        "displayCarStatus(option='brake')",
        '{"error": "Invalid option"}',
        "'brake' is not a valid option for displayCarStatus. Use exactly one of: 'fuel', 'battery', 'doors', "
        "'climate', 'headlights', 'parkingBrake', 'brakePedal', 'engine'.",
        docs_release=PAPER_RELEASE,
    ),
    Golden(
        "parking-brake", "vehicle.invalid_parking_brake_mode",
        "activateParkingBrake(mode='on')",
        '{"error": "Invalid mode"}',
        "'on' is not a valid mode for activateParkingBrake. Use exactly one of: 'engage', 'release'.",
    ),
    Golden(
        "unknown-door", "vehicle.unknown_door",
        "lockDoors(unlock=False, door=['driver', 'front_left'])",
        "Error during execution: 'front_left'",
        "'front_left' is not a door of this car. Use exactly one of: 'driver', 'passenger', 'rear_left', "
        "'rear_right'. Doors listed before it in this call were already changed; displayCarStatus with option "
        "'doors' shows the current state.",
    ),
    Golden(
        "negative-fuel", "vehicle.negative_fuel_amount",
        "fillFuelTank(fuelAmount=-5)",
        '{"error": "Fuel amount cannot be negative."}',
        "fuelAmount is the amount of fuel to add, in gallons, so it cannot be negative (-5 given). This tool cannot "
        "remove fuel.",
    ),
    Golden(
        "overfill", "vehicle.tank_overfill",
        "fillFuelTank(fuelAmount=45)",
        '{"error": "Cannot fill gas above the tank capacity."}',
        "Adding 45 gallons would overflow the tank, which holds 50 gallons: fuelAmount is added to the fuel already "
        "in the tank. Check the current level with displayCarStatus (option 'fuel') and add at most the difference; "
        "amounts are in gallons (liter_to_gallon converts liters).",
    ),
    Golden(
        "pedal-percent", "vehicle.pedal_position_range",
        "pressBrakePedal(pedalPosition=50)",
        '{"error": "Pedal position must be between 0 and 1."}',
        "pedalPosition is a fraction from 0 (released) to 1 (fully pressed); 50 is outside that range. If you meant "
        "a percentage, divide it by 100.",
    ),
    Golden(
        "pedal-negative", "vehicle.pedal_position_range",
        "pressBrakePedal(pedalPosition=-0.5)",
        '{"error": "Pedal position must be between 0 and 1."}',
        "pedalPosition is a fraction from 0 (released) to 1 (fully pressed); -0.5 is outside that range.",
    ),
    Golden(
        "fan-speed", "vehicle.fan_speed_range",
        "adjustClimateControl(temperature=20, fanSpeed=150)",
        '{"error": "Fan speed must be between 0 and 100."}',
        "fanSpeed is a setting from 0 to 100; 150 is outside that range. Pass a value in range, or leave fanSpeed "
        "out if the user did not ask to change it.",
    ),
    Golden(
        "cruise-engine-off", "vehicle.engine_off_for_cruise",
        "setCruiseControl(speed=65, activate=True, distanceToNextVehicle=100)",
        '{"error": "Start the engine before activating the cruise control."}',
        "Cruise control can only be set while the engine is running. Start it with startEngine first (every door "
        "locked and the brake pedal fully pressed), then set the cruise control again.",
    ),
    Golden(
        "cruise-speed", "vehicle.invalid_cruise_speed",
        "setCruiseControl(speed=63, activate=True, distanceToNextVehicle=100)",
        '{"error": "Invalid speed"}',
        "Cruise speed must be a multiple of 5 from 0 to 120; 63 is not. If the user asked for a speed that does not "
        "fit, ask them which allowed speed to use.",
        setup=(*READY_TO_START, "startEngine(ignitionMode='START')"),
    ),
    Golden(
        "zipcodes-are-cities", "vehicle.unknown_zipcode_pair",
        "estimate_distance(cityA='Rivermist', cityB='Stonebrook')",
        '{"error": "distance not found in database."}',
        "estimate_distance takes 5-digit zipcodes, not city names, and cityA='Rivermist' and cityB='Stonebrook' are "
        "not zipcodes. get_zipcode_based_on_city gives the zipcode of a city name.",
    ),
    Golden(
        "zipcode-of-unknown-city", "vehicle.unknown_zipcode_pair",
        "estimate_distance(cityA='00000', cityB='74532')",
        '{"error": "distance not found in database."}',
        "'00000' (given as cityA) is what get_zipcode_based_on_city returns for a city it does not know, not a real "
        "zipcode. Check the spelling of the city name (ask the user if unsure); if it is right, tell the user the "
        "distance is not available.",
    ),
    Golden(
        "zipcode-pair-unknown", "vehicle.unknown_zipcode_pair",
        "estimate_distance(cityA='12345', cityB='74532')",
        '{"error": "distance not found in database."}',
        "No distance is known between the zipcodes '12345' and '74532': at least one of them is not a zipcode this "
        "system knows. Make sure each one is the zipcode of the city the user meant. get_zipcode_based_on_city gives "
        "the zipcode of a city name. If both are right, tell the user the distance is not available.",
    ),
    Golden(
        "zipcode-lookup-held-out", "vehicle.unknown_zipcode_pair",
        "estimate_distance(cityA='Rivermist', cityB='74532')",
        '{"error": "distance not found in database."}',
        "estimate_distance takes 5-digit zipcodes, not city names, and cityA='Rivermist' is not a zipcode. Ask the "
        "user for the zipcodes.",
        hidden=("get_zipcode_based_on_city",),
    ),
]

WEATHER = Golden(
    "weather-service-down", "vehicle.weather_service_down",
    "get_outside_temperature_from_weather_com()",
    '{"error": 404}',
    "This weather service is unavailable (error 404). Get the outside temperature with "
    "get_outside_temperature_from_google instead.",
)


def tool_docs(golden: Golden) -> dict[str, dict]:
    return {doc["name"]: doc for doc in class_tool_docs(CLASS, golden.docs_release) if doc["name"] not in golden.hidden}


def snapshot(session: ToolSession) -> dict[str, dict[str, Any]]:
    """Every attribute of every instance, private ones included (random generators by their state)."""
    return {
        name: {
            key: value.getstate() if isinstance(value, random.Random) else copy.deepcopy(value)
            for key, value in vars(instance).items()
        }
        for name, instance in session.instances.items()
    }


def run(golden: Golden) -> tuple[str, str, str | None]:
    """The official result, the augmented text and the hint kind; fails if augmenting changed the state."""
    with ToolSession([CLASS], {CLASS: {**SCENARIO, **golden.scenario}}) as session:
        session.execute_all(golden.setup)
        standard = session.execute(golden.call)
        before = snapshot(session)
        augmented, hint = augment(session, golden.call, standard, tool_docs(golden))
        assert snapshot(session) == before, "augment changed the environment state"
    return standard, augmented, hint.kind if hint else None


@pytest.mark.parametrize("golden", GOLDEN, ids=lambda golden: golden.id)
def test_golden_hint(golden: Golden):
    standard, augmented, kind = run(golden)
    assert standard == golden.standard
    assert augmented == f"{golden.standard}\n{HINT_PREFIX}{golden.hint}"
    assert kind == golden.kind


def test_weather_service_down_through_augment():
    assert run(WEATHER) == (WEATHER.standard, f"{WEATHER.standard}\n{HINT_PREFIX}{WEATHER.hint}", WEATHER.kind)


@pytest.mark.parametrize("hidden, hint", [
    ((), WEATHER.hint),
    (("get_outside_temperature_from_google",),
     ("This weather service is unavailable (error 404) and no other temperature tool is available now: tell the "
      "user you cannot get the outside temperature.")),
])
def test_weather_service_down_rule(hidden: tuple[str, ...], hint: str):
    """The rule itself, on the error text '404' that augment will hand it once it reads non-string errors."""
    golden = Golden(WEATHER.id, WEATHER.kind, WEATHER.call, WEATHER.standard, hint, hidden=hidden)
    with ToolSession([CLASS], {CLASS: SCENARIO}) as session:
        assert session.execute(golden.call) == golden.standard
        context = FeedbackContext(
            call=session.describe(golden.call), result=golden.standard, error="404", class_name=CLASS,
            instance=session.instances[CLASS], tool_docs=tool_docs(golden),
        )
        found = find_hint(context)
    assert (found.kind, found.text) == (golden.kind, golden.hint)


def test_every_vehicle_rule_has_a_golden_example():
    kinds = {rule.kind for rule in RULES if rule.kind.startswith("vehicle.")}
    assert kinds == {golden.kind for golden in [*GOLDEN, WEATHER]}
