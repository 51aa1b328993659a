"""Golden hints for TwitterAPI: each failing call runs on a real session of both releases, and its
official result and augmented text must be exactly these. Without a scenario the backend's default
account is used: user 'john', not authenticated, no tweets yet."""

from __future__ import annotations

import hint_golden
import pytest
from hint_golden import DEFAULT_RELEASE, PAPER_RELEASE, Golden

from envtune.feedback import error_message

TWITTER = ("TwitterAPI",)
AUTHENTICATE = ("authenticate_twitter(username='john', password='john123')",)
LOG_IN = ("Log in first with authenticate_twitter, using the username and password the user gave you (ask the user "
          "for them if you do not have them), then call '{tool}' again.")
NO_LOGIN_TOOL = "No tool to log in is available right now, so tell the user this cannot be done yet."


def unauthenticated(action: str) -> str:
    return f'{{"error": "User not authenticated. Please authenticate before {action}."}}'


CASES = [
    *(
        Golden(f"not authenticated: {tool}", TWITTER, call, unauthenticated(action),
               f"You are not logged in to Twitter, which '{tool}' needs. {LOG_IN.format(tool=tool)}",
               "posting.not_authenticated", releases=releases)
        for tool, call, action, releases in [
            ("post_tweet", "post_tweet(content='Hello')", "posting", hint_golden.RELEASES),
            ("retweet", "retweet(tweet_id=0)", "retweeting", hint_golden.RELEASES),
            ("comment", "comment(tweet_id=0, comment_content='Nice')", "commenting", (DEFAULT_RELEASE,)),
            ("follow_user", "follow_user(username_to_follow='alice')", "following", hint_golden.RELEASES),
            ("list_all_following", "list_all_following()", "listing following", hint_golden.RELEASES),
            ("unfollow_user", "unfollow_user(username_to_unfollow='alice')", "unfollowing", hint_golden.RELEASES),
        ]
    ),
    Golden("not authenticated, no login tool", TWITTER, "list_all_following()", unauthenticated("listing following"),
           f"You are not logged in to Twitter, which 'list_all_following' needs. {NO_LOGIN_TOOL}",
           "posting.not_authenticated", held_out=("authenticate_twitter",)),
    # In 2025.6.8 `comment` raises its error dict instead of returning it.
    Golden("not authenticated: comment (2025.6.8)", TWITTER, "comment(tweet_id=0, comment_content='Nice')",
           "Error during execution: exceptions must derive from BaseException",
           "This error means you are not logged in to Twitter, which commenting needs. "
           + LOG_IN.format(tool="comment"),
           "posting.comment_not_authenticated", releases=(PAPER_RELEASE,)),
    *(
        Golden(f"unknown tweet: {tool}", TWITTER, call, '{"error": "Tweet with ID 7 not found."}',
               "There is no tweet with ID 7. To get a valid ID, find the tweet and its 'id' with get_user_tweets or "
               "search_tweets, or use the id that post_tweet returned for a tweet posted in this conversation, or ask "
               "the user for the tweet ID.",
               "posting.unknown_tweet_id", setup=AUTHENTICATE)
        for tool, call in [
            ("retweet", "retweet(tweet_id=7)"),
            ("comment", "comment(tweet_id=7, comment_content='Nice')"),
            ("mention", "mention(tweet_id=7, mentioned_usernames=['@alice'])"),
            ("get_tweet", "get_tweet(tweet_id=7)"),
            ("get_tweet_comments", "get_tweet_comments(tweet_id=7)"),
        ]
    ),
    Golden("unknown tweet, no tools to find one", TWITTER, "retweet(tweet_id=7)",
           '{"error": "Tweet with ID 7 not found."}',
           "There is no tweet with ID 7. To get a valid ID, ask the user for the tweet ID.",
           "posting.unknown_tweet_id", setup=AUTHENTICATE, held_out=("get_user_tweets", "search_tweets", "post_tweet")),
    # Tweet 4 of this task's scenario has no "mentions" key.
    Golden("tweet without mentions", TWITTER, "mention(tweet_id=4, mentioned_usernames=['@mike53'])",
           "Error during execution: 'mentions'",
           "Tweet 4 was stored without a list of mentions, so mention cannot add users to it, whatever the usernames. "
           "Tell the user the mention could not be added to this tweet.",
           "posting.tweet_without_mentions", scenario="multi_turn_miss_param_76"),
]


@pytest.mark.parametrize(("release", "case"), hint_golden.by_release(CASES), ids=hint_golden.case_id)
def test_golden_hint(release: str, case: Golden):
    hint_golden.check(__file__, CASES, release, case)


@pytest.mark.parametrize(("call", "official"), [
    ("get_tweet(tweet_id='0')", "Tweet with ID 0 not found."),
    ("search_tweets(keyword=5)", "'int' object has no attribute 'lower'"),
])
def test_wrongly_typed_inputs_are_left_to_schema_rules(call: str, official: str):
    # Tweet 0 exists: the official error blames the ID when only its type is wrong.
    result, kind = hint_golden.hint_kind(TWITTER, call, setup=(*AUTHENTICATE, "post_tweet(content='Hello')"))
    assert error_message(result) == official
    assert kind == "schema.wrong_type"


if __name__ == "__main__":
    hint_golden.main(CASES)
