"""Pinned `bfcl-eval` releases: download, verify, cache and import them without their dependencies.

`bfcl-eval` on PyPI pins many heavy, conflicting packages, while the multi-turn data, tool docs and
backends need only the standard library and mpmath. So we fetch the wheel alone (`pip download
--no-deps`), check it against a sha256 pinned here, unpack it once into the user cache and read data
and backend modules from there. An installed `bfcl_eval` of the same version is used as is.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.machinery
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from envtune.console import status
from envtune.errors import EnvtuneError

CACHE_ENV_VAR = "ENVTUNE_CACHE_DIR"
RELEASE_ENV_VAR = "ENVTUNE_BFCL_RELEASE"


@dataclass(frozen=True)
class BfclRelease:
    version: str
    sha256: str
    data_prefix: str  # file-name prefix of the multi-turn data files in this release
    note: str

    @property
    def wheel_name(self) -> str:
        return f"bfcl_eval-{self.version}-py3-none-any.whl"


RELEASES: dict[str, BfclRelease] = {
    release.version: release
    for release in (
        BfclRelease(
            version="2026.3.23",
            sha256="3bb6dfa5f0c68ad403c9ec50b00db2bb3b4cc9b38ab1ff33f48fe30d853d3a0a",
            data_prefix="BFCL_v4",
            note="latest release, with the fixed multi-turn data (default)",
        ),
        BfclRelease(
            version="2025.6.8",
            sha256="f93fee3a66d33f8ea09e5174b4ba72aa80732b31506be1043da8ffb23c299cc3",
            data_prefix="BFCL_v3",
            note="earliest June-2025 release: the multi-turn environment of the paper",
        ),
    )
}
DEFAULT_RELEASE = "2026.3.23"
PAPER_RELEASE = "2025.6.8"


class BfclReleaseError(EnvtuneError):
    """A pinned release cannot be found, downloaded or verified."""


def cache_dir() -> Path:
    """Root of envtune's user cache: $ENVTUNE_CACHE_DIR, else $XDG_CACHE_HOME/envtune, else ~/.cache/envtune."""
    override = os.environ.get(CACHE_ENV_VAR)
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "envtune"


def resolve_release(version: str | None = None) -> BfclRelease:
    """The pinned release for `version`, $ENVTUNE_BFCL_RELEASE, or the default."""
    version = version or os.environ.get(RELEASE_ENV_VAR) or DEFAULT_RELEASE
    try:
        return RELEASES[version]
    except KeyError:
        known = ", ".join(sorted(RELEASES))
        raise BfclReleaseError(
            f"bfcl-eval release {version!r} is not pinned by envtune; choose one of: {known}"
        ) from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _release_dir(release: BfclRelease) -> Path:
    return cache_dir() / "bfcl" / release.version


def _installed_root(release: BfclRelease) -> Path | None:
    """Directory holding an installed `bfcl_eval` package of exactly this version, if any."""
    try:
        if importlib.metadata.version("bfcl-eval") != release.version:
            return None
    except importlib.metadata.PackageNotFoundError:
        return None
    spec = importlib.machinery.PathFinder.find_spec("bfcl_eval")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]).parent


def install_wheel(release: BfclRelease, wheel: Path) -> Path:
    """Verify a downloaded wheel and unpack it into the cache; returns the unpacked root."""
    actual = _sha256(wheel)
    if actual != release.sha256:
        raise BfclReleaseError(
            f"{wheel} has sha256 {actual}, but envtune pins {release.sha256} for "
            f"bfcl-eval {release.version}; refusing to use it"
        )
    target = _release_dir(release)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{release.version}-", dir=target.parent))
    try:
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(staging / "root")
        shutil.copy2(wheel, staging / release.wheel_name)
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)  # atomic: a reader sees the whole release or none of it
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target / "root"


def fetch(release: BfclRelease, wheel: Path | None = None) -> Path:
    """Make `release` available in the cache (downloading it with pip unless `wheel` is given)."""
    root = _release_dir(release) / "root"
    cached_wheel = _release_dir(release) / release.wheel_name
    if wheel is None and (root / "bfcl_eval").is_dir() and cached_wheel.is_file():
        if _sha256(cached_wheel) == release.sha256:
            return root
    if wheel is not None:
        return install_wheel(release, Path(wheel))
    status(f"downloading bfcl-eval {release.version} from PyPI (pip download, the wheel only) ...")
    with tempfile.TemporaryDirectory(prefix="envtune-bfcl-") as download_dir:
        command = [
            sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
            "--disable-pip-version-check", "--quiet", "--dest", download_dir,
            f"bfcl-eval=={release.version}",
        ]
        completed = subprocess.run(command, capture_output=True, text=True)
        downloaded = Path(download_dir) / release.wheel_name
        if completed.returncode != 0 or not downloaded.exists():
            raise BfclReleaseError(
                f"could not download bfcl-eval {release.version} "
                f"({completed.stderr.strip().splitlines()[-1:] or 'no output'}).\n"
                f"Run `envtune bfcl fetch --release {release.version}` where PyPI is reachable, or "
                f"copy {release.wheel_name} here and run "
                f"`envtune bfcl fetch --release {release.version} --wheel PATH`."
            )
        return install_wheel(release, downloaded)


@lru_cache(maxsize=None)
def release_root(version: str | None = None) -> Path:
    """Directory containing the `bfcl_eval` package of a pinned release, without downloading.

    Prefers an installed package of the same version, then the cache.
    """
    release = resolve_release(version)
    installed = _installed_root(release)
    if installed is not None:
        return installed
    root = _release_dir(release) / "root"
    if not (root / "bfcl_eval").is_dir():
        raise BfclReleaseError(
            f"bfcl-eval {release.version} is not in the cache ({root.parent}). "
            f"Run `envtune bfcl fetch --release {release.version}` first "
            f"(set ${CACHE_ENV_VAR} to use another cache directory)."
        )
    return root


def package_dir(version: str | None = None) -> Path:
    return release_root(version) / "bfcl_eval"


def import_bfcl_package(version: str | None = None):
    """Import the (empty) top-level `bfcl_eval` package of a release, so that its backend modules
    can be imported by name without putting the release on sys.path or running its heavy modules.

    One process uses one release: importing a second one is refused with a clear error.
    """
    root = release_root(version)
    loaded = sys.modules.get("bfcl_eval")
    if loaded is not None:
        loaded_root = Path(list(loaded.__path__)[0]).parent
        if loaded_root.resolve() != root.resolve():
            raise BfclReleaseError(
                f"another bfcl_eval ({loaded_root}) is already imported in this process; "
                f"a process can use one BFCL release only (asked for {root})"
            )
        return loaded
    spec = importlib.machinery.PathFinder.find_spec("bfcl_eval", [str(root)])
    if spec is None:
        raise BfclReleaseError(f"no bfcl_eval package under {root}")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bfcl_eval"] = module
    spec.loader.exec_module(module)
    return module
