"""Rollout throughput: the cached rollout engine against today's batched engine and one episode at a time.

Workload: the first N tasks of the `format` split, each played R times (a GRPO group of R rollouts;
default 8 tasks x 2), as episodes (envtune protocol, standard feedback) of the tiny local model
(`load_model_and_tokenizer("tiny")`, random weights) until the completion budget runs out or the
episode ends. The three sides run the same `RolloutEngine` with the same model, tasks, sampling
parameters and seed; they differ in the generation backend and in how many episodes share a call:

- new:        `CachedHFBackend(batch_size=N x R)`, all episodes in one engine: each episode's KV cache
              lives from round to round, a group's prompt is prefilled once (and prompts share their
              common prefixes), so a round runs only its new tokens;
- batched:    `HFBackend(batch_size=N x R)`, all episodes in one engine: one left-padded `generate`
              per round that re-reads every episode's whole context (today's training engine);
- sequential: `HFBackend(batch_size=1)`, the engine run on one episode at a time.

What is timed: `engine.run` only (episodes are built and closed outside the clock, the same for all
sides, and a full garbage collection runs before the clock starts: a collection of this process's
heap takes some 0.2 s, which would otherwise land at random in a run). A timing proxy around the backend measures the time in `generate` and counts the tokens it
returns; a proxy around each episode measures its reset, steps and scoring; a forward hook on the
model counts the tokens it runs (prompt, environment and generated tokens, padding and holes
included). Throughput is generated tokens (everything the model produced, including tokens cut by
the completion budget) per second of `engine.run`. Sampling is seeded, but the sides draw from the
random stream in different orders, so where a reply ends differs and so do the token counts (the
table shows each side's); tokens per second is what compares.

Machines are noisy, so all sides run in the same process, interleaved (the order rotates each
round) after an untimed warm-up, and the table reports medians over the rounds; ratios are of the
medians, with each round's own ratios listed. Peak memory is measured apart: each side runs once more
in a fresh process, which samples its resident memory during `engine.run` and reports the highest
reading above the one at the start (the model and the episodes are loaded by then). Torch uses the same number of intra-op
threads for every side (torch's default unless `--threads` says otherwise), printed in the header.

`--json PATH` writes {"new_vs_sequential", "new_vs_old_batched", "prefill_per_generated" (tokens the
new engine runs per token it generates), "outside_generation_share" (the new engine's share of wall
time outside `generate`)}.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tqdm import tqdm

from common import command_line, median
from envtune.bfcl.splits import split_tasks
from envtune.env import Episode, EpisodeConfig
from envtune.models import load_model_and_tokenizer
from envtune.rollout import ChatRenderer, HFBackend, RolloutEngine, SamplingParams
from envtune.rollout.cached import CachedHFBackend

SIDES = ("new", "batched", "sequential")
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

    def release(self) -> None:
        if hasattr(self.backend, "release"):
            self.backend.release()


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


class TokenCounter:
    """Counts the tokens the model runs in its forward passes."""

    def __init__(self, model):
        self.tokens = 0
        model.register_forward_pre_hook(self._count, with_kwargs=True)

    def _count(self, module, args, kwargs) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        self.tokens += ids.numel()


@dataclass
class Run:
    """One side's run over all episodes."""

    wall_s: float
    generate_s: float
    env_s: float
    tokens: int  # generated by the model
    processed: int  # run through the model
    calls: int  # generate calls
    kept: int  # model tokens kept in the rollouts (within the completion budget)

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s

    @property
    def processed_per_generated(self) -> float:
        return self.processed / self.tokens

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


