"""Train the shipped demo CrossFormer (``crossformer_demo``) on generated Navon figures, on the CPU.

    .venv/bin/python training/train_demo.py                       # full run (resumes if interrupted)
    .venv/bin/python training/train_demo.py --steps 20 --run smoke --out /tmp/smoke.safetensors

Recipe (see assets/MODEL_CARD.md; the defaults reproduce the shipped weights, 3,300 steps, resumable; ~100 min on 2 cores in bf16, trained in two sittings):
every step draws a fresh batch from the Navon generator, seeded by ``(seed, step)``, so a run is
reproducible and needs no data on disk. Curriculum: the image nuisances (colours, texture, stripes, noise)
ramp from 0 to full over the first ``--curriculum`` of the steps. Sizes (:data:`SIZE_PHASES`): 40 % of the
steps at 128–160 px, then 160–256 px, then the last 35 % at 192–384 px in several aspect ratios (padded SDA
windows and LDA groups of many shapes); the dynamic position bias makes one set of weights valid at every
size. AdamW, linear warm-up to a peak learning rate of 3e-4 (1e-3 collapses this small model to a constant
output), held until the last ``--decay`` of the run, then cosine decay; gradient clipping; the loss adds the
two marginal cross-entropies (global shape, local shape) of the 5 × 5 logits to the 25-way one — no term
looks at attention or the bias. ``--precision auto`` trains in bf16 autocast where the hardware does bf16
natively (AVX512-BF16/AMX CPUs, CUDA), fp32 otherwise.

On the CPU the explicit-softmax attention path trains faster than SDPA, the large CEL kernels run as
stride-1 convs over pixel blocks (same function, faster backward), and one worker process generates the
next batches while the model trains. A checkpoint is written to ``<runs-dir>/<run>/`` every
``--ckpt-every`` steps; starting again with the same ``--run`` resumes from it (``--stop-at`` ends a
sitting early); ``--init`` starts a new schedule from existing weights (fine-tuning).

At the end it writes the weights (float16 safetensors, the model's own state-dict keys, config and class
names in the metadata) and ``<runs-dir>/<run>/metrics.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from pathlib import Path

# Several processes sharing two cores: OpenMP threads that spin while waiting slow everyone down.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import crossformer  # noqa: E402
from crossformer import navon  # noqa: E402
from crossformer import precision  # noqa: E402
from crossformer.checkpoint import save_safetensors  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_demo import predict, scores, to_tensor  # noqa: E402  (same evaluation code as the model card's)

log = logging.getLogger("train_demo")

#: Size schedule: (fraction of the run where the phase starts, [(H, W) choices]).
#: Several sizes and aspect ratios in every phase, so the model sees padded SDA windows and padded LDA
#: groups of many shapes; the last phase covers 192–384 px (the held-out sizes 224², 192×256, 320² and
#: 288×384 among them).
SIZE_PHASES: tuple[tuple[float, tuple[tuple[int, int], ...]], ...] = (
    (0.0, ((128, 128), (128, 128), (128, 160), (160, 128))),
    (0.40, ((160, 160), (192, 192), (160, 224), (224, 160), (192, 256), (256, 192))),
    (0.65, ((224, 224), (224, 224), (192, 256), (256, 192), (192, 256), (256, 192), (256, 256), (288, 384),
            (384, 288), (320, 320), (224, 288), (288, 224))),
)


def difficulty(step: int, ramp_steps: int) -> float:
    """Nuisance level of a step's images: ramps linearly from 0 (grey, clean) to 1 over ``ramp_steps``."""
    return 1.0 if ramp_steps <= 0 else min(1.0, step / ramp_steps)


#: Options that define a run's data and schedule: a resumed run keeps its checkpoint's values.
SCHEDULE_ARGS = ("steps", "batch", "seed", "lr", "min_lr", "warmup", "decay", "weight_decay", "label_smoothing",
                 "aux", "clip", "curriculum", "max_rotation", "sizes", "precision")

#: Fixed per-step work (Python, optimiser, small kernels) in units of image pixels, for the ETA: a step at
#: 128² took 0.97 s and one at 224² 1.78 s (batch 32, 2 threads), i.e. time ≈ b · (H·W + 24,000).
STEP_OVERHEAD_PX = 24_000


