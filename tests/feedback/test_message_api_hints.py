"""Golden hints for MessageAPI: each failing call runs on a real session of both releases, and its
official result and augmented text must be exactly these. Without a scenario the backend's default
workspace is used: Alice, Bob, Catherine and Daniel are USR001 to USR004, nobody is logged in, and
the inbox holds one message each to USR002, USR003 and USR004."""

from __future__ import annotations

import hint_golden
import pytest
from hint_golden import PAPER_RELEASE, Golden

from envtune.feedback import error_message

MESSAGE = ("MessageAPI",)
LOGIN = ("message_login(user_id='USR001')",)
NOT_LOGGED_IN = '{"error": "No user is currently logged in."}'
FIND_ID = "get_user_id turns a user name into the user's ID (list_users shows every user name)."
ADD_CONTACT = "If the person is not in the workspace yet, add_contact adds them and returns their new ID."


def not_logged_in(tool: str) -> str:
    return (f"No one is logged in to the messaging app, which '{tool}' needs. Log in first with message_login, which "
            f"takes the user ID of the person you act for, then call '{tool}' again.")


CASES = [
    *(
        Golden(f"not logged in: {tool}", MESSAGE, call, NOT_LOGGED_IN, f"{not_logged_in(tool)} {FIND_ID}",
               "message.not_logged_in")
        for tool, call in [
            ("send_message", "send_message(receiver_id='USR002', message='Hi')"),
            ("delete_message", "delete_message(receiver_id='USR002')"),
            ("view_messages_sent", "view_messages_sent()"),
            ("search_messages", "search_messages(keyword='file')"),
            ("get_message_stats", "get_message_stats()"),
        ]
    ),
    Golden("not logged in, no ID lookup tool", MESSAGE, "view_messages_sent()", NOT_LOGGED_IN,
           f"{not_logged_in('view_messages_sent')} Ask the user for the ID if you cannot find it in earlier results.",
           "message.not_logged_in", held_out=("get_user_id",)),
    Golden("not logged in, no login tool", MESSAGE, "get_message_stats()", NOT_LOGGED_IN,
           "'get_message_stats' needs a logged-in user, and no tool to log in is available right now, so tell the "
           "user this cannot be done yet.",
           "message.not_logged_in", held_out=("message_login",)),
    Golden("user ID given as a name", MESSAGE, "get_user_id(user='USR003')",
           '{"error": "User \'USR003\' not found in the workspace."}',
           "'USR003' is already a user ID, not a user name: get_user_id maps names to IDs. Use 'USR003' directly "
           "wherever a user ID is needed.",
           "message.id_instead_of_name"),
    Golden("unknown user name", MESSAGE, "get_user_id(user='alice')",
           '{"error": "User \'alice\' not found in the workspace."}',
           "There is no user named 'alice' in the workspace; names must match exactly, capitals included. "
           f"list_users shows every user name. {ADD_CONTACT}",
           "message.unknown_user_name"),
    Golden("unknown user name, no lookup tools", MESSAGE, "get_user_id(user='alice')",
           '{"error": "User \'alice\' not found in the workspace."}',
           "There is no user named 'alice' in the workspace; names must match exactly, capitals included.",
           "message.unknown_user_name", held_out=("list_users", "add_contact")),
    Golden("send to a name", MESSAGE, "send_message(receiver_id='Catherine', message='Hi')",
           '{"error": "Receiver ID \'Catherine\' not found."}',
           "'Catherine' is a user name, but receiver_id takes a user ID. Get it with get_user_id(user='Catherine'), "
           "then call 'send_message' again with that ID.",
           "message.name_instead_of_id", setup=LOGIN),
    Golden("delete for a name", MESSAGE, "delete_message(receiver_id='Catherine')",
           '{"error": "Receiver ID Catherine not found."}',
           "'Catherine' is a user name, but receiver_id takes a user ID. Get it with get_user_id(user='Catherine'), "
           "then call 'delete_message' again with that ID.",
           "message.name_instead_of_id", setup=LOGIN),
    Golden("send to an unknown ID", MESSAGE, "send_message(receiver_id='USR042', message='Hi')",
           '{"error": "Receiver ID \'USR042\' not found."}',
           f"No user in the workspace has the ID 'USR042'. {FIND_ID} {ADD_CONTACT}",
           "message.unknown_user_id", setup=LOGIN),
    Golden("delete for an unknown ID", MESSAGE, "delete_message(receiver_id='USR042')",
           '{"error": "Receiver ID USR042 not found."}',
           f"No user in the workspace has the ID 'USR042'. {FIND_ID}",
           "message.unknown_user_id", setup=LOGIN),
    *(
        Golden(f"nothing to delete: {name}", MESSAGE, f"delete_message(receiver_id='{receiver}')",
               f'{{"error": "Receiver ID {receiver} not found."}}',
               f"The user ID '{receiver}' exists, but there is no message to that receiver left to delete: "
               "delete_message removes the latest message sent to receiver_id. view_messages_sent shows the "
               "messages by receiver.",
               "message.no_message_to_delete", setup=setup)
        for name, receiver, setup in [
            ("never written to", "USR001", LOGIN),
            ("already deleted", "USR002", (*LOGIN, "delete_message(receiver_id='USR002')")),
        ]
    ),
    # The 2025.6.8 docs list a message_id argument that the backend does not take; the later docs
    # drop it, and there the schema rule explains the unexpected argument.
    Golden("delete by message ID", MESSAGE, "delete_message(receiver_id='USR002', message_id=1)",
           "Error during execution: MessageAPI.delete_message() got an unexpected keyword argument 'message_id'",
           "delete_message has no message_id argument, although its description mentions one: it always deletes the "
           "latest message sent to receiver_id. Call it with receiver_id only.",
           "message.delete_takes_no_message_id", setup=LOGIN, releases=(PAPER_RELEASE,)),
    Golden("contact exists", MESSAGE, "add_contact(user_name='Daniel')",
           '{"error": "User name \'Daniel\' already exists."}',
           "'Daniel' is already a user in the workspace, so there is nothing to add. If you need their user ID, get it "
           "with get_user_id(user='Daniel').",
           "message.contact_exists"),
    # In this task (and 27 others) the user IDs start above user_count, so the next generated ID is taken.
    Golden("generated ID taken", MESSAGE, "add_contact(user_name='Frank')",
           '{"error": "User ID \'USR005\' already exists."}',
           "add_contact picks the new user's ID itself, and the ID it picked ('USR005') already belongs to another "
           "user, so 'Frank' was not added. Each attempt picks the next ID, so calling add_contact again with the "
           "same name tries a new one.",
           "message.generated_id_taken", scenario="multi_turn_base_72"),
    # The inbox of this task stores messages as lists, which search_messages cannot lowercase.
    Golden("inbox search breaks", MESSAGE, "search_messages(keyword='trip')",
           "Error during execution: 'list' object has no attribute 'lower'",
           "search_messages cannot search this inbox: some stored messages are lists rather than plain text, and the "
           "search fails on them whatever the keyword. Read them with view_messages_sent instead and look for the "
           "keyword yourself.",
           "message.search_unreadable_inbox", scenario="multi_turn_base_72"),
]


@pytest.mark.parametrize(("release", "case"), hint_golden.by_release(CASES), ids=hint_golden.case_id)
def test_golden_hint(release: str, case: Golden):
    hint_golden.check(__file__, CASES, release, case)


@pytest.mark.parametrize(("call", "official"), [
    ("get_user_id(user=['Bob'])", "unhashable type: 'list'"),
    ("send_message(receiver_id=2, message='Hi')", "Receiver ID '2' not found."),
    ("search_messages(keyword=5)", "'int' object has no attribute 'lower'"),
])
def test_wrongly_typed_inputs_are_left_to_schema_rules(call: str, official: str):
    result, kind = hint_golden.hint_kind(MESSAGE, call, setup=LOGIN)
    assert error_message(result) == official
    assert kind == "schema.wrong_type"


if __name__ == "__main__":
    hint_golden.main(CASES)
