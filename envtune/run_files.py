"""Files of run directories: written atomically and readable, appended line by line, read back
tolerantly, and held by one process at a time."""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator
from envtune.errors import EnvtuneError

_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once at import: files get the mode an ordinary `open(..., "w")` would give


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, staging = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.fchmod(descriptor, 0o666 & ~_UMASK)  # mkstemp creates 0600; results are meant to be shared
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(staging, path)


def write_json(path: Path, document: Any) -> None:
    write_atomically(path, json.dumps(document, indent=1, default=str) + "\n")


def trim_cut_line(path: Path) -> int:
    """Remove a last line that a kill cut short (no final newline), so the next append starts a
    line of its own instead of gluing onto it. Returns the number of bytes removed."""
    try:
        handle = path.open("rb+")
    except FileNotFoundError:
        return 0
    with handle:
        size = handle.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return 0
        keep, position, chunk = 0, size, 65536
        while position > 0:  # scan back for the last complete line
            start = max(0, position - chunk)
            handle.seek(start)
            block = handle.read(position - start)
            newline = block.rfind(b"\n")
            if newline >= 0:
                keep = start + newline + 1
                break
            position = start
        handle.truncate(keep)
        return size - keep


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """One line per record; a line cut by an earlier kill is removed first (see `trim_cut_line`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    trim_cut_line(path)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record, default=str) + "\n")
        handle.flush()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # the last line of a killed run may be cut short
    return records


class DirectoryInUse(EnvtuneError):
    """Another live process holds the run directory."""


@contextmanager
def exclusive_directory(directory: Path, flag: str = "--output") -> Iterator[None]:
    """Hold `directory` for this process: a second run on it is refused while this one lives. The
    lock is the kernel's (flock), so a killed run releases it at once."""
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise DirectoryInUse(
                f"{directory} is in use by another run (pid {holder}); wait for it to finish or choose another {flag}"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
