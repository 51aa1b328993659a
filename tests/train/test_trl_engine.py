"""The TRL engine's stage set-up: one process, float32 master weights, LoRA adapters handed from stage to stage."""

import pytest

from envtune.cli import main
from envtune.errors import EnvtuneError
from envtune.models import resolve_placement
from envtune.train.engine import TrlEngine


@pytest.mark.parametrize("variable, value, named", [
    ("WORLD_SIZE", "8", "8 processes"),
    ("ACCELERATE_USE_FSDP", "true", "FSDP"),
    ("ACCELERATE_USE_DEEPSPEED", "true", "DeepSpeed"),
])
def test_several_processes_or_a_sharded_model_are_refused(monkeypatch, capsys, tmp_path, variable, value, named):
    monkeypatch.setenv(variable, value)
    with pytest.raises(EnvtuneError, match=f"{named}.*--engine verl"):
        TrlEngine(resolve_placement("cpu"))
    assert main(["tune", "--preset", "smoke", "--output", str(tmp_path / "run")]) == 2
    assert "--engine verl" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
