"""The entry points ``pyproject.toml`` declares, registered for tests without installing the package.

``pip install`` (``scripts/setup.sh``: editable) writes them into a ``*.dist-info/entry_points.txt`` that
:func:`importlib.metadata.entry_points` finds on ``sys.path``. A test run from a checkout that was never installed
gets the same registration from :func:`registered_env` (a ``dist-info`` folder of its own, put on ``PYTHONPATH``
for a subprocess) or :func:`declared` (the ``EntryPoint`` objects, for monkeypatching in this process). Both read
``pyproject.toml``, so a wrong declaration there fails the tests.
"""

from __future__ import annotations

import os
import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: A distribution name of its own, so an editable install of the project (if any) is not shadowed.
DIST = "crossformer_explorer_test_plugins"


def declared(group: str) -> list[EntryPoint]:
    """The entry points ``pyproject.toml`` declares in ``group`` (``[project.entry-points."<group>"]``)."""
    table = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["entry-points"]
    return [EntryPoint(name, value, group) for name, value in table.get(group, {}).items()]


def registered_env(folder: Path, group: str) -> dict[str, str]:
    """``os.environ`` with ``folder`` on ``PYTHONPATH`` holding a ``dist-info`` that registers ``group``'s
    declared entry points (as ``pip install`` does)."""
    info = folder / f"{DIST}-0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {DIST}\nVersion: 0\n", encoding="utf-8")
    lines = [f"[{group}]"] + [f"{ep.name} = {ep.value}" for ep in declared(group)]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    path = [str(folder)] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}