def step_cost(size: tuple[int, int]) -> float:
    """Relative time of one training step at ``size`` (for the ETA)."""
    return float(size[0] * size[1] + STEP_OVERHEAD_PX)


def train_seed(seed: int, step: int) -> int:
    """Seed of the batch of one training step (a SeedSequence of ``(seed, step)``)."""
    return int(np.random.SeedSequence((seed, step, 7)).generate_state(1)[0])


def step_size(seed: int, step: int, total: int, final_only: bool = False) -> tuple[int, int]:
    """Image size of one step: drawn from the size phase the step falls in (``final_only``: the last)."""
    frac = 1.0 if final_only else step / max(total, 1)
    choices = [c for start, c in SIZE_PHASES if frac >= start][-1]
    rng = np.random.default_rng(np.random.SeedSequence((seed, step, 11)))
    return choices[int(rng.integers(len(choices)))]


class StepBatches(torch.utils.data.Dataset):
    """Item ``k`` = the batch of training step ``start + k``: ``(uint8 (B, H, W, 3), int64 (B,))``."""

    def __init__(self, seed: int, sizes: list[tuple[int, int]], batch: int, start: int,
                 max_rotation: float | None = None, ramp_steps: int = 0) -> None:
        self.seed, self.sizes, self.batch, self.start = seed, sizes, batch, start
        self.max_rotation, self.ramp_steps = max_rotation, ramp_steps

    def __len__(self) -> int:
        return len(self.sizes) - self.start

    def __getitem__(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        step = self.start + k
        return navon.navon_batch(train_seed(self.seed, step), self.batch, self.sizes[step], self.max_rotation,
                                 difficulty(step, self.ramp_steps))


def _as_is(batch: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    return batch


def joint_loss(logits: torch.Tensor, labels: torch.Tensor, smoothing: float, aux: float) -> torch.Tensor:
    """Cross-entropy over the 25 classes + ``aux`` × the cross-entropies of the two marginals.

    ``logits (B, 25)`` viewed as ``(B, global, local)``; a marginal's log-probabilities are the
    log-sum-exp over the other factor, so the same 25-way head gets a direct signal for each factor.
    """
    loss = F.cross_entropy(logits, labels, label_smoothing=smoothing)
    if aux:
        lg = logits.view(-1, navon.NUM_SHAPES, navon.NUM_SHAPES)
        g, l = navon.split_label(labels)
        loss = loss + aux * (F.cross_entropy(lg.logsumexp(2), g) + F.cross_entropy(lg.logsumexp(1), l))
    return loss


def lr_at(step: int, total: int, base: float, warmup: int, floor: float, decay: float = 1.0) -> float:
    """Linear warm-up over ``warmup`` steps, ``base`` until the last ``decay`` fraction of the run, then
    cosine decay to ``floor`` (``decay=1``: cosine over everything after the warm-up)."""
    if step < warmup:
        return base * (step + 1) / warmup
    decay_start = max(warmup, total - int(round(decay * total)))
    if step < decay_start:
        return base
    t = (step - decay_start) / max(total - decay_start, 1)
    return floor + 0.5 * (base - floor) * (1 + math.cos(math.pi * min(t, 1.0)))


def quick_eval(model: torch.nn.Module, seed: int, n: int, size: tuple[int, int]) -> tuple[float, float, float]:
    """Top-1, global-shape and local-shape accuracy on ``n`` generated images (seed outside training)."""
    model.eval()
    images, labels = navon.navon_batch(seed, n, size)
    r = scores(predict(model, images), labels)
    model.train()
    return r["top1"], r["global"], r["local"]


def fmt_time(s: float) -> str:
    s = int(s)
    return f"{s // 3600:d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=3300, help="optimizer steps")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-4, help="peak learning rate (1e-3 collapses to a constant output)")
    ap.add_argument("--min-lr", type=float, default=1e-5)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--decay", type=float, default=0.35,
                    help="fraction of the run over which the lr decays (cosine); before it, the peak lr")
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--label-smoothing", type=float, default=0.0)
    ap.add_argument("--aux", type=float, default=0.3,
                    help="weight of the two marginal losses (global shape, local shape) on the 5×5 logits")
    ap.add_argument("--clip", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--run", default="demo", help="run name: checkpoints go to <runs-dir>/<run>/")
    ap.add_argument("--runs-dir", default=str(ROOT / "training" / "runs"))
    ap.add_argument("--stop-at", type=int, default=None,
                    help="stop after this step, leaving the checkpoint to resume from (a run in several sittings)")
    ap.add_argument("--ckpt-every", type=int, default=100)
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument("--eval-every", type=int, default=500,
                    help="quick check at 224² and 320² (200 images each); 0: off")
    ap.add_argument("--curriculum", type=float, default=0.35,
                    help="fraction of the steps over which the image nuisances ramp from 0 to full")
    ap.add_argument("--max-rotation", type=float, default=None,
                    help="± degrees of shape rotation in the training data (default: navon.MAX_ROTATION)")
    ap.add_argument("--init", default=None,
                    help="start from these weights (e.g. the shipped file) instead of a random init")
    ap.add_argument("--sizes", choices=("progressive", "final"), default="progressive",
                    help="image sizes: the progressive schedule, or only the last phase's (fine-tuning)")
    ap.add_argument("--device", default="cpu", help="cpu (the recipe) or cuda (the same recipe on a GPU)")
    ap.add_argument("--precision", choices=precision.PRECISIONS, default="auto",
                    help="auto: bf16 autocast where the CPU/GPU does bf16 natively (AVX512-BF16, AMX, CUDA), "
                         "else fp32; the weights and optimiser state stay fp32 either way")
    ap.add_argument("--workers", type=int, default=1,
                    help="data generation processes (0: in the training loop; 1 overlaps it with the step)")
    ap.add_argument("--out", default=str(ROOT / "assets" / "crossformer_demo.safetensors"))
    args = ap.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    run_dir = Path(args.runs_dir) / args.run
    run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / "last.pt"

    model = crossformer.create_model("crossformer_demo")
    model.cfg = model.cfg.replace(class_names=navon.CLASS_NAMES)
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, 0.999))

    start, elapsed, history = 0, 0.0, []
    if args.init and not ckpt_path.exists():
        init_model, _ = crossformer.load_checkpoint(args.init)
        model.load_state_dict(init_model.state_dict())
        log.info("initialised the weights from %s (fresh optimiser and schedule)", args.init)
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location="cpu", weights_only=True)
        changed = {k: ck["args"][k] for k in SCHEDULE_ARGS if k in ck["args"] and ck["args"][k] != getattr(args, k)}
        if changed:
            log.warning("checkpoint %s was made with %s; continuing with its schedule", ckpt_path,
                        ", ".join(f"{k}={v}" for k, v in changed.items()))
            for k, v in changed.items():
                setattr(args, k, v)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        start, elapsed, history = ck["step"], ck["elapsed"], ck["history"]
        log.info("resumed %s at step %d (%.0f s trained so far)", ckpt_path, start, elapsed)
    log.info("crossformer_demo: %d parameters; %d steps × %d images; lr %.1e; threads %d; %s on %s",
             n_params, args.steps, args.batch, args.lr, args.threads,
             precision.resolve(args.precision, args.device), args.device)

    def save_ckpt(step: int) -> None:
        tmp = ckpt_path.with_suffix(".tmp")
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "elapsed": elapsed,
                    "history": history, "args": vars(args)}, tmp)
        os.replace(tmp, ckpt_path)

    sizes = [step_size(args.seed, k, args.steps, args.sizes == "final") for k in range(args.steps)]
    cost = np.concatenate([[0.0], np.cumsum([step_cost(hw) for hw in sizes], dtype=np.float64)])
    device = torch.device(args.device)
    model.to(device).train()
    # Training runs the explicit softmax path: on the CPU, SDPA's backward (math kernel with a float mask)
    # is slower — 35 vs 42 img/s at 128 px, batch 32, 2 threads. Same numbers either way.
    model.set_fused_attention(args.device != "cpu")
    # The 16×16 and 32×32 CEL kernels as stride-1 convs over 4×4 pixel blocks: same function, and the
    # conv backward is several times faster on the CPU (0.27 → 0.04 s for the 32×32 kernel at 224 px, batch 32;
    # the plain convs were ≈ 19 % of a step). Inference keeps the plain convs.
    model.set_space_to_depth_embedding(True)
    loader = torch.utils.data.DataLoader(StepBatches(args.seed, sizes, args.batch, start, args.max_rotation,
                                                     int(args.curriculum * args.steps)), batch_size=None,
                                         shuffle=False, num_workers=args.workers,
                                         collate_fn=_as_is, prefetch_factor=4 if args.workers else None)
    window_loss, window_acc, window_img, t_window = 0.0, 0, 0, time.time()
    t_last = time.time()
    stop = args.steps if args.stop_at is None else min(args.stop_at, args.steps)
    for step, (images, labels) in zip(range(start, stop), loader):
        lr = lr_at(step, args.steps, args.lr, args.warmup, args.min_lr, args.decay)
        for g in opt.param_groups:
            g["lr"] = lr
        size = sizes[step]
        x = to_tensor(images, model.cfg.mean, model.cfg.std).to(device)
        y = torch.from_numpy(labels).to(device)
        with precision.autocast(device, args.precision):
            logits = model(x).float()
        loss = joint_loss(logits, y, args.label_smoothing, args.aux)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()

        now = time.time()
        elapsed += now - t_last
        t_last = now
        window_loss += float(loss.detach()) * len(y)
        window_acc += int((logits.argmax(1) == y).sum())
        window_img += len(y)
        done = step + 1
        if done % args.log_every == 0 or done == args.steps:
            rate = window_img / max(now - t_window, 1e-9)
            # ETA: seconds per unit of step cost so far × the cost still to come (later steps use bigger images)
            eta = elapsed / cost[done] * (cost[-1] - cost[done])
            log.info("step %5d/%d  size %3dx%-3d  loss %.3f  acc %.3f  lr %.2e  %.1f img/s  elapsed %s  ETA %s",
                     done, args.steps, size[0], size[1], window_loss / window_img, window_acc / window_img,
                     lr, rate, fmt_time(elapsed), fmt_time(eta))
            history.append({"step": done, "loss": window_loss / window_img, "acc": window_acc / window_img,
                            "lr": lr, "elapsed": elapsed, "img_per_s": rate})
            window_loss, window_acc, window_img, t_window = 0.0, 0, 0, time.time()
        if args.eval_every and (done % args.eval_every == 0 or done == args.steps):
            for hw in ((224, 224), (320, 320)):
                t0 = time.time()
                acc, acc_g, acc_l = quick_eval(model, seed=987_654_321, n=200, size=hw)
                log.info("quick check at %dx%d on 200 images: top-1 %.3f (global %.3f, local %.3f) (%.0f s)",
                         *hw, acc, acc_g, acc_l, time.time() - t0)
                history.append({"step": done, f"quick_acc_{hw[0]}": acc, f"quick_global_{hw[0]}": acc_g,
                                f"quick_local_{hw[0]}": acc_l})
            t_last = time.time()   # do not count the check as training time
        if done % args.ckpt_every == 0 or done == stop:
            save_ckpt(done)
    if stop < args.steps:
        log.info("stopped after step %d of %d (%s trained); run the same command again to resume",
                 stop, args.steps, fmt_time(elapsed))
        return 0

    model.to("cpu").eval()
    summary = {**{k: getattr(args, k) for k in SCHEDULE_ARGS}, "device": args.device, "threads": args.threads,
               "precision_used": precision.resolve(args.precision, args.device),
               "images_seen": args.steps * args.batch, "train_seconds": round(elapsed, 1), "init": args.init,
               "max_rotation": navon.MAX_ROTATION if args.max_rotation is None else args.max_rotation,
               "size_phases": [[s, [list(c) for c in cs]] for s, cs in SIZE_PHASES],
               "final_window": history[-1] if history else None, "params": n_params,
               "torch": torch.__version__, "cpu_count": os.cpu_count()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_safetensors(model, out, metadata={"variant": "crossformer_demo",
                                           "config": json.dumps(model.cfg.to_dict()),
                                           "class_names": json.dumps(list(navon.CLASS_NAMES)),
                                           "training": json.dumps(summary)},
                     dtype=torch.float16)
    (run_dir / "metrics.json").write_text(json.dumps({"summary": summary, "history": history}, indent=1))
    log.info("wrote %s (%.1f MB) after %s of training", out, out.stat().st_size / 1e6, fmt_time(elapsed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
