"""Which machine a benchmark ran on, and how much of it it really had (the share of CPU time given to others).

On a shared VM, load average says nothing about the time *stolen* by other tenants (``steal`` in
``/proc/stat``): with 2 vCPUs and a third of their time stolen, a wall-clock goal moves by 30–50 % between
runs while the code does not change. Benchmarks print this share beside their numbers.

    with StealMeter() as meter:
        run_benchmark()
    print(meter.describe())        # "CPU time stolen by other tenants: 34 % (16.4 of 48.3 CPU-s)"

or, for a script's ``main``: ``sys.exit(cpu_steal.run(main))``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

STAT = Path("/proc/stat")
USER_HZ = 100          # /proc/stat counts in clock ticks of 1/100 s on Linux


def _read() -> tuple[int, int] | None:
    """``(steal, total)`` ticks of all CPUs, or ``None`` where ``/proc/stat`` is missing (not Linux)."""
    try:
        fields = STAT.read_text().splitlines()[0].split()
    except OSError:
        return None
    # cpu user nice system idle iowait irq softirq steal guest guest_nice (guest is already in user)
    ticks = [int(v) for v in fields[1:9]]
    return ticks[7], sum(ticks)


class StealMeter:
    """Context manager measuring the stolen share of all CPUs' time while it is open."""

    def __init__(self) -> None:
        self._start: tuple[int, int] | None = None
        self.stolen_s = float("nan")
        self.total_s = float("nan")

    def __enter__(self) -> "StealMeter":
        self._start = _read()
        return self

    def __exit__(self, *exc: object) -> None:
        end = _read()
        if self._start is not None and end is not None:
            self.stolen_s = (end[0] - self._start[0]) / USER_HZ
            self.total_s = (end[1] - self._start[1]) / USER_HZ

    @property
    def share(self) -> float:
        """Stolen / all CPU time in the interval (NaN when unknown)."""
        return self.stolen_s / self.total_s if self.total_s and self.total_s > 0 else float("nan")

    def describe(self) -> str:
        if self.share != self.share:            # NaN
            return "CPU time stolen by other tenants: unknown (no /proc/stat)"
        return (f"CPU time stolen by other tenants: {self.share:.0%} ({self.stolen_s:.1f} of {self.total_s:.1f} "
                f"CPU-s){' — wall-clock goals are not comparable in this run' if self.share > 0.1 else ''}")


def hardware_line() -> str:
    """``# CPU: … [# GPU: …]`` and whether bf16 is native on the CPU: which machine a benchmark ran on
    (:func:`crossformer.hardware.describe`, :func:`crossformer.precision.cpu_has_native_bf16`)."""
    from crossformer import hardware, precision

    bf16 = ("native (oneDNN's bf16 linear runs here)" if precision.cpu_has_native_bf16()
            else "not native here (emulated, slower than fp32; precision 'auto' picks fp32)")
    return "\n".join(f"# {line}" for line in [*hardware.describe().splitlines(), f"CPU bf16: {bf16}"])


def run(main: Callable[[], int | None]) -> int:
    """The hardware line, then ``main()`` under a :class:`StealMeter`, then the meter's report as a ``# `` line;
    ``main``'s exit code. Every benchmark's ``__main__`` runs through this, so each output names its machine."""
    print(hardware_line(), flush=True)
    with StealMeter() as meter:
        rc = main()
    print(f"# {meter.describe()}")
    return int(rc or 0)
