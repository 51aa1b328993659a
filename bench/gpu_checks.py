"""What the TRL engine promises on a GPU and the CPU tests cannot show: run it on a CUDA machine.

    python bench/gpu_checks.py --json runs/gpu_checks.json      # CUDA, bfloat16 (the default)
    python bench/gpu_checks.py --device cpu --dtype float32     # the same checks, for a dry run here

Checks, each printed as ok/FAILED and written under `--json PATH` (keys: checks, peak_memory_mib):

- master_weights_float32: a stage that trains every weight, placed in bfloat16, holds float32
  trainable weights on the device (bfloat16 weights would barely move at the paper's lr 1e-6);
- autocast_step_moves_weights: one optimizer step at lr 1e-6 under bfloat16 autocast changes most
  weights, as the float32 masters should (the same step on bfloat16 weights changes almost none);
- sampling_keeps_cuda_rng: seeded rollouts sample inside a forked generator, so the trainer's CUDA
  random state is the same before and after (TRL seeds it and restores it on resume);
- greedy_ignores_generation_config: greedy replies are the same with and without a repetition
  penalty in the model's own generation config.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from envtune.curriculum.config import parse_config
from envtune.models import resolve_placement
from envtune.rollout import GenerationRequest, HFBackend, SamplingParams
from envtune.train.engine import TrlEngine


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"))
    parser.add_argument("--json", metavar="PATH", help="write the results here")
    return parser.parse_args()


def changed_share(before: dict[str, torch.Tensor], model) -> float:
    """Share of weights that differ from `before`."""
    moved = total = 0
    for name, parameter in model.named_parameters():
        moved += int((parameter.detach() != before[name]).sum())
        total += parameter.numel()
    return moved / total


def main() -> int:
    args = parse_args()
    placement = resolve_placement(args.device, args.dtype)
    stage = parse_config({"name": "gpu", "stages": [
        {"name": "s", "split": "train", "reward": "progress", "max_steps": 1, "grpo": {"bf16": True}}]}).stages[0]
    model, tokenizer, _ = TrlEngine(placement).load_policy("tiny", stage)
    checks: dict[str, bool] = {}
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    checks["master_weights_float32"] = all(
        parameter.dtype == torch.float32 and parameter.device.type == torch.device(args.device).type
        for parameter in trainable)

    with torch.no_grad():
        for parameter in trainable:
            parameter.normal_(0.0, 0.02)
    before = {name: parameter.detach().clone() for name, parameter in model.named_parameters()}
    optimizer = torch.optim.AdamW(trainable, lr=1e-6)
    inputs = torch.randint(0, tokenizer.vocab_size, (2, 32), device=model.device)
    with torch.autocast(device_type=model.device.type, dtype=placement.dtype, enabled=args.dtype == "bfloat16"):
        loss = model(input_ids=inputs, labels=inputs).loss
    loss.backward()
    optimizer.step()
    share = changed_share(before, model)
    checks["autocast_step_moves_weights"] = share > 0.9

    backend = HFBackend(model, tokenizer, batch_size=2)
    requests = [GenerationRequest(tokenizer("hello there")["input_ids"], index) for index in range(2)]
    cuda = model.device.type == "cuda"
    state = torch.cuda.get_rng_state(model.device) if cuda else torch.get_rng_state()
    backend.generate(requests, SamplingParams(max_new_tokens=8, seed=3))
    after = torch.cuda.get_rng_state(model.device) if cuda else torch.get_rng_state()
    checks["sampling_keeps_cuda_rng"] = bool(torch.equal(state, after))

    greedy = SamplingParams(max_new_tokens=8, do_sample=False)
    plain = backend.generate(requests, greedy)
    model.generation_config.repetition_penalty = 5.0
    checks["greedy_ignores_generation_config"] = backend.generate(requests, greedy) == plain

    peak = torch.cuda.max_memory_allocated(model.device) / 2**20 if cuda else None
    for name, passed in checks.items():
        print(f"{'ok    ' if passed else 'FAILED'} {name}")
    print(f"weights changed by one step at lr 1e-6: {100 * share:.2f}%; placement {placement.describe()}"
          + (f"; peak memory {peak:.0f} MiB" if peak is not None else ""))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"checks": checks, "changed_share": share, "peak_memory_mib": peak},
                                              indent=1) + "\n", encoding="utf-8")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