@dataclass(frozen=True)
class Workload:
    tasks: list
    rollouts: int  # per task
    sampling: SamplingParams
    budget: int  # completion tokens per episode


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Generated tokens per second of the cached rollout engine against today's batched engine and "
        "one episode at a time (tiny model, first N tasks of the format split x R rollouts; medians of interleaved "
        "rounds), tokens run per token generated, the share of wall time outside generation, and peak memory.",
    )
    parser.add_argument("--tasks", type=int, default=8, help="tasks per run (default: 8)")
    parser.add_argument("--rollouts", type=int, default=2, help="rollouts per task, a GRPO group (default: 2)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each runs every side once (default: 3)")
    parser.add_argument("--max-new-tokens", type=int, default=32, help="tokens per model reply (default: 32)")
    parser.add_argument(
        "--max-completion-tokens", type=int, default=320,
        help="completion budget per episode, model and environment tokens together (default: 320)",
    )
    parser.add_argument("--seed", type=int, default=0, help="sampling seed, the same for all sides (default: 0)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's default)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory runs in fresh processes")
    parser.add_argument("--json", metavar="PATH", help="write the four headline numbers as JSON")
    parser.add_argument("--quick", action="store_true", help="a smoke test: 2 tasks x 2, 1 round, a 96-token budget")
    parser.add_argument("--memory-child", choices=SIDES, help=argparse.SUPPRESS)  # one side's memory run
    args = parser.parse_args()
    if args.quick:
        args.tasks, args.rounds, args.max_completion_tokens = 2, 1, 96
    for name in ("tasks", "rollouts", "rounds", "max_new_tokens", "max_completion_tokens"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.threads is not None and args.threads < 1:
        parser.error("--threads must be at least 1")
    return args


def backend_for(side: str, model, tokenizer, episodes: int):
    if side == "new":
        return CachedHFBackend(model, tokenizer, batch_size=episodes)
    return HFBackend(model, tokenizer, batch_size=episodes if side == "batched" else 1)


def run_side(side: str, model, tokenizer, counter: TokenCounter, work: Workload) -> Run:
    """Play every task's group once, all in one engine (new, batched) or one episode per engine run
    (sequential)."""
    episodes = [Episode(task, EpisodeConfig()) for task in work.tasks for _ in range(work.rollouts)]
    backend = TimedBackend(backend_for(side, model, tokenizer, len(episodes)))
    engine = RolloutEngine(backend, tokenizer, work.sampling, max_completion_tokens=work.budget)
    env_clock = [0.0]
    wrapped = [TimedEpisode(episode, env_clock) for episode in episodes]
    groups: Sequence[Sequence[TimedEpisode]] = [[episode] for episode in wrapped] if side == "sequential" else [wrapped]
    rollouts = []
    processed = counter.tokens
    gc.collect()  # every side starts from the same heap, not with the garbage of the side before
    start = time.perf_counter()
    for group in groups:
        rollouts += engine.run(group)
    wall = time.perf_counter() - start
    for episode in episodes:
        episode.close()
    return Run(
        wall, backend.seconds, env_clock[0], backend.tokens, counter.tokens - processed, backend.calls,
        sum(rollout.model_tokens for rollout in rollouts),
    )


def peak_growth_mib(side: str, args: argparse.Namespace) -> float:
    """How far peak resident memory grows while one side plays the workload, in a fresh process."""
    command = [sys.executable, str(Path(__file__).resolve()), "--memory-child", side, "--tasks", str(args.tasks),
               "--rollouts", str(args.rollouts), "--max-new-tokens", str(args.max_new_tokens),
               "--max-completion-tokens", str(args.max_completion_tokens), "--seed", str(args.seed),
               "--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_growth_mib"]


class PeakRss:
    """Samples this process's resident memory every few milliseconds in a thread (torch releases the
    GIL while it computes) and keeps the highest reading."""

    def __init__(self, interval_s: float = 0.002):
        self.interval_s = interval_s
        self.peak = self.start = self.read()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def read() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, self.read())

    def __enter__(self) -> "PeakRss":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.read())


def memory_child(side: str, model, tokenizer, work: Workload) -> None:
    counter = TokenCounter(model)
    run_side(side, model, tokenizer, counter, Workload(work.tasks[:1], 1, work.sampling, 2 * work.sampling.max_new_tokens))
    with PeakRss() as rss:
        run_side(side, model, tokenizer, counter, work)
    print(json.dumps({"peak_growth_mib": (rss.peak - rss.start) / 2**20}))


def prompt_length(renderer: ChatRenderer, task) -> int:
    with Episode(task, EpisodeConfig()) as episode:
        return len(renderer.encode(renderer.text(episode.reset(), add_generation_prompt=True)))


def ratio_line(name: str, numerator: SideRuns, denominator: SideRuns) -> tuple[float, str]:
    ratio = numerator.median_of("tokens_per_s") / denominator.median_of("tokens_per_s")
    rounds = [a.tokens_per_s / b.tokens_per_s for a, b in zip(numerator.runs, denominator.runs)]
    return ratio, f"throughput {name}: {ratio:.2f}x  (per round: {', '.join(f'{r:.2f}' for r in rounds)})"


