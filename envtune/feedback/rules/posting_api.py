"""Hints for the Twitter-like posting service (TwitterAPI), for both pinned releases.

Posting, retweeting, commenting and (un)following need `authenticate_twitter` first. In release
2025.6.8 `comment` reports a missing login with a bare Python error ("exceptions must derive from
BaseException": the backend raises a dict), so that case is recognised from the login state. Unknown
tweet IDs point to the tools that find tweets; hints never list IDs, user names or credentials.
"""

from __future__ import annotations

import re

from envtune.feedback.core import FeedbackContext, hint_rule, login_step

_NEEDS_LOGIN = ("post_tweet", "retweet", "comment", "follow_user", "list_all_following", "unfollow_user")
_TAKES_TWEET_ID = ("retweet", "comment", "mention", "get_tweet", "get_tweet_comments")



def _login_step(context: FeedbackContext) -> str:
    """The login step, worded for Twitter: log in with the user's own credentials, then repeat the call."""
    return login_step(context, "authenticate_twitter", (
        "Log in first with authenticate_twitter, using the username and password the user gave you (ask the user for "
        f"them if you do not have them), then call '{context.call.name}' again."))


@hint_rule("posting.not_authenticated", "state_prerequisite", r"^User not authenticated\. Please authenticate before",
           tools=_NEEDS_LOGIN)
def not_authenticated(context: FeedbackContext, match: re.Match) -> str:
    return f"You are not logged in to Twitter, which '{context.call.name}' needs. {_login_step(context)}"


@hint_rule("posting.comment_not_authenticated", "state_prerequisite", r"^exceptions must derive from BaseException$",
           tools=("comment",))
def comment_not_authenticated(context: FeedbackContext, match: re.Match) -> str | None:
    if context.instance.authenticated:
        return None
    return f"This error means you are not logged in to Twitter, which commenting needs. {_login_step(context)}"


@hint_rule("posting.unknown_tweet_id", "resource_unavailable", r"^Tweet with ID .* not found\.$", tools=_TAKES_TWEET_ID)
def unknown_tweet_id(context: FeedbackContext, match: re.Match) -> str:
    ways = []
    finders = context.available("get_user_tweets", "search_tweets")
    if finders:
        ways.append(f"find the tweet and its 'id' with {' or '.join(finders)}")
    if context.available("post_tweet"):
        ways.append("use the id that post_tweet returned for a tweet posted in this conversation")
    ways.append("ask the user for the tweet ID")
    return f"There is no tweet with ID {context.arguments.get('tweet_id')!r}. To get a valid ID, {', or '.join(ways)}."


@hint_rule("posting.tweet_without_mentions", "resource_unavailable", r"^'mentions'$", tools=("mention",))
def tweet_without_mentions(context: FeedbackContext, match: re.Match) -> str | None:
    tweet_id = context.arguments.get("tweet_id")
    tweet = context.instance.tweets.get(tweet_id) if isinstance(tweet_id, int) else None
    if not isinstance(tweet, dict) or "mentions" in tweet:
        return None
    return (f"Tweet {tweet_id!r} was stored without a list of mentions, so mention cannot "
            "add users to it, whatever the usernames. Tell the user the mention could not be added to this tweet.")


@hint_rule("posting.authentication_failed", "parameter_constraint", r"^authentication_status is false$",
           tools=("authenticate_twitter",))
def authentication_failed(context: FeedbackContext, match: re.Match) -> str:
    """authenticate_twitter answers wrong credentials with a false status rather than an error."""
    return ("The username or password does not match this Twitter account, so you are still logged out. Use "
            "exactly the username and password the user gave you (both are case-sensitive); if you do not "
            "have them, ask the user.")


# The order they are tried in.
RULES = (not_authenticated, comment_not_authenticated, unknown_tweet_id, tweet_without_mentions, authentication_failed)
