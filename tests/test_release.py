"""Pinned releases are verified, cached where the user says, and import without heavy modules."""

import json
import subprocess
import sys

import pytest

from envtune.bfcl import release as bfcl_release
from envtune.bfcl.release import RELEASES, BfclReleaseError, cache_dir, install_wheel, release_root, resolve_release

DEFAULT = resolve_release()


@pytest.fixture(scope="module")
def wheel():
    """The verified wheel of the default release, as `envtune bfcl fetch` left it in the cache."""
    return release_root(DEFAULT.version).parent / DEFAULT.wheel_name


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ENVTUNE_CACHE_DIR", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("ENVTUNE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "envtune"


def test_unknown_release_names_the_pinned_ones():
    with pytest.raises(BfclReleaseError, match="2026.3.23"):
        resolve_release("1999.1.1")


def test_missing_cache_says_what_to_run(monkeypatch, tmp_path):
    monkeypatch.setenv("ENVTUNE_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(bfcl_release, "_installed_root", lambda release: None)
    release_root.cache_clear()
    try:
        with pytest.raises(BfclReleaseError, match=r"envtune bfcl fetch --release 2026\.3\.23"):
            release_root(DEFAULT.version)
    finally:
        release_root.cache_clear()


def test_a_wheel_with_the_wrong_hash_is_refused(monkeypatch, tmp_path, wheel):
    monkeypatch.setenv("ENVTUNE_CACHE_DIR", str(tmp_path / "cache"))
    tampered = tmp_path / DEFAULT.wheel_name
    tampered.write_bytes(wheel.read_bytes() + b"\0")
    with pytest.raises(BfclReleaseError, match="refusing"):
        install_wheel(DEFAULT, tampered)
    assert not (tmp_path / "cache" / "bfcl" / DEFAULT.version).exists()


def test_a_verified_wheel_is_unpacked_into_the_cache(monkeypatch, tmp_path, wheel):
    monkeypatch.setenv("ENVTUNE_CACHE_DIR", str(tmp_path))
    root = install_wheel(DEFAULT, wheel)
    assert root == tmp_path / "bfcl" / DEFAULT.version / "root"
    assert (root / "bfcl_eval" / "data" / "multi_turn_func_doc" / "math_api.json").is_file()
    assert sorted(p.name for p in (tmp_path / "bfcl").iterdir()) == [DEFAULT.version]  # no staging left


def test_every_pinned_release_has_a_sha256():
    assert all(len(release.sha256) == 64 for release in RELEASES.values())


def test_backends_import_without_heavy_modules():
    script = (
        "import json, sys\n"
        "from envtune.bfcl import load_tasks, ToolSession\n"
        "for task in load_tasks():\n"
        "    ToolSession.for_task(task).execute('ls()')\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    modules = json.loads(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)
    bfcl_modules = [name for name in modules if name.startswith("bfcl_eval")]
    assert all(".func_source_code" in name or name.count(".") < 3 for name in bfcl_modules), bfcl_modules
    heavy = {"bfcl_eval.model_handler", "numpy", "requests", "openai", "anthropic", "torch", "faiss", "tenacity"}
    assert heavy.isdisjoint(modules)


def test_an_installed_bfcl_eval_of_the_same_version_is_used(tmp_path, wheel):
    """A site directory holding bfcl_eval 2026.3.23 (package + dist-info) wins over an empty cache."""
    import zipfile

    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    script = "from envtune.bfcl.release import release_root; print(release_root())"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "ENVTUNE_CACHE_DIR": str(tmp_path / "empty")}
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    assert run.stdout.strip() == str(site)


def test_a_failed_download_says_how_to_fetch_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("ENVTUNE_CACHE_DIR", str(tmp_path))

    def offline(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "ERROR: Could not find a version (network unreachable)")

    monkeypatch.setattr(bfcl_release.subprocess, "run", offline)
    with pytest.raises(BfclReleaseError) as error:
        bfcl_release.fetch(DEFAULT)
    message = str(error.value)
    assert "network unreachable" in message
    assert f"envtune bfcl fetch --release {DEFAULT.version} --wheel PATH" in message
