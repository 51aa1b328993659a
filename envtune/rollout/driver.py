"""The episode driver: the one place that turns a policy's output into episode steps.

Every caller that plays episodes (the lock-step rollout engine for TRL and local evaluation, the
veRL agent loop, the endpoint player of `envtune eval`) keeps only its own way of asking for the
next reply; the rules live here.

- `ChatDriver` (message level, for chat endpoints): feed each reply message, get the environment's
  messages back, count the tokens the endpoint reports.
- `TokenDriver` (token level, for trainers): the episode as one token sequence, `prompt_ids` then
  `completion_ids`, with `loss_mask` marking the model's tokens (1) and the environment's (0, no
  loss), and the model's log-probs when the generator reports them. It owns the completion budget,
  narrowed, when it is given the model's context, to what the context leaves after the prompt (a
  server refuses a request that fills it): each reply may use at most what is left (`reply_limit`);
  a reply that does not fit is cut at the budget and not played; a reply that does not end with the
  chat template's end token (the tokenizer's) is closed with it, without loss: one cut by its own
  token cap, or one the model ended with another of its end tokens (`end_token_ids`, e.g.
  <|endoftext|>; the sequence keeps that token as generated, the reply's message leaves it out);
  environment tokens that do not fit are cut at the budget. Either way the episode ends `truncated`
  and is scored on the turns it closed.

The caller renders environment messages as tokens (`ChatRenderer.environment_delta` here, veRL's
continuous-token helpers on veRL), so the model's own tokens are kept exactly as generated and every
prefix is what the chat template renders for the messages so far (apart from such other end tokens).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from envtune.env.episode import Episode, StepResult
from envtune.env.record import EpisodeRecord
from envtune.errors import EnvtuneError

Message = dict[str, Any]


@dataclass
class Rollout:
    """One played episode as training data, plus what a person needs to read it."""

    task_id: str
    prompt_ids: list[int]
    completion_ids: list[int]
    loss_mask: list[int]  # 1: a model token (trained on); 0: an environment token
    logprobs: list[float] | None  # per completion token (0.0 on environment tokens); None if not reported
    messages: list[Message]
    record: EpisodeRecord
    reward: float  # the episode's configured (stage) reward
    turn_starts: tuple[int, ...] = ()  # index in `messages` of each played turn's first request message
    token_turns: tuple[int, ...] = ()  # per completion token, the turn being played when it was added

    @property
    def truncated(self) -> bool:
        return self.record.truncated

    @property
    def model_tokens(self) -> int:
        return self.record.model_tokens


class ChatDriver:
    """One episode played message by message (an endpoint that answers with chat messages)."""

    def __init__(self, episode: Episode):
        self.episode = episode
        self.messages: list[Message] = episode.reset()
        self.turn_starts = [1]  # where each turn's request begins in `messages` (the first after the system prompt)
        self.truncated = False
        self.model_tokens = 0
        self.context_tokens = 0  # the longest request so far, prompt and completion

    @property
    def done(self) -> bool:
        return self.episode.done or self.truncated

    def count_tokens(self, prompt_tokens: int, completion_tokens: int) -> None:
        """Token usage of one request, as the endpoint reports it."""
        self.model_tokens += completion_tokens
        self.context_tokens = max(self.context_tokens, prompt_tokens + completion_tokens)

    def reply(self, message: Message) -> StepResult:
        """Play one reply: the episode steps and both the reply and its answer join the messages."""
        step = self.episode.step(message)
        self.messages = [*self.messages, message, *step.messages]
        if step.request:
            self.turn_starts.append(len(self.messages) - len(step.request))
        return step

    def record(self) -> EpisodeRecord:
        return self.episode.record.with_tokens(self.model_tokens, self.context_tokens, self.truncated)


@dataclass(frozen=True)
class Answer:
    """The environment's messages after a reply, and the conversation they follow (which ends with
    that reply): what a chat template needs to render them as tokens."""

    before: list[Message]
    messages: list[Message]


@dataclass
class _Tokens:
    completion: list[int] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    logprobs: list[float] | None = field(default_factory=list)
    turns: list[int] = field(default_factory=list)  # a reply's tokens belong to the turn it plays


class TokenDriver(ChatDriver):
    """One episode as a token sequence within a completion budget (see the module docstring)."""

    def __init__(self, episode: Episode, prompt_ids: Sequence[int], tokenizer, max_completion_tokens: int,
                 end_token_ids: Sequence[int] = (), context_tokens: int | None = None):
        if episode.config.protocol == "native":
            raise EnvtuneError("token-in/token-out rollouts support the envtune and prompt protocols, not native: "
                               "native tool calls need a server's tool parser (evaluate them through an endpoint; "
                               "train with protocol envtune or prompt)")
        super().__init__(episode)
        self.prompt_ids = list(prompt_ids)
        self.tokenizer = tokenizer
        self.eos_token_id = tokenizer.eos_token_id  # the chat template's end of a turn
        self.end_token_ids = {self.eos_token_id, *end_token_ids}  # any of them ends a reply
        self.budget = max_completion_tokens
        if context_tokens is not None:  # the model's context: the whole sequence must stay within it
            self.budget = min(self.budget, context_tokens - len(self.prompt_ids))
        self._tokens = _Tokens()

    # ----- what the generator needs -----------------------------------------------------------
    @property
    def token_ids(self) -> list[int]:
        """The whole sequence so far: the next generation request."""
        return self.prompt_ids + self._tokens.completion

    def reply_limit(self, max_new_tokens: int) -> int:
        """Tokens the next reply may have: its own cap, or what is left of the budget (and so of the
        context). When nothing is left, the episode ends here, truncated, and the limit is 0."""
        room = self.budget - len(self._tokens.completion)
        if room <= 0:
            self.truncated = True
        return max(0, min(max_new_tokens, room))

    # ----- what the generator and the environment add ------------------------------------------
    def add_reply(self, token_ids: Sequence[int], logprobs: Sequence[float] | None = None) -> Answer | None:
        """Append the model's reply and play it. Returns the environment's answer for the caller to
        render into `add_environment`, or None when the episode is over (done or truncated)."""
        token_ids = list(token_ids)
        if not self._extend(token_ids, mask=1, logprobs=logprobs):
            return None
        ended = bool(token_ids) and token_ids[-1] in self.end_token_ids
        if token_ids[-1:] != [self.eos_token_id] and not self._extend([self.eos_token_id], mask=0):  # close it
            return None
        body = token_ids[:-1] if ended else token_ids
        reply = {"role": "assistant", "content": self.tokenizer.decode(body, skip_special_tokens=False)}
        before = [*self.messages, reply]
        step = self.reply(reply)
        return None if step.done else Answer(before, step.messages)

    def add_environment(self, token_ids: Sequence[int], replaced: int = 0) -> None:
        """Append the environment's tokens after the model's end token, up to the budget. `replaced`
        trailing tokens are dropped first (some templates rewrite the junction of two messages)."""
        if replaced:
            tokens = self._tokens
            del tokens.completion[-replaced:], tokens.mask[-replaced:], tokens.turns[-replaced:]
            if tokens.logprobs is not None:
                del tokens.logprobs[-replaced:]
        self._extend(list(token_ids), mask=0)

    def _extend(self, token_ids: list[int], mask: int, logprobs: Sequence[float] | None = None) -> bool:
        """Append tokens within the budget; False (and truncated) when they did not all fit."""
        tokens = self._tokens
        room = self.budget - len(tokens.completion)
        kept = token_ids[:room]
        tokens.completion += kept
        tokens.mask += [mask] * len(kept)
        tokens.turns += [self.episode.turn] * len(kept)
        if tokens.logprobs is not None:
            if mask == 0:
                tokens.logprobs += [0.0] * len(kept)
            elif logprobs is None or len(logprobs) != len(token_ids):
                tokens.logprobs = None  # a reply without log-probs: none are reported for the episode
            else:
                tokens.logprobs += list(logprobs[:room])
        if len(token_ids) > room:
            self.truncated = True
            return False
        return True

    # ----- the result ---------------------------------------------------------------------------
    def record(self) -> EpisodeRecord:
        tokens = self._tokens
        return self.episode.record.with_tokens(
            model_tokens=sum(tokens.mask), total_tokens=len(self.prompt_ids) + len(tokens.completion),
            truncated=self.truncated,
        )

    def rollout(self) -> Rollout:
        record = self.record()
        tokens = self._tokens
        return Rollout(
            self.episode.task.id, self.prompt_ids, list(tokens.completion), list(tokens.mask),
            None if tokens.logprobs is None else list(tokens.logprobs), self.messages, record,
            record.reward(self.episode.config.reward), tuple(self.turn_starts), tuple(tokens.turns),
        )
