"""Real GRPO steps of the smoke curriculum's first stage with transformers rollouts, then with vLLM
(colocated): the rollout wall time of each step on both and their ratio, and the importance-sampling
numbers TRL logs with vLLM.

It needs CUDA and vLLM (elsewhere it says so and exits with status 2); run it on a GPU machine:

    python bench/gpu_vllm_steps.py --json runs/gpu_vllm_steps.json                 # the local tiny model
    python bench/gpu_vllm_steps.py --model /models/Qwen2.5-0.5B-Instruct --steps 5

`--json PATH` writes {"command", "model", "steps", "rollout_seconds": {"transformers": [...], "vllm": [...]},
"median_ratio", "importance_sampling": {metric: [per step]}}. The rollout time is `rollout_func`'s own
(the episodes), so TRL's weight sync before it is not counted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from tempfile import TemporaryDirectory

from common import command_line

from envtune.bfcl.splits import split_tasks
from envtune.bfcl.tasks import task_index
from envtune.curriculum.config import load_config, preset_path
from envtune.models import resolve_placement, tiny_model_path
from envtune.rollout import SamplingParams
from envtune.train.engine import TrlEngine
from envtune.train.grpo import EpisodeRollouts, make_trainer

ENGINES = {"transformers": {}, "vllm": {"use_vllm": True, "vllm_mode": "colocate", "vllm_gpu_memory_utilization": 0.3}}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="local directory of a causal LM with a chat template (default: the tiny model)")
    parser.add_argument("--steps", type=int, default=3, help="GRPO steps per rollout engine (default 3)")
    parser.add_argument("--json", metavar="PATH", help="write the numbers here")
    return parser.parse_args()


def missing_requirement() -> str | None:
    """Why this machine cannot run the check, or None."""
    import torch
    from trl.import_utils import is_vllm_available

    if not torch.cuda.is_available():
        return "bench/gpu_vllm_steps.py needs a CUDA GPU; none is visible here"
    if not is_vllm_available():
        return "bench/gpu_vllm_steps.py needs vLLM: pip install 'trl[vllm]' on the GPU machine"
    return None


@dataclass
class TimedRollouts(EpisodeRollouts):
    """The stage's rollouts, timed per call, by the trainer's global step."""

    seconds: dict[int, float] = field(default_factory=dict, init=False)

    def __call__(self, prompts, trainer):
        start = time.perf_counter()
        try:
            return super().__call__(prompts, trainer)
        finally:
            step = trainer.state.global_step
            self.seconds[step] = self.seconds.get(step, 0.0) + time.perf_counter() - start


def run_steps(model_path: str, steps: int, engine_settings: dict, output: Path) -> tuple[list[float], list[dict]]:
    """Rollout seconds per step and TRL's log entries of `steps` steps of the smoke preset's first stage."""
    stage = load_config(preset_path("smoke")).stages[0]
    stage = replace(stage, max_steps=steps, grpo={**stage.grpo, **engine_settings, "save_steps": steps + 1})
    engine = TrlEngine(resolve_placement("cuda", "bfloat16"))
    model, tokenizer, peft_config = engine.load_policy(model_path, stage)
    rollouts = TimedRollouts(task_index(), tokenizer, stage.episode, SamplingParams(**{**asdict(stage.sampling), "seed": 0}),
                             stage.max_completion_tokens, stage.generation_batch_size)
    train_ids = [task.id for task in split_tasks(stage.split) if task.category in stage.categories]
    trainer = make_trainer(model, tokenizer, train_ids, rollouts, engine._grpo_args(stage, output, 0), peft_config=peft_config)
    trainer.train()
    return [rollouts.seconds[step] for step in sorted(rollouts.seconds)], trainer.state.log_history


def main() -> int:
    args = parse_args()
    print(command_line())
    problem = missing_requirement()
    if problem:
        print(problem, file=sys.stderr)
        return 2
    model_path = args.model or str(tiny_model_path())
    seconds, history = {}, {}
    with TemporaryDirectory() as scratch:
        for name, settings in ENGINES.items():  # vLLM second: its engine stays in the process once built
            seconds[name], history[name] = run_steps(model_path, args.steps, settings, Path(scratch) / name)
    ratios = [hf / fast for hf, fast in zip(seconds["transformers"], seconds["vllm"])]
    sampling = {key: [entry[key] for entry in history["vllm"] if key in entry]
                for key in sorted({key for entry in history["vllm"] for key in entry if key.startswith("sampling/")})}
    print(f"model {model_path}, {args.steps} steps of the smoke preset's first stage")
    print("step  transformers_s  vllm_s  ratio")
    for step, (hf, fast, ratio) in enumerate(zip(seconds["transformers"], seconds["vllm"], ratios)):
        print(f"{step:>4}  {hf:>14.2f}  {fast:>6.2f}  {ratio:>5.2f}")
    median = statistics.median(ratios) if ratios else float("nan")
    print(f"median ratio (transformers / vLLM): {median:.2f}")
    for key, values in sampling.items():
        print(f"{key}: {', '.join(f'{value:.4f}' for value in values)}")
    if not sampling:
        print("TRL logged no sampling/* metrics: the vLLM run returned no log-probs", file=sys.stderr)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({
            "command": command_line(), "model": model_path, "steps": args.steps, "rollout_seconds": seconds,
            "median_ratio": median, "importance_sampling": sampling,
        }, indent=2))
        print(f"written to {args.json}")
    return 0 if sampling else 1


if __name__ == "__main__":
    sys.exit(main())
