"""Command line of the dataset statistics: ``python -m crossformer.stats`` (and under ``torchrun``).

::

    python -m crossformer.stats --checkpoint ckpt.safetensors --images DIR --out stats.csv \\
        [--size 224 | --official-eval] [--batch 32] [--device auto] [--precision auto] [--summary s.html]
    torchrun --nproc_per_node N -m crossformer.stats …same arguments…

walks ``DIR`` (:func:`crossformer.stats_walk.walk_images`), reads each regular file exactly as the app reads
an upload (:func:`crossformer.images.load_model_input`: EXIF orientation, 16-bit, palettes, alpha, size
bounds), runs :func:`crossformer.stats_heads.head_stats` and writes one CSV row per image × block × head
(``image`` = path relative to ``DIR``). Rows go through :mod:`crossformer.stats_store`: ``OUT`` is always a
complete CSV, a killed run resumes where it stopped, and a run with other weights, preprocessing or precision
than ``OUT.json`` records is refused. Under torchrun each process takes every N-th image of the sorted list
and writes its own part; rank 0 merges them into ``OUT`` in the order a single process gives. Bad arguments,
foreign files and unreadable checkpoints end with one ``error:`` line on stderr and a non-zero exit.

``--summary`` draws the summary figure through a plugin: the writer registered under the entry point group
:data:`SUMMARY_WRITERS` (the package's own, ``viz.stats_report:write_summary``, comes with ``pip install``), which
takes the numbers of :func:`crossformer.analysis.dataset.summarise`. A checkout that was never installed writes
the CSV and says how to get the figure; ``crossformer`` itself imports no figure library.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch

from .analysis.dataset import StatsSummary, summarise
from .checkpoint import CheckpointError
from .config import MIN_INPUT_SIDE
from .geometry import plan_input_padding
from .images import ImageError, Preprocessing, load_model_input
from .model import pad_input
from .stats_csv import StatsFormatError, read_csv
from .stats_dist import Dist
from .stats_heads import head_stats, rows_per_image
from .stats_store import (PartWriter, RunIdentity, StatsResumeError, check_resumable, existing_parts,
                          image_names, is_own_file, merge, part_path, sidecar_path, write_identity)
from .stats_walk import Skipped, walk_images

PROG = "python -m crossformer.stats"
MAX_SIZE = 2048
MAX_BATCH = 4096
SUMMARY_SUFFIXES = (".html", ".htm", ".png")
#: Skipped names listed per reason at the end of a run.
LIST_SKIPPED = 5
#: Entry point group of the summary writers (``pyproject.toml``); ``--summary`` uses the one named ``figure``.
SUMMARY_WRITERS = "crossformer.summary_writers"
SUMMARY_WRITER = "figure"
#: ``writer(summary, path) -> path written`` (``.png`` may fall back to ``.html`` beside it).
SummaryWriter = Callable[[StatsSummary, Path], Path]


class UsageError(ValueError):
    """An argument that cannot work (missing folder, unwritable output, size below the model's minimum)."""


class SummaryUnavailable(RuntimeError):
    """No summary writer can be loaded: the package was never installed, or its figure libraries are missing."""


@dataclass
class Plan:
    """What rank 0 decided for every process: the images still to do (sorted), how many ``OUT`` holds."""

    todo: list[tuple[str, Path]]
    already: int
    skipped: Skipped
    error: str | None = None


def _bounded_int(lo: int, hi: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not lo <= v <= hi:
            raise argparse.ArgumentTypeError(f"{v} is outside {lo}…{hi}")
        return v
    return parse


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=PROG, description="Per-head attention statistics over a folder of images "
                                                        "(one CSV row per image × block × head).")
    ap.add_argument("--checkpoint", required=True, help="a checkpoint file (.safetensors, .pth, .npz)")
    ap.add_argument("--images", required=True, help="folder, walked recursively (symlinks followed)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--size", type=_bounded_int(MIN_INPUT_SIDE, MAX_SIZE), default=224,
                   help=f"resize every image to SIZE×SIZE (bicubic; {MIN_INPUT_SIDE}…{MAX_SIZE})")
    g.add_argument("--official-eval", action="store_true",
                   help="shorter side 256/224·224 bicubic, then centre crop 224 (the app's official transform)")
    ap.add_argument("--batch", type=_bounded_int(1, MAX_BATCH), default=32, help=f"images per forward (1…{MAX_BATCH})")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, mps (under torchrun: cuda:LOCAL_RANK)")
    ap.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"))
    ap.add_argument("--out", required=True,
                    help="CSV; resumed when it exists (same checkpoint and settings, recorded in OUT.json)")
    ap.add_argument("--summary", default=None,
                    help="optional summary figure, .html or .png (the figure of the app's Dataset statistics page)")
    return ap


def _check_paths(args: argparse.Namespace) -> None:
    """Every path argument usable before anything is loaded or written (raises :class:`UsageError`)."""
    images, ckpt, out = Path(args.images), Path(args.checkpoint), Path(args.out)
    if not images.exists():
        raise UsageError(f"--images {images}: no such folder")
    if not images.is_dir():
        raise UsageError(f"--images {images} is not a folder")
    if not ckpt.is_file():
        raise UsageError(f"--checkpoint {ckpt}: no such file")
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give a CSV file name")
    if not out.parent.is_dir():
        raise UsageError(f"--out {out}: the folder {out.parent} does not exist")
    try:                                                   # root ignores permission bits: try for real
        fd, probe = tempfile.mkstemp(dir=out.parent, prefix=".crossformer-stats-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise UsageError(f"--out {out}: cannot write in {out.parent} ({err.strerror or err})") from None
    if args.summary is not None:
        summary = Path(args.summary)
        if summary.suffix.lower() not in SUMMARY_SUFFIXES:
            raise UsageError(f"--summary {summary}: the name must end in .html or .png")
        if not summary.parent.is_dir():
            raise UsageError(f"--summary {summary}: the folder {summary.parent} does not exist")


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _prepare(args: argparse.Namespace, out: Path, identity: RunIdentity) -> Plan:
    """Rank 0: refuse an output this run must not touch, fold the parts of a killed run into ``OUT``,
    record the identity of a new output, walk the folder."""
    resumable = check_resumable(out, identity)
    if resumable and existing_parts(out):
        done = merge(out, identity.rows_per_image)
    elif resumable:
        done = image_names(out, identity.rows_per_image)
    else:
        done = set()
        write_identity(out, identity)
    files, skipped = walk_images(Path(args.images), ignore=lambda name: is_own_file(name, out),
                                 ignore_in=out.parent)
    if not files and not done:
        reasons = f" ({skipped.describe()})" if skipped.total() else ""
        return Plan([], 0, skipped, f"--images {args.images}: no files to read{reasons}")
    return Plan([f for f in files if f[0] not in done], len(done), skipped)


def _batches(files: Sequence[tuple[str, Path]], prep: Preprocessing, mean: tuple, std: tuple, batch: int,
             skipped: Skipped, progress) -> Iterator[tuple[list[str], np.ndarray]]:
    """``(names, (b, 3, S, S) float32)`` batches of the readable images; the rest go to ``skipped``."""
    names: list[str] = []
    arrays: list[np.ndarray] = []
    for rel, path in files:
        try:
            arrays.append(load_model_input(path, prep, mean, std))
            names.append(rel)
        except ImageError as err:
            skipped.add(err.reason, rel)
        except Exception as err:  # noqa: BLE001 — one odd file must not end a long run
            skipped.add(f"could not be read ({type(err).__name__})", rel)
        progress.update(1)
        if len(names) == batch:
            yield names, np.stack(arrays)
            names, arrays = [], []
    if names:
        yield names, np.stack(arrays)


def _run_shard(model, shard: Sequence[tuple[str, Path]], prep: Preprocessing, args: argparse.Namespace,
               device: torch.device, precision: str, writer: PartWriter, dist: Dist) -> tuple[int, Skipped]:
    """Rows of this process's images appended to its part, batch by batch; ``(images done, skipped)``."""
    from tqdm import tqdm

    skipped = Skipped()
    done = 0
    cfg = model.cfg
    with tqdm(total=len(shard), unit="img", file=sys.stderr, disable=not (dist.main and shard), mininterval=0.5,
              desc=f"rank 0 of {dist.world}" if dist.world > 1 else None) as bar:
        for names, arr in _batches(shard, prep, cfg.mean, cfg.std, args.batch, skipped, bar):
            x = torch.from_numpy(arr).to(device)
            if cfg.backbone:                           # a detector's backbone: pad to 32 as mmdet does
                x, _ = pad_input(x, 32)
            writer.append(head_stats(model, x, precision=precision, image_ids=names))
            done += len(names)
    return done, skipped


def summary_writer() -> SummaryWriter:
    """The writer registered as ``figure`` under :data:`SUMMARY_WRITERS` (several installs of the package register
    the same one: the first found is taken); raises :class:`SummaryUnavailable` with what to install."""
    found = list(entry_points(group=SUMMARY_WRITERS, name=SUMMARY_WRITER))
    again = "then run the same command again (finished images are not recomputed)"
    if not found:
        raise SummaryUnavailable("no summary figure: its writer is registered when the package is installed, so run "
                                 f"`pip install -e .` in the checkout (or install crossformer-explorer[app]), {again}")
    try:
        return found[0].load()
    except ImportError as err:
        raise SummaryUnavailable(f"no summary figure: its writer {found[0].value} cannot be imported ({err}), so "
                                 f"install the figure libraries with `pip install crossformer-explorer[app]`, {again}"
                                 ) from None


def write_summary(columns: dict[str, np.ndarray], path: str | Path) -> Path:
    """The summary figure of the app's Dataset statistics page for the CSV ``columns``, as ``.html`` or ``.png``
    (by suffix; PNG needs kaleido + chromium, else the HTML is written next to it), by the registered
    :func:`summary_writer`. Returns the file written; raises :class:`SummaryUnavailable` when none is registered."""
    return summary_writer()(summarise(columns), Path(path))


def _report(n_done: int, seconds: float, plan: Plan, skipped: Skipped, out: Path) -> None:
    line = f"{n_done} images done, {plan.already} already in {out}, {skipped.total()} skipped"
    line += f" ({skipped.describe()})" if skipped.total() else ""
    print(f"{line}; {seconds:.1f} s, {n_done / max(seconds, 1e-9):.1f} images/s", file=sys.stderr)
    for reason, names in sorted(skipped.by_reason.items()):
        more = f" … and {len(names) - LIST_SKIPPED} more" if len(names) > LIST_SKIPPED else ""
        print(f"  {reason}: {', '.join(repr(n) for n in names[:LIST_SKIPPED])}{more}", file=sys.stderr)


def _main(args: argparse.Namespace, dist: Dist) -> int:
    from .checkpoint import load_checkpoint
    from .precision import bf16_weights, resolve

    _check_paths(args)
    draw_summary = _summary_writer_or_say(args) if dist.main else None
    prep = Preprocessing("official", 224) if args.official_eval else Preprocessing("square", args.size)
    out = Path(args.out)
    device = dist.device(args.device)
    dist.start(device)
    model, _info = load_checkpoint(args.checkpoint, device=device)
    model.eval()
    if prep.size < model.cfg.min_input_side:
        raise UsageError(f"--size {prep.size} is below this model's minimum input side {model.cfg.min_input_side}")
    padded = plan_input_padding((prep.size, prep.size), 32)
    if model.cfg.backbone and padded.is_padded and dist.main:
        print(f"a detection/segmentation backbone: every input is {padded.describe()}", file=sys.stderr)
    precision = resolve(args.precision, device)
    if precision == "bf16":                            # the matmul weights cast once, not on every batch
        model = bf16_weights(model)

    plan = None
    if dist.main:
        identity = RunIdentity(sha256_file(args.checkpoint), prep.key, precision, rows_per_image(model),
                               Path(args.checkpoint).name)
        try:
            plan = _prepare(args, out, identity)
        except (StatsFormatError, StatsResumeError, OSError) as err:
            plan = Plan([], 0, Skipped(), str(err))
    plan = dist.broadcast(plan)
    if plan.error is not None:
        if dist.main:
            _forget_identity(out)
            print(f"{PROG}: error: {plan.error}", file=sys.stderr)
        return 1

    writer = PartWriter(part_path(out, dist.rank, dist.world))
    t0 = time.perf_counter()
    try:
        n_done, skipped = _run_shard(model, plan.todo[dist.rank::dist.world], prep, args, device, precision,
                                     writer, dist)
    finally:
        writer.close()
        if dist.main and dist.world == 1:
            _forget_identity(out)
    results = dist.gather((n_done, skipped))                 # also the barrier before the merge
    if not dist.main:
        return 0
    seconds = time.perf_counter() - t0
    for _, s in results:
        plan.skipped.update(s)
    if existing_parts(out):                                  # nothing new: OUT stays as it is
        merge(out, rows_per_image(model))
    _forget_identity(out)
    _report(sum(n for n, _ in results), seconds, plan, plan.skipped, out)
    if not out.exists():
        print(f"{PROG}: error: none of the {len(plan.todo)} files in {args.images} could be read as an image",
              file=sys.stderr)
        return 1
    if draw_summary is not None:
        written = draw_summary(summarise(read_csv(out.read_text(encoding="utf-8"))), Path(args.summary))
        print(f"summary: {written}", file=sys.stderr)
    return 0


def _summary_writer_or_say(args: argparse.Namespace) -> SummaryWriter | None:
    """The summary writer when ``--summary`` asks for one; ``None`` (after saying why, once, before the run
    starts: the CSV is written all the same) when none can be loaded."""
    if args.summary is None:
        return None
    try:
        return summary_writer()
    except SummaryUnavailable as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return None


def _forget_identity(out: Path) -> None:
    """Remove ``OUT.json`` when neither ``OUT`` nor a part exists (a run that wrote nothing)."""
    if not out.exists() and not existing_parts(out):
        sidecar_path(out).unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (2: bad arguments, 1: an input or output refused)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:                         # --help, or argparse's own one-line error
        return exit_.code if isinstance(exit_.code, int) else 0
    dist = Dist.from_env()
    try:
        return _main(args, dist)
    except UsageError as err:
        if dist.main:
            print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except (StatsFormatError, StatsResumeError, CheckpointError, OSError) as err:
        if dist.main:
            print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if dist.main:
            print(f"{PROG}: interrupted; finished batches are kept beside {args.out} and the same command resumes",
                  file=sys.stderr)
        return 130
    finally:
        dist.close()
