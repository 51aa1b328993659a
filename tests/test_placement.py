"""`--device` and `--dtype`: what they resolve to, how bad values are refused, and how serve and tune use them."""

import pytest
import torch

from envtune.cli import build_parser, main
from envtune.eval import server as server_module
from envtune.eval.server import make_server, parse_chat_request
from envtune.models import Placement, load_model_and_tokenizer, resolve_placement
from envtune.curriculum.config import parse_config
from envtune.curriculum.run import CurriculumRun
from envtune.train.engine import TrlEngine


@pytest.fixture
def gpus(monkeypatch):
    """Pretend this machine has `count` CUDA devices; nothing touches a GPU."""
    def pretend(count: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    return pretend


def test_the_defaults_are_float32_on_the_cpu_without_cuda(gpus):
    gpus(0)
    placement = resolve_placement()
    assert placement == Placement("cpu", torch.float32)
    assert placement.describe() == "cpu, float32"


def test_the_defaults_are_bfloat16_on_the_first_gpu_with_cuda(gpus):
    gpus(2)
    assert resolve_placement() == Placement("cuda:0", torch.bfloat16)
    assert resolve_placement("cuda").describe() == "cuda:0, bfloat16"
    assert resolve_placement("cuda:1", "float16") == Placement("cuda:1", torch.float16)
    assert resolve_placement("cpu") == Placement("cpu", torch.float32)


@pytest.mark.parametrize("count, device, message", [
    (0, "cuda", "--device cuda: no CUDA device is available here; use --device cpu or auto"),
    (0, "cuda:0", "--device cuda:0: no CUDA device is available here"),
    (2, "cuda:2", "--device cuda:2: this machine has 2 CUDA devices (cuda:0 to cuda:1)"),
    (1, "cuda:5", "--device cuda:5: this machine has 1 CUDA device (cuda:0 to cuda:0)"),
    (0, "gpu", "--device gpu: not a device; use auto, cpu, cuda or cuda:N"),
])
def test_a_device_this_machine_lacks_is_refused_by_name(gpus, count, device, message):
    gpus(count)
    with pytest.raises(ValueError) as raised:
        resolve_placement(device)
    assert str(raised.value).startswith(message)


def test_float16_is_refused_on_the_cpu_but_bfloat16_is_not(gpus):
    gpus(0)
    with pytest.raises(ValueError, match=r"^--dtype float16: .*use --dtype bfloat16 or float32 on CPU"):
        resolve_placement("cpu", "float16")
    assert resolve_placement("cpu", "bfloat16") == Placement("cpu", torch.bfloat16)


@pytest.mark.parametrize("command", [["serve", "--model", "tiny"], ["tune", "--preset", "smoke"]])
@pytest.mark.parametrize("flags, named", [
    (["--device", "gpu"], "argument --device: invalid choice: 'gpu' (choose from auto, cpu, cuda or cuda:N)"),
    (["--device", "cuda:x"], "argument --device: invalid choice: 'cuda:x'"),
    (["--dtype", "fp16"], "argument --dtype: invalid choice: 'fp16'"),
])
def test_a_bad_value_is_an_argparse_error(capsys, command, flags, named):
    with pytest.raises(SystemExit) as raised:
        build_parser().parse_args(command + flags)
    assert raised.value.code == 2
    assert named in capsys.readouterr().err


def test_a_placement_loads_the_model_there():
    model, _ = load_model_and_tokenizer("tiny", placement=resolve_placement("cpu", "bfloat16"))
    assert model.dtype == torch.bfloat16 and model.device.type == "cpu"
    with pytest.raises(TypeError):
        load_model_and_tokenizer("tiny", dtype=torch.float32, placement=resolve_placement("cpu"))


def test_the_server_answers_from_a_placed_model():
    server = make_server("tiny", port=0, placement=resolve_placement("cpu", "bfloat16"))
    try:
        assert server.chat_model.backend.model.dtype == torch.bfloat16
        request = parse_chat_request({"model": "tiny", "messages": [{"role": "user", "content": "Hello"}],
                                      "max_tokens": 3, "temperature": 0}, "tiny")
        assert server.chat_model.complete(request)["usage"]["completion_tokens"] == 3
    finally:
        server.server_close()


def test_serve_names_the_placement_in_its_startup_line(monkeypatch, capsys):
    monkeypatch.setattr(server_module._ChatServer, "serve_forever", lambda self: None)
    assert main(["serve", "--model", "tiny", "--port", "0", "--device", "cpu", "--dtype", "bfloat16"]) == 0
    assert "on cpu, bfloat16 (Ctrl-C stops)" in capsys.readouterr().out


@pytest.mark.parametrize("flags", [["--device", "cpu"], ["--dtype", "float32"]])
def test_tune_refuses_placement_flags_with_verl(capsys, flags):
    assert main(["tune", "--engine", "verl", "--preset", "smoke", *flags]) == 2
    assert f"{flags[0]} applies to --engine trl only" in capsys.readouterr().err


def test_tune_names_the_placement_in_its_startup_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(CurriculumRun, "run", lambda self: {"stages": [], "final_checkpoint": str(tmp_path)})
    assert main(["tune", "--preset", "smoke", "--output", str(tmp_path), "--device", "cpu", "--dtype", "bfloat16"]) == 0
    assert "model tiny on cpu, bfloat16, engine trl" in capsys.readouterr().out


CONFIG = parse_config({"name": "t", "stages": [{"name": "s", "split": "train", "reward": "progress", "max_steps": 1,
                                                "grpo": {"bf16": True}}]})


@pytest.mark.parametrize("dtype, bf16", [("auto", False), ("bfloat16", True)])
def test_a_cpu_placement_trains_on_the_cpu(monkeypatch, tmp_path, dtype, bf16):
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path))  # set by _grpo_args; restored after the test
    engine = TrlEngine(resolve_placement("cpu", dtype))
    args = engine._grpo_args(CONFIG.stages[0], tmp_path, CONFIG.seed)
    assert args.use_cpu and args.bf16 is bf16


@pytest.mark.parametrize("placement, message", [
    (Placement("cuda:1", torch.bfloat16), "--device cuda:1: training runs on cpu or cuda:0"),
    (Placement("cuda:0", torch.float16), "--dtype float16: training runs in bfloat16 or float32"),
])
def test_training_refuses_what_the_trainer_cannot_honour(tmp_path, placement, message):
    with pytest.raises(ValueError, match="^" + message):
        TrlEngine(placement)
