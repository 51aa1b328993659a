"""Golden hints for logins that report failure without an `error` key (a false status, maybe a
reason), on both releases. The travel verification cases live with the other travel hints."""

from __future__ import annotations

import hint_golden
import pytest
from hint_golden import Golden

from envtune.feedback import error_message

FIND_ID = "get_user_id turns a user name into the user's ID (list_users shows every user name). Then log in with that ID."


CASES = [
    Golden("message login with an unknown id", ("MessageAPI",), "message_login(user_id='USR999')",
           '{"login_status": false, "message": "User ID \'USR999\' not found."}',
           f"No user has the ID 'USR999', so nobody is logged in. {FIND_ID}", "message.login_failed"),
    Golden("message login with a name", ("MessageAPI",), "message_login(user_id='Alice')",
           '{"login_status": false, "message": "User ID \'Alice\' not found."}',
           f"message_login takes a user ID, and 'Alice' is a user name. {FIND_ID}", "message.login_failed"),
    Golden("twitter login with a wrong password", ("TwitterAPI",), "authenticate_twitter(username='john', password='nope')",
           '{"authentication_status": false}',
           "The username or password does not match this Twitter account, so you are still logged out. Use exactly "
           "the username and password the user gave you (both are case-sensitive); if you do not have them, ask the user.",
           "posting.authentication_failed"),
]


@pytest.mark.parametrize(("release", "case"), hint_golden.by_release(CASES), ids=hint_golden.case_id)
def test_golden_soft_failure_hints(release, case):
    hint_golden.check(__file__, CASES, release, case)


def test_status_queries_are_not_failures():
    assert error_message('{"login_status": false}', "message_get_login_status") is None
    assert error_message('{"login_status": false}', "message_login") == "login_status is false"


if __name__ == "__main__":
    hint_golden.main(CASES)
