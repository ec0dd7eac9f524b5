"""The demo training script: seeded and reproducible, resumable after a stop, writes loadable weights."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

import crossformer
from crossformer import navon

SCRIPT = Path(__file__).resolve().parents[1] / "training" / "train_demo.py"


@pytest.fixture(scope="module")
def train_demo():
    spec = importlib.util.spec_from_file_location("train_demo", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _train(train_demo, tmp_path: Path, run: str, *extra: str, workers: int = 0) -> Path:
    out = tmp_path / f"{run}.safetensors"
    argv = ["--steps", "4", "--batch", "3", "--warmup", "2", "--eval-every", "0", "--log-every", "1",
            "--ckpt-every", "100", "--seed", "5", "--workers", str(workers), "--threads", str(torch.get_num_threads()),
            "--runs-dir", str(tmp_path / "runs"), "--run", run, "--out", str(out), *extra]
    assert train_demo.main(argv) == 0
    return out


def _weights(path: Path) -> dict[str, torch.Tensor]:
    model, _ = crossformer.load_checkpoint(str(path))
    return model.state_dict()


def test_same_seed_same_weights_and_a_stopped_run_resumes_to_them(train_demo, tmp_path):
    straight = _train(train_demo, tmp_path, "straight")
    # the same run with the data made in a worker process, stopped after step 2 and started again
    assert not (tmp_path / "resumed.safetensors").exists()
    _train(train_demo, tmp_path, "resumed", "--stop-at", "2", workers=1)
    assert (tmp_path / "runs" / "resumed" / "last.pt").exists()
    assert not (tmp_path / "resumed.safetensors").exists()          # no weights until the run is complete
    # resuming keeps the checkpoint's schedule even when the command line asks for another one
    resumed = _train(train_demo, tmp_path, "resumed", "--decay", "0.5", workers=1)

    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    # and training moved the weights away from the seeded initialisation
    torch.manual_seed(5)
    init = crossformer.create_model("crossformer_demo").state_dict()
    assert any(not torch.allclose(init[k].half().float(), a[k].float()) for k in a)

    model, info = crossformer.load_checkpoint(str(straight))
    assert info.variant == "crossformer_demo" and tuple(info.config.class_names) == navon.CLASS_NAMES
    metrics = json.loads((tmp_path / "runs" / "straight" / "metrics.json").read_text())
    assert metrics["summary"]["steps"] == 4 and metrics["summary"]["images_seen"] == 12
    assert [h["step"] for h in metrics["history"] if "loss" in h] == [1, 2, 3, 4]


def test_another_seed_other_weights(train_demo, tmp_path):
    a = _weights(_train(train_demo, tmp_path, "a"))
    b = _weights(_train(train_demo, tmp_path, "b", "--seed", "6"))
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_size_schedule_and_curriculum(train_demo):
    sizes = [train_demo.step_size(0, k, 100) for k in range(100)]
    phases = train_demo.SIZE_PHASES
    for k, hw in enumerate(sizes):
        expected = [choices for start, choices in phases if k / 100 >= start][-1]
        assert hw in expected
    assert max(max(hw) for hw in sizes[:30]) <= 160                         # small images first
    final = set(phases[-1][1])                                              # the held-out sizes are trained
    assert {(224, 224), (192, 256), (320, 320), (288, 384)} <= final and set(sizes[-10:]) <= final
    assert train_demo.difficulty(0, 50) == 0.0 and train_demo.difficulty(25, 50) == 0.5
    assert train_demo.difficulty(80, 50) == 1.0 and train_demo.difficulty(3, 0) == 1.0
    lr = [train_demo.lr_at(k, 100, 1e-3, 10, 1e-5) for k in range(100)]
    assert lr[0] == pytest.approx(1e-4) and max(lr) == pytest.approx(1e-3) and lr[-1] == pytest.approx(1e-5, rel=0.1)
    assert all(a >= b for a, b in zip(lr[9:], lr[10:]))                     # cosine: never up after the warm-up
    # warm-up, a plateau at the peak, then the decay over the last 30 % of the run
    wsd = [train_demo.lr_at(k, 100, 1e-3, 10, 1e-5, decay=0.3) for k in range(100)]
    assert wsd[:10] == lr[:10] and set(wsd[9:70]) == {1e-3} and wsd[70] == pytest.approx(1e-3)
    assert all(a > b for a, b in zip(wsd[70:], wsd[71:])) and 1e-5 < wsd[-1] < 2e-5
