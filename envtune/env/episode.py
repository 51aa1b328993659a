"""One BFCL multi-turn task as an episode a chat policy talks to.

    episode = Episode(task, EpisodeConfig(feedback="augmented"))
    messages = episode.reset()                 # system prompt + first user request
    while not episode.done:
        reply = policy(messages)               # {"role": "assistant", "content": ...}
        messages.append(reply)
        step = episode.step(reply)             # environment messages to append, done, record
        messages += step.messages
    episode.reward()                           # the configured reward of the episode record

Turn rules come in two sets. `training` (the curriculum's): a turn closes on an answer (or any
non-call reply in the prompt and native protocols) or after `max_steps_per_turn` replies, and is then
scored with the official per-turn checks; a turn whose ground truth is empty (the model should ask
or decline) allows one reply: an answer scores 1, a tool call scores 0 and is not carried out, and
the next request starts with a warning. `official` (BFCL's inference loop, step for step): any reply
without executable calls (an answer, or one that does not decode) closes the turn, calls run on
every turn, and the entry is force-quit once a turn has executed more than `max_steps_per_turn`
call steps (BFCL: 20); the turn that hit the limit stays part of the result and later turns are not
played. Held-out tools stay hidden until their turn, which announces them with their docs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from envtune.bfcl.arguments import check_arguments
from envtune.bfcl.calls import DEFAULT_LIMITS, CallLimits
from envtune.bfcl.scoring import EntryVerdict, TurnChecker, TurnVerdict, score_entry
from envtune.bfcl.tasks import Task, to_openai_tool
from envtune.env import prompts
from envtune.env.protocols import PROTOCOLS, Message, ParsedResponse, parse, result_messages
from envtune.env.record import EpisodeRecord, HintUse
from envtune.env.rewards import REWARDS
from envtune.feedback import DEFAULT_RULES, Rule, augment
from envtune.errors import EnvtuneError

FEEDBACK_MODES = ("standard", "augmented")
TURN_RULES = ("training", "official")


@dataclass(frozen=True)
class EpisodeConfig:
    """How an episode talks and scores. Defaults: the envtune protocol, standard feedback, the
    progress reward and the paper's 5 replies per turn under the training rules (the official
    evaluation allows 20 call steps)."""

    feedback: str = "standard"
    prompt: str = "basic"
    protocol: str = "envtune"
    max_steps_per_turn: int = 5
    reward: str = "progress"
    block_held_out_tools: bool = False  # True hides them until their turn (the official harness runs them)
    # "training": the curriculum's rules (one reply on ask turns, calls there not run; the step limit
    # counts replies and closes the turn). "official": BFCL's inference loop (ask turns run like any
    # other; a reply without executable calls closes the turn; the step limit counts executed call
    # steps, and going past it force-quits the entry after that turn).
    turn_rules: str = "training"

    def __post_init__(self):
        choices = {
            "feedback": FEEDBACK_MODES, "prompt": prompts.PROMPT_VARIANTS,
            "protocol": PROTOCOLS, "reward": tuple(REWARDS), "turn_rules": TURN_RULES,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise EnvtuneError(f"{name}={getattr(self, name)!r} is not valid; choose from {', '.join(allowed)}")
        if self.prompt == "bfcl" and self.protocol != "prompt":
            raise EnvtuneError("prompt='bfcl' is BFCL's prompt-mode text; use it with protocol='prompt'")
        if not isinstance(self.max_steps_per_turn, int) or self.max_steps_per_turn < 1:
            raise EnvtuneError(f"max_steps_per_turn must be a positive integer, not {self.max_steps_per_turn!r}")


@dataclass
class StepResult:
    """The environment's answer to one reply: `feedback` (tool results or a format error), then,
    when the reply closed a turn, `request` (the next user turn). Append `messages`, both in order."""

    feedback: list[Message]
    request: list[Message]
    closed_turn: TurnVerdict | None  # the verdict of the turn this reply closed, if it closed one
    done: bool
    record: EpisodeRecord  # the episode after this reply

    @property
    def messages(self) -> list[Message]:
        return self.feedback + self.request


class Episode:
    """An independent episode over its own backends; `close()` (or `with`) frees them."""

    def __init__(
        self, task: Task, config: EpisodeConfig = EpisodeConfig(), limits: CallLimits = DEFAULT_LIMITS,
        *, rules: Sequence[Rule] = DEFAULT_RULES,
    ):
        self.task = task
        self.config = config
        self.rules = rules  # the hint rules of augmented feedback
        self.checker = TurnChecker(task, limits)
        self.turn = 0
        self.step_in_turn = 0
        self.done = False
        self.force_quit = False  # official rules: a turn went past the step limit, later turns were not played
        self.turn_verdicts: list[TurnVerdict] = []
        self.responses = 0
        self.format_violations = 0
        self.valid_calls = 0
        self.invalid_calls = 0
        self.hints: list[HintUse] = []
        self.hint_rule_errors = 0  # hint rules that raised (each is also warned)
        self._called_when_asking = False
        self._docs_turn, self._docs = -1, {}
        # turn -> step -> call strings of the calls that ran: what the official checker would score
        self.trajectory: list[list[list[str]]] = [[] for _ in task.ground_truth]
        self._hidden = {name for names in task.held_out_tools.values() for name in names}
        if config.block_held_out_tools:
            self.checker.session.hide(self._hidden)

    # ----- what the policy sees -------------------------------------------------------------
    def tool_docs(self) -> list[dict]:
        """Tools available at the current turn (BFCL doc form)."""
        return self.task.tool_docs(self.turn)

    def _docs_now(self) -> dict[str, dict]:
        """Tool docs of the current turn by name, built once per turn (read only)."""
        if self._docs_turn != self.turn:
            self._docs = {doc["name"]: doc for doc in self.task.tool_docs(self.turn)}
            self._docs_turn = self.turn
        return self._docs

    def tools(self) -> list[dict]:
        """Tools available at the current turn in OpenAI form (for chat templates and APIs)."""
        return [to_openai_tool(doc) for doc in self.tool_docs()]

    def reset(self) -> list[Message]:
        """The opening messages: the system prompt with the first turn's tools, and the first request."""
        system = prompts.system_prompt(self.config.protocol, self.config.prompt, self.task.tool_docs(0), self.task.release)
        return [{"role": "system", "content": system}, *self._turn_messages()]

    def _turn_messages(self) -> list[Message]:
        returning = self.task.held_out_tools.get(self.turn, ())
        if returning:
            docs = [doc for doc in self.tool_docs() if doc["name"] in returning]
            messages = [{"role": "user", "content": prompts.new_tools_message(docs, self.config.prompt, self.task.release)}]
        else:
            messages = [dict(message) for message in self.task.turns[self.turn]]
        if self._called_when_asking:
            messages[0]["content"] = f"{prompts.CALLED_WHEN_ASKING}\n\n{messages[0]['content']}"
            self._called_when_asking = False
        return messages

    # ----- one assistant reply -------------------------------------------------------------
    def step(self, message: Message | str) -> StepResult:
        """Feed one assistant reply; get the environment's messages, whether the episode is done,
        and the episode's record after it."""
        if self.done:
            raise RuntimeError(f"episode {self.task.id} is done; start a new one")
        if isinstance(message, str):
            message = {"role": "assistant", "content": message}
        response = parse(self.config.protocol, message)
        self.responses += 1
        self.step_in_turn += 1
        if response.kind == "invalid":
            self.format_violations += 1
        self._count_calls(response)

        if self.config.turn_rules == "official":
            return self._official_step(response)
        if not self.task.ground_truth[self.turn]:
            return self._reply_to_ask_turn(response)
        feedback: list[Message] = []
        if response.kind == "invalid":
            feedback.append({"role": "user", "content": prompts.format_error(self.config.protocol, response.error)})
        elif response.kind == "calls":
            feedback += self._run_calls(response)
        if response.kind == "answer" or self.step_in_turn >= self.config.max_steps_per_turn:
            return self._close_turn(self.checker.finish_turn(), feedback)
        return StepResult(feedback, [], None, self.done, self.record)

    def _official_step(self, response: ParsedResponse) -> StepResult:
        """BFCL's inference loop: a reply without executable calls ends the turn; executed call steps
        count, and the step after the limit ends the entry once this turn is scored."""
        if response.kind != "calls":
            return self._close_turn(self._official_turn_verdict(), [])
        feedback = self._run_calls(response)
        if len(self.trajectory[self.turn]) > self.config.max_steps_per_turn:
            self.force_quit = True
            return self._close_turn(self._official_turn_verdict(), feedback)
        return StepResult(feedback, [], None, self.done, self.record)

    def _official_turn_verdict(self) -> TurnVerdict:
        verdict = self.checker.finish_turn()
        if not self.task.ground_truth[self.turn]:  # not checked officially; it succeeds when the model made no call
            made_calls = bool(self.trajectory[self.turn])
            verdict = TurnVerdict(
                self.turn, checked=False, passed=not made_calls,
                reason=f"turn {self.turn} needed an answer (ask or decline), got calls" if made_calls else None,
            )
        return verdict

    def _reply_to_ask_turn(self, response: ParsedResponse) -> StepResult:
        """Turns with empty ground truth: one reply, an answer scores 1, calls score 0 unexecuted."""
        if response.kind == "calls":
            self._called_when_asking = True
        self.checker.finish_turn()  # runs the (empty) ground truth, keeping the checker in step
        answered = response.kind == "answer"
        verdict = TurnVerdict(
            self.turn, checked=False, passed=answered,
            reason=None if answered else f"turn {self.turn} needed an answer (ask or decline), got a {response.kind} reply",
        )
        return self._close_turn(verdict, [])

    def _call_text(self, call) -> str:
        """A call as the official checker consumes it (a Python call string)."""
        described = self.checker.session.describe(call)
        try:
            return described.to_python() if described is not None else str(call)
        except AttributeError:  # arguments that are not an object (native protocol)
            return str(call)

    def _count_calls(self, response: ParsedResponse) -> None:
        docs = self._docs_now()
        for call in response.calls:
            described = self.checker.session.describe(call)
            doc = docs.get(described.name) if described else None
            if doc is not None and not check_arguments(doc, described.arguments):
                self.valid_calls += 1
            else:
                self.invalid_calls += 1

    def _run_calls(self, response: ParsedResponse) -> list[Message]:
        results = self.checker.run_step(list(response.calls))
        self.trajectory[self.turn].append([self._call_text(call) for call in response.calls])
        if self.config.feedback == "augmented":
            docs = self._docs_now()
            held_out = {
                name: turn for turn, names in self.task.held_out_tools.items() if turn > self.turn for name in names
            }
            shown = []
            for call, result in zip(response.calls, results):
                augmented = augment(self.checker.session, call, result, docs, held_out, rules=self.rules)
                self.hint_rule_errors += len(augmented.rule_errors)
                if augmented.hint is not None:
                    self.hints.append(HintUse(self.turn, self.step_in_turn, augmented.hint.kind))
                shown.append(augmented.text)
            results = shown
        return result_messages(self.config.protocol, response, results, prompts.REMINDER[self.config.protocol])

    def _close_turn(self, verdict: TurnVerdict, feedback: list[Message]) -> StepResult:
        self.turn_verdicts.append(verdict)
        self.turn += 1
        self.step_in_turn = 0
        if self.turn >= self.task.num_turns or self.force_quit:
            self.done = True
            return StepResult(feedback, [], verdict, True, self.record)
        if self.config.block_held_out_tools:
            self.checker.session.reveal(self.task.held_out_tools.get(self.turn, ()))
        return StepResult(feedback, self._turn_messages(), verdict, False, self.record)

    def scored_trajectory(self) -> list[list[list[str]]]:
        """The calls that ran, turn -> step -> call strings, as the official checker receives them:
        the turns that were closed. An episode that ended early (force-quit before its last turn, or
        cut off by a token budget) has fewer turns than the task, which the checker fails as
        force-terminated; a force-quit on the last turn has every turn and is scored as usual."""
        return self.trajectory[: self.turn]

    def official_verdict(self) -> EntryVerdict:
        """The official entry verdict of the calls that ran, scored afresh by `score_entry`."""
        return score_entry(self.task, self.scored_trajectory())

    # ----- records -------------------------------------------------------------------------
    @property
    def turn_successes(self) -> list[bool]:
        return [verdict.passed for verdict in self.turn_verdicts]

    @property
    def record(self) -> EpisodeRecord:
        """The episode so far as a frozen record (rewards, metrics, run files)."""
        return EpisodeRecord(
            num_turns=self.task.num_turns, turn_successes=tuple(self.turn_successes), responses=self.responses,
            format_violations=self.format_violations, valid_calls=self.valid_calls, invalid_calls=self.invalid_calls,
            task_id=self.task.id, category=self.task.category, step=self.step_in_turn, done=self.done,
            force_quit=self.force_quit, turn_verdicts=tuple(self.turn_verdicts), hints=tuple(self.hints), hint_rule_errors=self.hint_rule_errors,
        )

    def reward(self, name: str | None = None) -> float:
        """The configured reward (or `name`) of the episode so far; unreached turns count 0."""
        return self.record.reward(name or self.config.reward)

    def close(self) -> None:
        self.checker.close()

    def __enter__(self) -> "Episode":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
