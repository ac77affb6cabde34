"""Every file a run reads or writes: the run directory, config.json, Parquet parts, checkpoints,
evaluation tables. All writes are atomic (temp file in the same directory, then os.replace),
so a crash leaves either the old file or the new one, never half of one; people.py writes its
table through `write_bytes` too. `scan` is the one place tables are read.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from prefixopt.config import TrainConfig, from_dict, to_dict
from prefixopt.errors import PrefixoptError
from prefixopt.people import People, load_people

PART_TABLES = ("iterations", "samples", "answers")
CHECKPOINT = "checkpoints/latest.npz"  # the commit point of every iteration
BUDGET = "budget.json"  # first estimates and engine starts (prefixopt/budget.py)


# --- atomic writes ----------------------------------------------------------------------------
def _atomic(path: Path, write: Callable[[Path], None], *, umask_mode: bool = False) -> None:
    """Write through a temp file next to `path`, then rename over it. umask_mode: the file
    gets the usual permissions (0666 minus the umask) instead of mkstemp's 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        if umask_mode:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    _atomic(Path(path), lambda p: p.write_text(text, encoding="utf-8"))


def write_bytes(path: Path, data: bytes, *, umask_mode: bool = False) -> None:
    _atomic(Path(path), lambda p: p.write_bytes(data), umask_mode=umask_mode)


def write_parquet(path: Path, df: pl.DataFrame) -> None:
    _atomic(Path(path), lambda p: df.write_parquet(p))


# --- the run directory ------------------------------------------------------------------------
def create_run_dir(output_dir: str | Path, run_name: str | None) -> Path:
    """Make a NEW run directory; an existing one is never reused or overwritten."""
    root = Path(output_dir)
    name = run_name or time.strftime("run-%Y%m%d-%H%M%S")
    run_dir = root / name
    if run_name is None:  # generated names get a suffix instead of an error
        n = 1
        while run_dir.exists():
            n += 1
            run_dir = root / f"{name}-{n}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        run_dir.mkdir()
    except FileExistsError:
        raise PrefixoptError(
            f"run directory {run_dir} already exists; choose another --run-name "
            f"or continue it with --resume {run_dir}"
        ) from None
    return run_dir


def write_config(run_dir: str | Path, cfg: Any, extra: dict[str, Any] | None = None) -> None:
    """config.json = {"config": the resolved config, **extra (versions, fingerprints, ...)}."""
    payload = {"config": to_dict(cfg), **(extra or {})}
    write_text(Path(run_dir) / "config.json", json.dumps(payload, indent=2, sort_keys=True))


def budget_path(run_dir: str | Path) -> Path:
    """budget.json: the run's first estimates and its engine starts (prefixopt/budget.py)."""
    return Path(run_dir) / BUDGET


def record_eval(run_dir: str | Path, name: str, info: dict[str, Any]) -> None:
    """config.json "evals"[name] = info (what an evaluation held out; kept on --resume)."""
    payload = read_config(run_dir)
    payload.setdefault("evals", {})[name] = info
    write_text(Path(run_dir) / "config.json", json.dumps(payload, indent=2, sort_keys=True))


def read_config(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / "config.json"
    if not path.is_file():
        raise PrefixoptError(f"{run_dir} is not a run directory (no config.json)")
    return json.loads(path.read_text(encoding="utf-8"))


def read_train_config(run_dir: str | Path) -> TrainConfig:
    return from_dict(TrainConfig, read_config(run_dir)["config"])


# --- Parquet tables ---------------------------------------------------------------------------
def split_slug(split: str) -> str:
    """The one file-name-safe, unambiguous token for a split spec or eval name:
    'validation[:50%]' -> 'validation_start-50pct', 'validation[50%:]' -> 'validation_50pct-end';
    a safe name ('test', 'test_n100_seed3') is its own slug."""
    s = split.replace("%", "pct")
    m = re.fullmatch(r"(\w+)\[([^:\]]*):([^\]]*)\]", s)
    if m:
        s = f"{m[1]}_{m[2] or 'start'}-{m[3] or 'end'}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", s).strip("_") or "split"


def eval_dir(run_dir: str | Path) -> Path:
    """eval/: every evaluation table of the run."""
    return Path(run_dir) / "eval"


def eval_path(run_dir: str | Path, split: str, suffix: str = "") -> Path:
    """eval/<slug><suffix>.parquet of a split spec or eval name: its rows (suffix ""), or
    "_summary", "_contexts", "_formats". split_slug is idempotent, so a slug may be passed."""
    return eval_dir(run_dir) / f"{split_slug(split)}{suffix}.parquet"


def write_part(run_dir: str | Path, table: str, iteration: int, df: pl.DataFrame) -> Path:
    if table not in PART_TABLES:
        raise ValueError(f"table must be one of {PART_TABLES}")
    path = Path(run_dir) / table / f"{iteration:06d}.parquet"
    write_parquet(path, df)
    return path


def truncate_parts(run_dir: str | Path, after_iteration: int) -> None:
    """Drop parts newer than the checkpoint (written by an iteration whose checkpoint was lost)."""
    for table in PART_TABLES:
        for path in (Path(run_dir) / table).glob("*.parquet"):
            if int(path.stem) > after_iteration:
                path.unlink()


