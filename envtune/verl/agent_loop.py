"""The veRL agent loop: one envtune episode per trajectory, token in / token out.

veRL's rollout workers call `run` once per row (task) and sample; the loop builds the row's episode,
sends the rendered prompt to veRL's server manager (vLLM or SGLang behind it), feeds each decoded
reply to the episode and appends the environment's messages as tokens, until the episode ends or the
stage's response budget is spent. veRL's continuous-token helpers do the token work, so each prefix
is exactly the chat template's rendering of the messages so far, with the model's own tokens kept
as generated; environment tokens get mask 0 and no loss.

The trajectory's reward is the stage reward of the episode (`reward_score`, so veRL runs no reward
function). `extra_fields` carry, for veRL 0.9.1's default trainer (v1):

    reward_extra_info   per-episode numbers (acc = every turn passed, progress, format, ...): veRL
                        averages them per BFCL category in validation (val-core/<source>/acc/mean@1,
                        val-aux/<source>/progress/mean@1, ...); v1 logs none of them in training
    min/max_global_steps the weight versions that generated the trajectory, from the servers (v1's
                        staleness metrics read them)
    turn_scores         1.0 / 0.0 per turn closed     } what turn-level credit reads
    turn_offsets        where each played turn's      } (envtune.verl.credit)
                        tokens begin in the response  }
    task_turns          the task's number of turns    }

and, for the deprecated v0 trainer (`trainer.use_v1=false`), which puts them in its batch:
`tool_call_counts` (v0 logs tool_call_counts/mean).

veRL finds the loop through `actor_rollout_ref.rollout.agent.agent_loop_config_path`, pointing at
the `agent_loops.yaml` shipped beside this module; rows pick it with `agent_name: envtune_episode`.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import Any
from uuid import uuid4

from verl.experimental.agent_loop.agent_loop import AgentLoopBase, AgentLoopMetrics, AgentLoopOutput, register
from verl.experimental.agent_loop.tool_agent_loop import SPEC_DECODE_EXTRA_KEYS

from envtune.bfcl.tasks import Task, task_index
from envtune.env.episode import Episode
from envtune.errors import EnvtuneError
from envtune.rollout.driver import Rollout, TokenDriver
from envtune.rollout.generation import end_token_ids
from envtune.curriculum.credit import turn_offsets
from envtune.verl.config import model_context
from envtune.verl.data import AGENT_NAME, REBUILD, EpisodeSpec


@lru_cache(maxsize=None)
def _tasks(release: str) -> dict[str, Task]:
    return task_index(release)


@lru_cache(maxsize=None)
def _model_limits(model_path: str) -> tuple[int | None, Any]:
    """The model's context and its generation config (None when it has none), read once per worker:
    the server stops at every end token that config declares, not only the tokenizer's."""
    from transformers import GenerationConfig

    try:
        generation_config = GenerationConfig.from_pretrained(model_path)
    except (OSError, ValueError):
        generation_config = None
    return model_context(model_path), generation_config


def _messages(raw_prompt: Any) -> list[dict[str, Any]]:
    """A row's prompt as plain message dicts (parquet hands back numpy arrays of dicts)."""
    return [{key: value for key, value in message.items() if value is not None} for message in list(raw_prompt)]


def merge_server_fields(fields: dict[str, Any], reported: dict[str, Any]) -> None:
    """Carry what veRL's servers report per request into the trajectory, as veRL's tool loop does:
    the weight versions that generated it (its off-policy staleness control reads min/max_global_steps)
    and speculative-decoding counts (summed)."""
    if not fields:
        fields.update(reported)
        return
    if reported.get("max_global_steps") is not None:
        fields["max_global_steps"] = reported["max_global_steps"]
    for key in SPEC_DECODE_EXTRA_KEYS:
        if key in reported and key in fields:
            fields[key] = int(fields[key]) + int(reported[key])


