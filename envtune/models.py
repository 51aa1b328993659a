"""Models and tokenizers: any Hugging Face causal LM for real runs, and a tiny one built locally.

The tiny model has a real architecture (Qwen2) with random weights, and a real byte-level BPE
tokenizer trained on the benchmark's own text (tool docs, requests, the protocol's tags) with a
ChatML chat template. It needs no model hub, so the demo, the smoke preset and the tests run on any
CPU machine; the same code paths then load any model path or hub id.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from envtune.bfcl.release import cache_dir
from envtune.console import status
from envtune.errors import EnvtuneError

if TYPE_CHECKING:
    import torch

TINY_MODEL_VERSION = 1  # bump when the recipe below changes, so cached copies are rebuilt
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Protocol tags get their own tokens (kept in decoded text, unlike special tokens).
TAG_TOKENS = [
    "<think>", "</think>", "<tool_call>", "</tool_call>", "<answer>", "</answer>",
    "<tool_response>", "</tool_response>",
]

# ChatML, as Qwen models use it; assistant tool calls (native protocol) render as a <tool_call> block.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] %}{{- message['content'] }}{%- endif %}"
    "{%- if message.get('tool_calls') %}"
    "{{- '<tool_call>' + (message['tool_calls'] | map(attribute='function') | list | tojson) + '</tool_call>' }}"
    "{%- endif %}"
    "{{- '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def _corpus(release: str | None) -> Iterator[str]:
    """Text the tokenizer learns from: every tool doc, request and ground-truth call, plus the
    environment's own messages, so common words and JSON keys become single tokens."""
    from envtune.bfcl.tasks import load_tasks
    from envtune.env import prompts

    tasks = load_tasks(release=release)
    seen_docs = set()
    for task in tasks:
        for doc in task.tool_docs(task.num_turns):
            if doc["name"] not in seen_docs:
                seen_docs.add(doc["name"])
                yield json.dumps(doc)
        for turn in task.turns:
            for message in turn:
                yield message["content"]
        for calls in task.ground_truth:
            yield " ".join(calls)
    for protocol in ("envtune", "prompt"):
        yield prompts.system_prompt(protocol, "extended", [])
        yield prompts.REMINDER[protocol]
    yield prompts.CALLED_WHEN_ASKING


def build_tokenizer(vocab_size: int = 2048, release: str | None = None):
    """A byte-level BPE tokenizer trained locally, wrapped as a transformers fast tokenizer."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    core.train_from_iterator(_corpus(release), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
    )
    tokenizer.add_tokens(TAG_TOKENS)
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def build_tiny_model(tokenizer, seed: int = 0, hidden_size: int = 64, layers: int = 2):
    """A Qwen2 causal LM with random weights, sized to run GRPO steps on a laptop CPU."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=32768, tie_word_embeddings=True,
        bos_token_id=None, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


TINY_NAME = re.compile(r"tiny(?:-(\d+)x(\d+))?")
TINY_NAMES = "'tiny' (hidden size 64, 2 layers) or 'tiny-HIDDENxLAYERS', e.g. 'tiny-128x4'"


def tiny_size(name: str | os.PathLike) -> tuple[int, int] | None:
    """Hidden size and layers of a tiny model name (`tiny`, `tiny-128x4`); None for any other name."""
    match = TINY_NAME.fullmatch(str(name))
    if match is None:
        return None
    hidden_size, layers = (int(match[1]), int(match[2])) if match[1] else (64, 2)
    if hidden_size < 8 or hidden_size % 8 or layers < 1:
        raise EnvtuneError(f"tiny model {name!r}: the hidden size must be a multiple of 8 (4 heads with an even "
                           f"head size) and there must be at least 1 layer; use {TINY_NAMES}")
    return hidden_size, layers


def local_model_path(path_or_id: str | os.PathLike, release: str | None = None) -> str | os.PathLike:
    """Where a model loads from: a tiny model's directory (built once), any other name as given."""
    size = tiny_size(path_or_id)
    return path_or_id if size is None else tiny_model_path(release=release, hidden_size=size[0], layers=size[1])


