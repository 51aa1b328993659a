"""The README's Python example runs as written and prints what its comments say."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_python_example_prints_what_it_promises():
    example = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    promised = [
        line.split("# ", 1)[1].strip()
        for line in example.splitlines()
        if line.strip().startswith("print(") and "# " in line
    ]
    run = subprocess.run([sys.executable, "-"], input=example, capture_output=True, text=True, check=True)
    assert run.stdout.splitlines() == promised
