"""Turn-level credit: an advantage per turn of each rollout instead of one per episode.

The progress reward is a mean of turn outcomes, but GRPO gives every token of an episode the same
advantage. With `credit: turn` a stage compares the rollouts of a group turn by turn. For rollout i
of a group of G rollouts of one task with T turns, s_{i,t} in {0, 1} the success of turn t (0 for a
turn the episode never reached) and R_i its episode reward:

    g_{i,k} = (1 / (T - k)) * sum_{t=k}^{T-1} s_{i,t}        the progress from turn k on
    u_{i,k} = w * g_{i,k} + (1 - w) * R_i                    w = the stage's turn_weight, in [0, 1]
    A_{i,k} = (u_{i,k} - mean_j u_{j,k}) / (std_j u_{j,k} + eps)   over the group, at the same turn k

(std is the unbiased standard deviation over the group and eps the engine's own: 1e-4 as TRL
normalizes episode rewards, 1e-6 as veRL's GRPO does; with `scale_rewards: none` (veRL:
`norm_adv_by_std_in_grpo: false`) the division is left out, as both engines leave it out.) Every model
token of turn k of rollout i gets A_{i,k}; environment tokens carry no loss either way.

Edge cases:
- w = 0: u_{i,k} = R_i at every turn, so A_{i,k} is GRPO's episode advantage.
- Every turn of a rollout has its episode's outcome (s_{i,t} = R_i for all t, as with the progress
  reward when a rollout passes all turns or none): g_{i,k} = R_i, so for any w the turn-level
  advantage equals the episode-level one.
- A turn at which every rollout of the group has the same u (all passed it and what followed, or all
  failed) gets advantage 0, as a group with equal rewards does in GRPO.
- The first turn (k = 0) with w = 1 and the progress reward: g_{i,0} = R_i, the episode advantage;
  later turns are judged only by what happened from them on.
"""

from __future__ import annotations

import statistics
from bisect import bisect_right
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:
    from envtune.rollout import Rollout

EPSILON = 1e-4  # TRL's: advantages / (std + 1e-4)


def turn_progress(successes: Sequence[bool], num_turns: int) -> list[float]:
    """g_k for k = 0..num_turns-1: the share of turns k..T-1 that passed (unreached turns fail)."""
    outcomes = [float(success) for success in successes[:num_turns]] + [0.0] * (num_turns - len(successes))
    return [sum(outcomes[turn:]) / (num_turns - turn) for turn in range(num_turns)]


def group_turn_advantages(
    successes: Sequence[Sequence[bool]], rewards: Sequence[float], num_turns: int, turn_weight: float, scale: bool = True,
    epsilon: float = EPSILON,
) -> list[list[float]]:
    """A_{i,k} for one group (the rollouts of one task): one list of `num_turns` advantages per rollout."""
    if not 0.0 <= turn_weight <= 1.0:
        raise ValueError(f"turn_weight must be between 0 and 1, got {turn_weight}")
    scores = [[turn_weight * progress + (1.0 - turn_weight) * reward for progress in turn_progress(outcomes, num_turns)]
              for outcomes, reward in zip(successes, rewards)]
    advantages = [[0.0] * num_turns for _ in scores]
    for turn in range(num_turns):
        column = [score[turn] for score in scores]
        mean = statistics.fmean(column)
        spread = (statistics.stdev(column) if len(column) > 1 else 0.0) + epsilon if scale else 1.0
        for index, value in enumerate(column):
            advantages[index][turn] = (value - mean) / spread
    return advantages


def turns_alike(successes: Sequence[Sequence[bool]], num_turns: int) -> bool:
    """Whether every rollout of a group passed the same turns (unreached turns failing)."""
    return len({tuple(turn_progress(outcomes, num_turns)) for outcomes in successes}) == 1


def group_without_signal(successes: Sequence[Sequence[bool]], rewards: Sequence[float], num_turns: int,
                         by_turn: bool) -> bool:
    """Whether every rollout of a group gets advantage 0: its rewards are all equal and, when turns
    are credited (`by_turn`), so are its turn outcomes."""
    return len(set(rewards)) == 1 and (not by_turn or turns_alike(successes, num_turns))


def token_advantages(turn_advantages: Sequence[float], token_turns: Sequence[int], length: int) -> list[float]:
    """Per completion token, the advantage of the turn it belongs to (padding past the rollout's
    tokens takes its last turn's; it carries no loss)."""
    last = token_turns[-1] if token_turns else 0
    turns = list(token_turns[:length]) + [last] * (length - len(token_turns))
    final = len(turn_advantages) - 1
    return [turn_advantages[min(turn, final)] for turn in turns]


def turn_offsets(token_turns: Sequence[int]) -> list[int]:
    """Where each turn's tokens begin, in completion positions: the compact form of `token_turns`
    that travels with a veRL trajectory (a turn without tokens begins where the next one does)."""
    offsets: list[int] = []
    for position, turn in enumerate(token_turns):
        while len(offsets) <= turn:
            offsets.append(position)
    return offsets


def offsets_to_turns(offsets: Sequence[int], length: int) -> list[int]:
    """The turn of each of `length` completion positions, from `turn_offsets`."""
    return [max(bisect_right(offsets, position) - 1, 0) for position in range(length)]


def batch_token_advantages(rollouts: Sequence[Rollout], generations: int, turn_weight: float, scale: bool,
                           length: int) -> list[list[float]]:
    """Per rollout of a generation batch (laid out task by task, `generations` rollouts each), the
    advantage of each of its `length` completion positions."""
    rows = []
    for start in range(0, len(rollouts), generations):
        group = rollouts[start:start + generations]
        per_turn = group_turn_advantages([rollout.record.turn_successes for rollout in group],
                                         [rollout.reward for rollout in group], group[0].record.num_turns, turn_weight, scale)
        rows += [token_advantages(advantages, rollout.token_turns, length) for advantages, rollout in zip(per_turn, group)]
    return rows