def main() -> None:
    args = parse_args()
    import torch

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    args.threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)  # the same for all sides, set once for the whole process
    model, tokenizer = load_model_and_tokenizer("tiny")
    tasks = split_tasks(SPLIT)[: args.tasks]
    if len(tasks) < args.tasks:
        raise SystemExit(f"the {SPLIT} split has only {len(tasks)} tasks")
    work = Workload(tasks, args.rollouts, SamplingParams(max_new_tokens=args.max_new_tokens, seed=args.seed),
                    args.max_completion_tokens)
    if args.memory_child:
        memory_child(args.memory_child, model, tokenizer, work)
        return
    print(command_line())
    renderer = ChatRenderer(tokenizer)
    prompt_tokens = [prompt_length(renderer, task) for task in tasks]
    print(
        f"tiny model, first {len(tasks)} tasks of the {SPLIT} split x {args.rollouts} rollouts (prompts "
        f"{min(prompt_tokens)}-{max(prompt_tokens)} tokens); sampling temperature {work.sampling.temperature}, top_p "
        f"{work.sampling.top_p}, seed {args.seed}; max_new_tokens {args.max_new_tokens}, max_completion_tokens "
        f"{args.max_completion_tokens}; {args.rounds} round(s), interleaved; torch {torch.__version__}, "
        f"{args.threads} intra-op thread(s) for every side\n"
    )

    counter = TokenCounter(model)
    warm_up = Workload(tasks[:1], 1, work.sampling, min(args.max_completion_tokens, 2 * args.max_new_tokens))
    for side in SIDES:
        run_side(side, model, tokenizer, counter, warm_up)
    results = {side: SideRuns(side) for side in SIDES}
    with tqdm(total=args.rounds * len(SIDES), desc="runs", unit="run", leave=False, disable=None) as progress:
        for round_index in range(args.rounds):
            shift = round_index % len(SIDES)
            for side in SIDES[shift:] + SIDES[:shift]:
                progress.set_postfix_str(f"round {round_index + 1}: {side}")
                results[side].runs.append(run_side(side, model, tokenizer, counter, work))
                progress.update()
    peaks = {} if args.no_memory else {side: peak_growth_mib(side, args) for side in tqdm(
        SIDES, desc="memory runs", unit="side", leave=False, disable=None)}

    print(
        f"{'side':<12}{'median s':>10}{'tokens/s':>10}{'min t/s':>9}{'max t/s':>9}{'tokens':>8}{'run/gen':>9}"
        f"{'calls':>7}{'kept':>7}{'not gen':>9}{'env':>7}{'peak MiB':>10}"
    )
    for side in SIDES:
        result = results[side]
        rates = [run.tokens_per_s for run in result.runs]
        peak = f"{peaks[side]:>10.0f}" if side in peaks else f"{'-':>10}"
        print(
            f"{side:<12}{result.median_of('wall_s'):>10.2f}{result.median_of('tokens_per_s'):>10.1f}"
            f"{min(rates):>9.1f}{max(rates):>9.1f}{result.median_of('tokens'):>8.0f}"
            f"{result.median_of('processed_per_generated'):>9.1f}{result.median_of('calls'):>7.0f}"
            f"{result.median_of('kept'):>7.0f}{100 * result.median_of('outside_share'):>8.1f}%"
            f"{100 * result.median_of('env_share'):>6.1f}%{peak}"
        )
    print("\nper round (wall s, generated tokens, tokens/s):")
    for round_index in range(args.rounds):
        print(f"  round {round_index + 1}: " + "; ".join(
            f"{side} {run.wall_s:.2f} s, {run.tokens} tokens, {run.tokens_per_s:.1f}/s"
            for side in SIDES for run in [results[side].runs[round_index]]
        ))
    new = results["new"]
    over_sequential, line = ratio_line("new/sequential", new, results["sequential"])
    print("\n" + line)
    over_batched, line = ratio_line("new/batched", new, results["batched"])
    print(line)
    outside, env = new.median_of("outside_share"), new.median_of("env_share")
    print(
        f"new: {100 * outside:.1f}% of rollout wall time outside generation (per round: "
        f"{', '.join(f'{100 * run.outside_share:.1f}%' for run in new.runs)}): environment reset/steps/scoring "
        f"{100 * env:.1f}%, rendering, tokenization and bookkeeping {100 * (outside - env):.1f}% (medians)"
    )
    print(
        "columns: tokens = generated by the model per run, run/gen = tokens the model ran per token generated "
        "(prompts, environment messages, padding), calls = generate calls, kept = model tokens within the completion "
        "budget, not gen = share of wall time outside generate, env = share in the environment, peak MiB = growth of "
        "peak resident memory during one run in a fresh process"
    )
    if args.json:
        headline = {
            "new_vs_sequential": over_sequential, "new_vs_old_batched": over_batched,
            "prefill_per_generated": new.median_of("processed_per_generated"), "outside_generation_share": outside,
        }
        Path(args.json).write_text(json.dumps(headline, indent=2) + "\n")
        print(f"headline numbers written to {args.json}")


if __name__ == "__main__":
    main()
