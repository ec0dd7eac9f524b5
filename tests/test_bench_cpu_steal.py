"""``benchmarks/cpu_steal.py``: the stolen share of CPU time read from ``/proc/stat`` differences."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import cpu_steal  # noqa: E402


def test_stolen_share_is_the_steal_difference_over_all_cpu_time(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    monkeypatch.setattr(cpu_steal, "STAT", stat)
    #            user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text("cpu  1000 0 100 5000 0 0 0 200 0 0\ncpu0 1 2 3\n")
    with cpu_steal.StealMeter() as meter:
        stat.write_text("cpu  1600 0 150 5100 0 0 0 500 0 0\ncpu0 1 2 3\n")
    assert (meter.stolen_s, meter.total_s) == (3.0, 10.5)          # 300 of 1050 ticks at 100 Hz
    assert abs(meter.share - 300 / 1050) < 1e-12 and "29%" in meter.describe()
    assert "not comparable" in meter.describe()


def test_without_proc_stat_the_share_is_unknown(tmp_path, monkeypatch):
    monkeypatch.setattr(cpu_steal, "STAT", tmp_path / "missing")
    with cpu_steal.StealMeter() as meter:
        pass
    assert meter.share != meter.share and "unknown" in meter.describe()


def test_run_returns_the_exit_code_and_prints_the_report(capsys):
    assert cpu_steal.run(lambda: 3) == 3 and cpu_steal.run(lambda: None) == 0
    assert capsys.readouterr().out.count("# CPU time stolen by other tenants") == 2


def test_run_names_the_machine_first(capsys):
    cpu_steal.run(lambda: 0)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# CPU: ") and "cores" in lines[0]
    assert lines[-1].startswith("# CPU time stolen")


def test_every_benchmark_runs_through_the_hardware_report():
    """A new benchmark without the hardware line would print ratios that name no machine."""
    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    scripts = [p for p in bench.glob("*.py") if p.name != "cpu_steal.py"]
    assert len(scripts) >= 10
    missing = [p.name for p in scripts if "cpu_steal.run(main)" not in p.read_text()]
    assert not missing, f"benchmarks whose output does not name the CPU/GPU: {missing}"
