"""Hints for the messaging workspace (MessageAPI), for both pinned releases.

Users have a name (what people say) and an ID (what every tool but `get_user_id` and `add_contact`
takes); most failures come from mixing the two, or from acting before `message_login`. The backend
words some failures misleadingly: `delete_message` says "Receiver ID ... not found" when there is
simply no message to that receiver left. Hints point to `get_user_id` / `list_users` /
`view_messages_sent` to find names, IDs and messages, and never list them.
"""

from __future__ import annotations

import re

from envtune.feedback.core import FeedbackContext, hint_rule

_NEEDS_LOGIN = ("send_message", "delete_message", "view_messages_sent", "search_messages", "get_message_stats")
_TAKES_RECEIVER_ID = ("send_message", "delete_message")
# send_message quotes the ID in its error, delete_message does not.
_RECEIVER_NOT_FOUND = r"^Receiver ID .* not found\.$"
_ADD_CONTACT = " If the person is not in the workspace yet, add_contact adds them and returns their new ID."



def _is_user_name(context: FeedbackContext, value: object) -> bool:
    return isinstance(value, str) and value in context.instance.user_map


def _is_user_id(context: FeedbackContext, value: object) -> bool:
    return isinstance(value, str) and value in context.instance.user_map.values()


def _find_id_step(context: FeedbackContext) -> str:
    """How to find a user's ID, for the lookup tools available now."""
    if context.available("get_user_id"):
        names = " (list_users shows every user name)" if context.available("list_users") else ""
        return f"get_user_id turns a user name into the user's ID{names}."
    return "Ask the user for the ID if you cannot find it in earlier results."


@hint_rule("message.not_logged_in", "state_prerequisite", r"^No user is currently logged in\.$", tools=_NEEDS_LOGIN)
def not_logged_in(context: FeedbackContext, match: re.Match) -> str:
    tool = context.call.name
    if not context.available("message_login"):
        return (f"'{tool}' needs a logged-in user, and no tool to log in is available right now, so tell the user "
                "this cannot be done yet.")
    return (f"No one is logged in to the messaging app, which '{tool}' needs. Log in first with message_login, "
            f"which takes the user ID of the person you act for, then call '{tool}' again. {_find_id_step(context)}")


@hint_rule("message.id_instead_of_name", "format_mismatch", r"^User '.*' not found in the workspace\.$",
           tools=("get_user_id",))
def id_instead_of_name(context: FeedbackContext, match: re.Match) -> str | None:
    user = context.arguments.get("user")
    if not _is_user_id(context, user):
        return None
    return (f"{user!r} is already a user ID, not a user name: get_user_id maps names to IDs. Use {user!r} "
            "directly wherever a user ID is needed.")


@hint_rule("message.unknown_user_name", "resource_unavailable", r"^User '.*' not found in the workspace\.$",
           tools=("get_user_id",))
def unknown_user_name(context: FeedbackContext, match: re.Match) -> str:
    hint = (f"There is no user named {context.arguments.get('user')!r} in the workspace; names must match exactly, "
            "capitals included.")
    if context.available("list_users"):
        hint += " list_users shows every user name."
    return hint + (_ADD_CONTACT if context.available("add_contact") else "")


@hint_rule("message.name_instead_of_id", "format_mismatch", _RECEIVER_NOT_FOUND, tools=_TAKES_RECEIVER_ID)
def name_instead_of_id(context: FeedbackContext, match: re.Match) -> str | None:
    receiver = context.arguments.get("receiver_id")
    if not _is_user_name(context, receiver):
        return None
    lookup = (f"Get it with get_user_id(user={receiver!r})" if context.available("get_user_id")
              else "Find it in earlier results or ask the user")
    return (f"{receiver!r} is a user name, but receiver_id takes a user ID. {lookup}, then call "
            f"'{context.call.name}' again with that ID.")


