"""A study directory's manifest.json: the spec it ran with and the state of every cell, rewritten
atomically after each change so a killed study resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from prefixopt import runs
from prefixopt.errors import PrefixoptError


def manifest_path(study_dir: Path) -> Path:
    return Path(study_dir) / "manifest.json"


def read_manifest(study_dir: str | Path) -> dict[str, Any]:
    path = manifest_path(Path(study_dir))
    if not path.is_file():
        raise PrefixoptError(f"{study_dir} is not a study directory (no manifest.json)")
    return json.loads(path.read_text(encoding="utf-8"))


def write_manifest(study_dir: Path, manifest: dict[str, Any]) -> None:
    manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    runs.write_text(manifest_path(study_dir), json.dumps(manifest, indent=2, sort_keys=True))