@register(AGENT_NAME)
class EpisodeAgentLoop(AgentLoopBase):
    """Plays one BFCL task as an envtune episode against veRL's rollout servers."""

    async def run(self, sampling_params: dict[str, Any], **row: Any) -> AgentLoopOutput:
        spec = EpisodeSpec.from_kwargs(row.get("interaction_kwargs") or {})
        # Loading tasks, building an episode (its backends load the task's scenario) and stepping it (tool
        # calls, checks) block: they run in the event loop's executor, so the worker's other trajectories
        # go on meanwhile (the executor's time limits and state guards hold on any thread)
        tasks = await self.loop.run_in_executor(None, _tasks, spec.release)
        if spec.task_id not in tasks:
            raise EnvtuneError(f"unknown BFCL task {spec.task_id!r} in release {spec.release}")
        episode = await self.loop.run_in_executor(None, Episode, tasks[spec.task_id], spec.episode)
        with episode:
            return await self._play(episode, spec, sampling_params, row.get("raw_prompt"))

    async def _play(self, episode: Episode, spec: EpisodeSpec, sampling_params: dict[str, Any],
                    raw_prompt: Any) -> AgentLoopOutput:
        messages = episode.reset()
        if raw_prompt is not None and _messages(raw_prompt) != messages:
            raise EnvtuneError(f"the row's prompt for {spec.task_id} is not what this envtune version renders: {REBUILD}")
        budget = self.rollout_config.response_length
        # the server refuses a request that fills the model's context: the driver keeps the episode within it
        context, generation_config = _model_limits(self.config.actor_rollout_ref.model.path)
        context = self.rollout_config.get("max_model_len") or context
        prompt_ids = await self.ct_build_initial_tokens(messages)
        driver = TokenDriver(episode, prompt_ids, self.tokenizer, budget, context_tokens=context,
                             end_token_ids=end_token_ids(generation_config, self.tokenizer))
        request_id = uuid4().hex  # one sticky id per trajectory keeps its prefix cached on one server
        timing = {"generate_sequences": 0.0, "tool_calls": 0.0}
        server_fields: dict[str, Any] = {}
        while not driver.done:
            limit = driver.reply_limit(spec.max_reply_tokens)
            if driver.done:
                break
            started = time.perf_counter()
            output = await self.server_manager.generate(
                request_id=request_id, prompt_ids=driver.token_ids, sampling_params={**sampling_params, "max_tokens": limit},
            )
            timing["generate_sequences"] += time.perf_counter() - started
            merge_server_fields(server_fields, dict(output.extra_fields))
            started = time.perf_counter()
            reply = (output.token_ids, output.log_probs or None)
            answer = await self.loop.run_in_executor(None, driver.add_reply, *reply)
            timing["tool_calls"] += time.perf_counter() - started
            if answer is not None:
                tokens = driver.token_ids
                merged, _, _ = await self.ct_merge_context_msg(answer.before, [*answer.before, *answer.messages], tokens, [])
                replaced = merged.removed_prefix_token_count
                driver.add_environment(merged.token_ids[len(tokens) - replaced:], replaced)
        return self._output(driver.rollout(), timing, server_fields)

    def _output(self, rollout: Rollout, timing: dict[str, float], server_fields: dict[str, Any]) -> AgentLoopOutput:
        record = rollout.record
        return AgentLoopOutput(
            prompt_ids=rollout.prompt_ids,
            response_ids=rollout.completion_ids,
            response_mask=rollout.loss_mask,
            response_logprobs=rollout.logprobs,
            reward_score=rollout.reward,
            num_turns=len(rollout.messages),
            metrics=AgentLoopMetrics(**timing),
            extra_fields={
                **server_fields,
                "reward_extra_info": record.metrics(),
                "turn_scores": [1.0 if passed else 0.0 for passed in record.turn_successes],
                "turn_offsets": turn_offsets(rollout.token_turns),
                "task_turns": record.num_turns,
                "tool_rewards": [],
                "tool_call_counts": record.tool_calls,
            },
        )