def scan(run_dir: str | Path, table: str, through: int | None = None) -> pl.LazyFrame:
    """The one scan site: iterations | samples | answers | eval/<split> | eval/<split>_summary.
    through: a part table's iterations up to this one only (what a checkpoint committed; a
    part after it is a crashed iteration's, dropped when the run resumes)."""
    run_dir = Path(run_dir)
    if table in PART_TABLES:
        paths = sorted(p for p in (run_dir / table).glob("[0-9]*.parquet")
                       if through is None or int(p.stem) <= through)
        if not paths:
            raise PrefixoptError(f"{run_dir} has no {table} table yet (no finished iteration)")
        return pl.scan_parquet(paths)
    if table.startswith("eval/"):
        name = table.removeprefix("eval/")
        summary = name.endswith("_summary")
        path = eval_path(run_dir, name.removesuffix("_summary"), "_summary" if summary else "")
        if not path.is_file():
            raise PrefixoptError(f"{run_dir} has no {table} table; run `prefixopt eval {run_dir}`")
        return pl.scan_parquet(path)
    raise ValueError(f"unknown table {table!r}")


def write_eval(
    run_dir: str | Path, split: str, rows_df: pl.DataFrame, summary_df: pl.DataFrame
) -> None:
    write_parquet(eval_path(run_dir, split), rows_df)
    write_parquet(eval_path(run_dir, split, "_summary"), summary_df)


# --- checkpoints ------------------------------------------------------------------------------
def checkpoint_path(run_dir: str | Path) -> Path:
    """checkpoints/latest.npz: the learner's state after the last finished iteration."""
    return Path(run_dir) / CHECKPOINT


def has_checkpoint(run_dir: str | Path) -> bool:
    """Has the run finished an iteration (is there a checkpoint to resume from)?"""
    return checkpoint_path(run_dir).is_file()


def save_checkpoint(
    run_dir: str | Path,
    state: dict[str, Any],
    *,
    iteration: int,
    snapshot: np.ndarray | None = None,
) -> None:
    """checkpoints/latest.npz (arrays and strings only; no pickle) and, when given, a
    theta_NNNNNN.npy snapshot (the (N,) logits, row-aligned with the run's people)."""
    ckpt = checkpoint_path(run_dir).parent
    arrays = {k: np.asarray(v) for k, v in state.items()}
    arrays["iteration"] = np.asarray(iteration, dtype=np.int64)
    for key, value in arrays.items():
        if value.dtype == object:
            raise TypeError(f"checkpoint entry {key!r} is not a plain array")

    def write_npz(p: Path) -> None:
        buf = io.BytesIO()  # np.savez appends .npz to bare paths; write bytes ourselves
        np.savez(buf, **arrays)
        p.write_bytes(buf.getvalue())

    def write_npy(p: Path) -> None:
        with p.open("wb") as fh:
            np.save(fh, snapshot, allow_pickle=False)

    if snapshot is not None:
        _atomic(ckpt / f"theta_{iteration:06d}.npy", write_npy)
    _atomic(checkpoint_path(run_dir), write_npz)


def load_checkpoint(run_dir: str | Path) -> dict[str, np.ndarray]:
    path = checkpoint_path(run_dir)
    if not path.is_file():
        raise PrefixoptError(f"{run_dir} has no checkpoint ({CHECKPOINT})")
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def final_probs(run_dir: str | Path) -> np.ndarray:
    """The policy's probabilities (N,) at the latest checkpoint, row-aligned with run_people."""
    return np.asarray(load_checkpoint(run_dir)["probs"], dtype=float)


def resumed_meta(run_dir: str | Path, meta: dict[str, Any]) -> dict[str, Any]:
    """A resumed run's config.json entries under `meta`, after checking that its people and
    data are the ones it was trained on."""
    old = read_config(run_dir)
    meta = {**{k: v for k, v in old.items() if k != "config"}, **meta}
    for key in ("people_fingerprint", "data_fingerprint"):
        if old.get(key) != meta[key]:
            raise PrefixoptError(f"cannot resume {run_dir}: its {key} differs from now")
    return meta


def check_resume_dtype(run_dirs: Iterable[str | Path], dtype: str, why: str) -> None:
    """A run's training continues in the dtype it was trained in. `--dtype auto` resolves per
    machine (device.resolve_dtype), so a run started on a CPU with native bf16 and resumed on
    one without would mix bfloat16 and float32 steps in one policy (and config.json would name
    only the second): one line before the engine starts instead. why: the resolved dtype and
    its reason (ResolvedEngine.dtype_why)."""
    for run_dir in run_dirs:
        was = read_config(run_dir).get("versions", {}).get("dtype")
        if was is not None and was != dtype:
            raise PrefixoptError(
                f"cannot resume {run_dir}: it was trained in {was} and this job resolves to "
                f"{why}; its steps would mix two dtypes: resume it where the dtype "
                f"resolves to {was}, or start a new run (a study: give the spec another name)")


def final_ranking(run_dir: str | Path) -> np.ndarray:
    """(N,) people rows, best first: the learner's own ranking (halving, ttts: checkpoint
    "ranking"), else the final policy's probabilities, most probable first (REINFORCE)."""
    ckpt = load_checkpoint(run_dir)
    if "ranking" in ckpt:
        return np.asarray(ckpt["ranking"], dtype=np.int64)
    return np.argsort(-np.asarray(ckpt["probs"], dtype=float), kind="stable")


def run_people(run_dir: str | Path) -> People:
    """The people table the run used (same file, same exclusions), checked by fingerprint."""
    meta = read_config(run_dir)
    cfg = meta["config"]
    people = load_people(
        cfg.get("people"),
        exclude_fields=tuple(cfg.get("exclude_fields", ())),
        exclude_occupations=tuple(cfg.get("exclude_occupations", ())),
    )
    expected = meta.get("people_fingerprint")
    if expected and people.fingerprint != expected:
        raise PrefixoptError(
            f"the people file of {run_dir} changed since the run (fingerprint mismatch); "
            "regenerate it with `prefixopt setup` or pass the original file"
        )
    return people


@contextlib.contextmanager
def temp_run_dir() -> Iterator[Path]:
    """A throwaway run directory (simulate without --out), removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="prefixopt-sim-") as tmp:
        yield Path(tmp)