@hint_rule("message.unknown_user_id", "resource_unavailable", _RECEIVER_NOT_FOUND, tools=_TAKES_RECEIVER_ID)
def unknown_user_id(context: FeedbackContext, match: re.Match) -> str | None:
    receiver = context.arguments.get("receiver_id")
    if _is_user_id(context, receiver) or _is_user_name(context, receiver):
        return None
    hint = f"No user in the workspace has the ID {receiver!r}. {_find_id_step(context)}"
    if context.call.name == "send_message" and context.available("add_contact"):
        hint += _ADD_CONTACT
    return hint


@hint_rule("message.no_message_to_delete", "resource_unavailable", _RECEIVER_NOT_FOUND, tools=("delete_message",))
def no_message_to_delete(context: FeedbackContext, match: re.Match) -> str | None:
    receiver = context.arguments.get("receiver_id")
    if not _is_user_id(context, receiver):
        return None
    hint = (f"The user ID {receiver!r} exists, but there is no message to that receiver left to delete: "
            "delete_message removes the latest message sent to receiver_id.")
    if context.available("view_messages_sent"):
        hint += " view_messages_sent shows the messages by receiver."
    return hint


@hint_rule("message.delete_takes_no_message_id", "parameter_constraint",
           r"unexpected keyword argument 'message_id'", tools=("delete_message",))
def delete_takes_no_message_id(context: FeedbackContext, match: re.Match) -> str:
    # Only reached where the docs list message_id (release 2025.6.8); otherwise the schema rule answers.
    return ("delete_message has no message_id argument, although its description mentions one: it always deletes "
            "the latest message sent to receiver_id. Call it with receiver_id only.")


@hint_rule("message.contact_exists", "parameter_constraint", r"^User name '.*' already exists\.$",
           tools=("add_contact",))
def contact_exists(context: FeedbackContext, match: re.Match) -> str:
    name = context.arguments.get("user_name")
    hint = f"{name!r} is already a user in the workspace, so there is nothing to add."
    if context.available("get_user_id"):
        hint += f" If you need their user ID, get it with get_user_id(user={name!r})."
    return hint


@hint_rule("message.generated_id_taken", "resource_unavailable", r"^User ID '(?P<id>.*)' already exists\.$",
           tools=("add_contact",))
def generated_id_taken(context: FeedbackContext, match: re.Match) -> str:
    return (f"add_contact picks the new user's ID itself, and the ID it picked ('{match['id']}') already belongs to "
            f"another user, so {context.arguments.get('user_name')!r} was not added. Each attempt picks the next ID, "
            "so calling add_contact again with the same name tries a new one.")


@hint_rule("message.search_unreadable_inbox", "resource_unavailable", r"object has no attribute 'lower'$",
           tools=("search_messages",))
def search_unreadable_inbox(context: FeedbackContext, match: re.Match) -> str | None:
    stored = (content for message in context.instance.inbox for content in message.values())
    if not isinstance(context.arguments.get("keyword"), str) or all(isinstance(content, str) for content in stored):
        return None
    read = ("Read them with view_messages_sent instead and look for the keyword yourself."
            if context.available("view_messages_sent") else "Tell the user the search is not possible here.")
    return ("search_messages cannot search this inbox: some stored messages are lists rather than plain text, and "
            f"the search fails on them whatever the keyword. {read}")


@hint_rule("message.login_failed", "dependency_missing", r"^User ID .* not found\.$", tools=("message_login",))
def login_failed(context: FeedbackContext, match: re.Match) -> str:
    """message_login answers a wrong ID with a false login status rather than an error."""
    given = context.arguments.get("user_id")
    if _is_user_name(context, given):
        return (f"message_login takes a user ID, and {given!r} is a user name. {_find_id_step(context)} "
                "Then log in with that ID.")
    return f"No user has the ID {given!r}, so nobody is logged in. {_find_id_step(context)} Then log in with that ID."


# The order they are tried in.
RULES = (
    not_logged_in, id_instead_of_name, unknown_user_name, name_instead_of_id, unknown_user_id, no_message_to_delete,
    delete_takes_no_message_id, contact_exists, generated_id_taken, search_unreadable_inbox, login_failed,
)
