"""A wheel of the litserve that is running, so that an image installs exactly this code.

The name ``litserve`` on the package index belongs to another project (Lightning AI's LitServe): an image must
never install litserve by name. ``build_wheel`` packs the running ``litserve`` package with the metadata its
installation recorded (dependencies and extras included), with the standard library only: no build backend,
no network. The same code gives the same bytes, so a rebuilt image reuses its cached layers.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import zipfile
from pathlib import Path
from typing import List, Optional, Tuple
from urllib.parse import unquote, urlparse

import litserve

WHEEL_TAG = "py3-none-any"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamps: the same files give the same wheel


def wheel_name(version: str = litserve.__version__) -> str:
    """The file name of this litserve's wheel, e.g. ``litserve-0.1.0-py3-none-any.whl``."""
    return f"litserve-{version}-{WHEEL_TAG}.whl"


def build_wheel(destination: Path) -> Path:
    """Write the wheel of the running litserve into ``destination``; returns its path.

    Raises ValueError when the running code is not an installed distribution (e.g. only on ``PYTHONPATH``)
    or its recorded metadata is stale: then there is no trustworthy list of its dependencies.
    """
    package_dir = Path(litserve.__file__).resolve().parent
    dist = _distribution_of(package_dir)
    version = dist.version
    if version != litserve.__version__:
        raise ValueError(
            f"the installed metadata of litserve says {version} but its code is {litserve.__version__}: "
            f"reinstall it (pip install -e . in {package_dir.parent}) and run dockerize again"
        )
    dist_info = f"litserve-{version}.dist-info"
    entries: List[Tuple[str, bytes]] = [
        (f"litserve/{path.relative_to(package_dir).as_posix()}", path.read_bytes())
        for path in _package_files(package_dir)
    ]
    entries.append((f"{dist_info}/METADATA", _metadata_text(dist).encode()))
    for name in ("entry_points.txt", "licenses/LICENSE"):
        text = dist.read_text(name)
        if text is not None:
            entries.append((f"{dist_info}/{name}", text.encode()))
    wheel = f"Wheel-Version: 1.0\nGenerator: litserve dockerize\nRoot-Is-Purelib: true\nTag: {WHEEL_TAG}\n"
    entries.append((f"{dist_info}/WHEEL", wheel.encode()))
    record = "".join(f"{name},sha256={_digest(data)},{len(data)}\n" for name, data in entries)
    entries.append((f"{dist_info}/RECORD", (record + f"{dist_info}/RECORD,,\n").encode()))

    destination.mkdir(parents=True, exist_ok=True)
    path = destination / wheel_name(version)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return path


def _distribution_of(package_dir: Path) -> importlib.metadata.Distribution:
    """The installed distribution named litserve whose files are ``package_dir`` (editable or not).

    An installed ``.dist-info`` comes before a checkout's ``.egg-info`` (a build's leftover on ``sys.path``).
    """
    found = [dist for dist in importlib.metadata.distributions(name="litserve") if _source_dir(dist) == package_dir]
    found.sort(key=lambda dist: dist.read_text("METADATA") is None)
    if found:
        return found[0]
    raise ValueError(
        f"the litserve in {package_dir} is not installed as a package, so its wheel cannot be built: "
        f"run pip install -e . in {package_dir.parent} (or install its wheel) and run dockerize again"
    )


def _metadata_text(dist: importlib.metadata.Distribution) -> str:
    return dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""


def _source_dir(dist: importlib.metadata.Distribution) -> Optional[Path]:
    direct_url = dist.read_text("direct_url.json")
    if direct_url:
        info = json.loads(direct_url)
        url = urlparse(info.get("url", ""))
        if info.get("dir_info", {}).get("editable") and url.scheme == "file":
            return (Path(unquote(url.path)) / "litserve").resolve()
    init = Path(str(dist.locate_file("litserve/__init__.py")))
    return init.resolve().parent if init.is_file() else None


def _package_files(package_dir: Path) -> List[Path]:
    return sorted(
        path
        for path in package_dir.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo")
    )


def _digest(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
