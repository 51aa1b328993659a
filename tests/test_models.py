"""Tiny local models come in sizes: `tiny` and `tiny-HIDDENxLAYERS`, each built once and cached."""

import pytest

from envtune.cli import main
from envtune.errors import EnvtuneError
from envtune.models import load_model_and_tokenizer, local_model_path, tiny_model_path


def test_a_sized_tiny_model_has_its_size_and_its_own_cache_entry():
    model, tokenizer = load_model_and_tokenizer("tiny-32x1")
    assert (model.config.hidden_size, model.config.num_hidden_layers) == (32, 1)
    assert local_model_path("tiny-32x1") == tiny_model_path(hidden_size=32, layers=1) != tiny_model_path()
    assert local_model_path("tiny") == tiny_model_path()  # the default size keeps its cached copy
    same, _ = load_model_and_tokenizer("tiny")
    assert (same.config.hidden_size, same.config.num_hidden_layers) == (64, 2)
    assert len(tokenizer) == same.config.vocab_size  # one tokenizer for every size
    assert local_model_path("Qwen/Qwen2.5-0.5B-Instruct") == "Qwen/Qwen2.5-0.5B-Instruct"


@pytest.mark.parametrize("name", ["tiny-12x2", "tiny-64x0"])
def test_a_tiny_size_that_cannot_be_built_is_refused_with_the_names_that_can(name, capsys, tmp_path):
    with pytest.raises(EnvtuneError, match="multiple of 8.*tiny-128x4"):
        local_model_path(name)
    assert main(["eval", "--model", name, "--ids", "multi_turn_base_0", "--output", str(tmp_path / "eval")]) == 2
    assert "tiny-HIDDENxLAYERS" in capsys.readouterr().err