def tiny_model_path(seed: int = 0, release: str | None = None, hidden_size: int = 64, layers: int = 2) -> Path:
    """Directory of a tiny model and its tokenizer, built once into the user cache (atomically)."""
    size = "" if (hidden_size, layers) == (64, 2) else f":{hidden_size}x{layers}"  # the default keeps its old key
    key = hashlib.sha256(f"{TINY_MODEL_VERSION}:{seed}:{release}{size}".encode()).hexdigest()[:12]
    target = cache_dir() / "models" / f"tiny-qwen2-{key}"
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    status(f"building the tiny model {hidden_size}x{layers} (random weights, a tokenizer trained on the benchmark's text) "
           f"into {target} ...")
    staging = Path(tempfile.mkdtemp(prefix=".tiny-", dir=target.parent))
    try:
        tokenizer = build_tokenizer(release=release)
        model = build_tiny_model(tokenizer, seed=seed, hidden_size=hidden_size, layers=layers)
        tokenizer.save_pretrained(staging)
        model.save_pretrained(staging)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


DEVICES = "auto, cpu, cuda or cuda:N"
DTYPES = ("auto", "float32", "bfloat16", "float16")
_DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


@dataclass(frozen=True)
class Placement:
    """Where a model's weights live and in which precision, resolved once so every command loads,
    reports and trains on the same choice."""

    device: str  # "cpu" or "cuda:N"
    dtype: torch.dtype

    @property
    def on_gpu(self) -> bool:
        return self.device != "cpu"

    def describe(self) -> str:
        """For startup lines, e.g. `cuda:0, bfloat16`."""
        return f"{self.device}, {str(self.dtype).removeprefix('torch.')}"


def _device_argument(value: str) -> str:
    if not _DEVICE.fullmatch(value):
        raise argparse.ArgumentTypeError(f"invalid choice: {value!r} (choose from {DEVICES})")
    return value


def add_placement_arguments(parser: argparse.ArgumentParser) -> None:
    """`--device` and `--dtype`, the same for every command that loads a local model."""
    parser.add_argument("--device", type=_device_argument, default="auto",
                        help=f"where the model runs: {DEVICES} (default: auto, CUDA when available, else CPU)")
    parser.add_argument("--dtype", choices=DTYPES, default="auto",
                        help="precision of the weights (default: auto, bfloat16 on GPU, float32 on CPU; float16 is GPU only)")


def resolve_placement(device: str = "auto", dtype: str = "auto") -> Placement:
    """The device and dtype that `--device`/`--dtype` mean on this machine; a choice this machine
    cannot honour is a ValueError naming the flag and what to use instead."""
    import torch

    if not _DEVICE.fullmatch(device):
        raise EnvtuneError(f"--device {device}: not a device; use {DEVICES}")
    if dtype not in DTYPES:
        raise EnvtuneError(f"--dtype {dtype}: not a dtype; use one of {', '.join(DTYPES)}")
    cuda = torch.cuda.is_available()
    if device == "auto":
        device = "cuda" if cuda else "cpu"
    if device != "cpu":
        if not cuda:
            raise EnvtuneError(f"--device {device}: no CUDA device is available here; use --device cpu or auto")
        index, count = int(device.partition(":")[2] or 0), torch.cuda.device_count()
        if index >= count:
            raise EnvtuneError(f"--device {device}: this machine has {count} CUDA device{'s' * (count != 1)} "
                               f"(cuda:0 to cuda:{count - 1}); use one of those or auto")
        device = f"cuda:{index}"
    if dtype == "auto":
        dtype = "float32" if device == "cpu" else "bfloat16"
    if device == "cpu" and dtype == "float16":
        raise EnvtuneError("--dtype float16: CPUs do not run float16 matrix products (unsupported or very slow); "
                           "use --dtype bfloat16 or float32 on CPU, or float16 with --device cuda")
    return Placement(device, getattr(torch, dtype))


def load_model_and_tokenizer(path_or_id: str | os.PathLike, dtype=None, device: str | None = None,
                             placement: Placement | None = None):
    """Any causal LM and its tokenizer, by local path or hub id (`tiny` or `tiny-HIDDENxLAYERS` builds
    a local one), placed by `placement` or by `dtype`/`device` (default: float32 on the CPU)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if placement is not None:
        if dtype is not None or device is not None:
            raise TypeError("give either placement or dtype/device, not both")
        dtype, device = placement.dtype, placement.device
    dtype = dtype or torch.float32
    path = local_model_path(path_or_id)
    status(f"loading model {path_or_id} on {device or 'cpu'} ({str(dtype).removeprefix('torch.')}) ...")
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.chat_template is None:
        raise EnvtuneError(f"the tokenizer of {path_or_id} has no chat template; envtune needs one to render episodes")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    if device:
        model.to(device)
    return model, tokenizer
