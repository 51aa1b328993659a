"""Rollout throughput: the batched rollout engine against one episode at a time.

Workload: the first N tasks of the `format` split, each played as one episode (envtune protocol,
standard feedback) by the tiny local model (`load_model_and_tokenizer("tiny")`, random weights) until
its completion budget runs out or the episode ends. The two sides run the same `RolloutEngine` with
the same model, tasks, sampling parameters and seed; they differ only in how many episodes share a
generation call:

- batched:    one engine over all N episodes, `HFBackend(batch_size=N)`: one left-padded
              `generate` call per round for every active episode (how training collects rollouts);
- sequential: the same engine run on one episode at a time, `HFBackend(batch_size=1)`.

Why: batching is the reason the engine plays episodes in lock step; this measures what it buys on
the machine at hand, and how much of a batched rollout is not generation at all (environment steps,
scoring, chat-template rendering and tokenization, the engine's own bookkeeping), which bounds what
a faster generation backend (vLLM, GPU) could gain.

What is timed: `engine.run` only (episodes are built and closed outside the clock, the same for both
sides). Inside it, a timing proxy around the backend measures the time spent in `generate` and counts
the tokens it returns; a proxy around each episode measures its reset, steps and scoring. Throughput
is generated tokens (everything the model produced, including tokens cut by the completion budget)
per second of `engine.run`. Each side pays its own way of generating: the batched side left-pads every
round's batch to its longest sequence, and the engine re-reads each episode's whole context (prompt
and completion so far) at every round, so with 4-7k-token prompts a round is mostly prefill. Seeds:
the engine seeds round r with seed + r; the sequential side restarts that for every episode, and the
random tiny model's next-token distribution after the assistant header hardly depends on the prompt,
so there every episode samples the same replies, while the batched side's rows share one random
stream and differ. Where a reply happens to end early thus differs, and so do the token counts (the
table shows each side's); tokens per second is what compares.

Machines are noisy, so both sides run in the same process, interleaved (which goes first alternates
each round) after an untimed warm-up, and the table reports medians over the rounds; the ratio is of
the medians, with each round's own ratio listed. Torch uses the same number of intra-op threads for
both sides (torch's default unless `--threads` says otherwise), printed in the header.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from tqdm import tqdm

from common import command_line, median
from envtune.bfcl.splits import split_tasks
from envtune.env import Episode, EpisodeConfig
from envtune.models import load_model_and_tokenizer
from envtune.rollout import ChatRenderer, HFBackend, RolloutEngine, SamplingParams

SIDES = ("batched", "sequential")
SPLIT = "format"


class TimedBackend:
    """A generation backend that records the time spent in, and the tokens returned by, `generate`."""

    def __init__(self, backend):
        self.backend = backend
        self.end_token_ids = backend.end_token_ids
        self.seconds = 0.0
        self.tokens = 0
        self.calls = 0

    def generate(self, requests, sampling):
        start = time.perf_counter()
        completions = self.backend.generate(requests, sampling)
        self.seconds += time.perf_counter() - start
        self.tokens += sum(len(ids) for ids in completions)
        self.calls += 1
        return completions


class TimedEpisode:
    """An episode that records the time the environment spends in reset, steps and scoring."""

    CALLS = ("reset", "step")
    PROPERTIES = ("record",)  # computed when read: the rewards and metrics come from it

    def __init__(self, episode: Episode, clock: list[float]):
        self._episode = episode
        self._clock = clock  # shared by all episodes of a run: one cell, the total seconds

    def __getattr__(self, name: str) -> Any:
        if name in self.PROPERTIES:
            start = time.perf_counter()
            try:
                return getattr(self._episode, name)
            finally:
                self._clock[0] += time.perf_counter() - start
        attribute = getattr(self._episode, name)
        if name not in self.CALLS:
            return attribute

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return attribute(*args, **kwargs)
            finally:
                self._clock[0] += time.perf_counter() - start

        return timed


@dataclass
class Run:
    """One side's run over all episodes."""

    wall_s: float
    generate_s: float
    env_s: float
    tokens: int  # generated by the model
    calls: int  # generate calls
    kept: int  # model tokens kept in the rollouts (within the completion budget)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s

    @property
    def outside_share(self) -> float:
        return (self.wall_s - self.generate_s) / self.wall_s

    @property
    def env_share(self) -> float:
        return self.env_s / self.wall_s


