"""The README's Python examples run as written and print what their comments say."""

import re
import subprocess
import sys

import pytest
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


@pytest.mark.parametrize("example", re.findall(r"```python\n(.*?)```", README.read_text(), re.S))
def test_python_examples_print_what_they_promise(example):
    promised = [
        line.split("# ", 1)[1].strip()
        for line in example.splitlines()
        if line.strip().startswith("print(") and "# " in line
    ]
    run = subprocess.run([sys.executable, "-"], input=example, capture_output=True, text=True, check=True)
    assert run.stdout.splitlines() == promised