@dataclass
class SideRuns:
    side: str
    runs: list[Run] = field(default_factory=list)

    def median_of(self, name: str) -> float:
        return median(getattr(run, name) for run in self.runs)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Generated tokens per second of the batched rollout engine against one episode at a "
        "time (tiny model, first N tasks of the format split; medians of interleaved rounds), and the "
        "share of the batched engine's wall time spent outside generation.",
    )
    parser.add_argument("--episodes", type=int, default=8, help="episodes (tasks) per run (default: 8)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; each runs both sides once (default: 5)")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="tokens per model reply (default: 32)")
    parser.add_argument(
        "--max-completion-tokens", type=int, default=320,
        help="completion budget per episode, model and environment tokens together (default: 320)",
    )
    parser.add_argument("--seed", type=int, default=0, help="sampling seed, the same for both sides (default: 0)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's default)")
    parser.add_argument("--quick", action="store_true", help="a smoke test: 4 episodes, 1 round, a 160-token budget")
    args = parser.parse_args()
    if args.quick:
        args.episodes, args.rounds, args.max_completion_tokens = 4, 1, 160
    for name in ("episodes", "rounds", "max_new_tokens", "max_completion_tokens"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    return args


def run_side(side: str, model, tokenizer, tasks, sampling: SamplingParams, budget: int) -> Run:
    """Play every task once, all in one engine (batched) or one engine run per episode (sequential)."""
    batch = len(tasks) if side == "batched" else 1
    backend = TimedBackend(HFBackend(model, tokenizer, batch_size=batch))
    engine = RolloutEngine(backend, tokenizer, sampling, max_completion_tokens=budget)
    env_clock = [0.0]
    episodes = [Episode(task, EpisodeConfig()) for task in tasks]
    wrapped = [TimedEpisode(episode, env_clock) for episode in episodes]
    groups: Sequence[Sequence[TimedEpisode]] = [wrapped] if side == "batched" else [[episode] for episode in wrapped]
    rollouts = []
    start = time.perf_counter()
    for group in groups:
        rollouts += engine.run(group)
    wall = time.perf_counter() - start
    for episode in episodes:
        episode.close()
    return Run(
        wall, backend.seconds, env_clock[0], backend.tokens, backend.calls,
        sum(rollout.model_tokens for rollout in rollouts),
    )


def prompt_length(renderer: ChatRenderer, task) -> int:
    with Episode(task, EpisodeConfig()) as episode:
        return len(renderer.encode(renderer.text(episode.reset(), add_generation_prompt=True)))


def main() -> None:
    args = parse_args()
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    torch.set_num_threads(threads)  # the same for both sides, set once for the whole process
    print(command_line())
    model, tokenizer = load_model_and_tokenizer("tiny")
    tasks = split_tasks(SPLIT)[: args.episodes]
    if len(tasks) < args.episodes:
        raise SystemExit(f"the {SPLIT} split has only {len(tasks)} tasks")
    renderer = ChatRenderer(tokenizer)
    sampling = SamplingParams(max_new_tokens=args.max_new_tokens, seed=args.seed)
    prompt_tokens = [prompt_length(renderer, task) for task in tasks]
    print(
        f"tiny model, first {len(tasks)} tasks of the {SPLIT} split (prompts {min(prompt_tokens)}-{max(prompt_tokens)} "
        f"tokens); sampling temperature {sampling.temperature}, top_p {sampling.top_p}, seed {args.seed}; "
        f"max_new_tokens {args.max_new_tokens}, max_completion_tokens {args.max_completion_tokens}; "
        f"{args.rounds} round(s), interleaved; torch {torch.__version__}, {threads} intra-op thread(s) for both sides\n"
    )

    run_side("batched", model, tokenizer, tasks[:1], sampling, min(args.max_completion_tokens, 2 * args.max_new_tokens))  # warm-up
    results = {side: SideRuns(side) for side in SIDES}
    with tqdm(total=args.rounds * len(SIDES), desc="runs", unit="run", leave=False, disable=None) as progress:
        for round_index in range(args.rounds):
            for side in SIDES if round_index % 2 == 0 else SIDES[::-1]:
                progress.set_postfix_str(f"round {round_index + 1}: {side}")
                results[side].runs.append(run_side(side, model, tokenizer, tasks, sampling, args.max_completion_tokens))
                progress.update()

    print(
        f"{'side':<12}{'median s':>10}{'tokens/s':>10}{'min t/s':>9}{'max t/s':>9}{'tokens':>8}"
        f"{'calls':>7}{'kept':>7}{'not gen':>9}{'env':>7}"
    )
    for side in SIDES:
        result = results[side]
        rates = [run.tokens_per_s for run in result.runs]
        print(
            f"{side:<12}{result.median_of('wall_s'):>10.2f}{result.median_of('tokens_per_s'):>10.1f}"
            f"{min(rates):>9.1f}{max(rates):>9.1f}{result.median_of('tokens'):>8.0f}{result.median_of('calls'):>7.0f}"
            f"{result.median_of('kept'):>7.0f}{100 * result.median_of('outside_share'):>8.1f}%"
            f"{100 * result.median_of('env_share'):>6.1f}%"
        )
    print("\nper round (wall s, generated tokens, tokens/s):")
    for round_index in range(args.rounds):
        print(f"  round {round_index + 1}: " + "; ".join(
            f"{side} {run.wall_s:.2f} s, {run.tokens} tokens, {run.tokens_per_s:.1f}/s"
            for side in SIDES for run in [results[side].runs[round_index]]
        ))
    batched, sequential = results["batched"], results["sequential"]
    ratio = batched.median_of("tokens_per_s") / sequential.median_of("tokens_per_s")
    per_round = [b.tokens_per_s / s.tokens_per_s for b, s in zip(batched.runs, sequential.runs)]
    print(f"\nthroughput batched/sequential: {ratio:.2f}x  (per round: {', '.join(f'{r:.2f}' for r in per_round)})")
    shares = [run.outside_share for run in batched.runs]
    outside, env = batched.median_of("outside_share"), batched.median_of("env_share")
    print(
        f"batched: {100 * outside:.1f}% of rollout wall time outside generation "
        f"(per round: {', '.join(f'{100 * s:.1f}%' for s in shares)}): environment reset/steps/scoring "
        f"{100 * env:.1f}%, rendering, tokenization and bookkeeping {100 * (outside - env):.1f}% (medians)"
    )
    print(
        "columns: tokens = generated by the model per run, calls = generate calls, kept = model tokens within "
        "the completion budget, not gen = share of wall time outside generate, env = share in the environment"
    )


if __name__ == "__main__":
    main()
