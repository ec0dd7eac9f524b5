"""Several processes for the statistics CLI: ``torchrun --nproc_per_node N -m crossformer.stats …``.

torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``; with a world of
more than one process :meth:`Dist.start` joins the group (``env://``; NCCL on CUDA, each process on
``cuda:LOCAL_RANK``; gloo on CPU). A plain ``python -m crossformer.stats`` is rank 0 of a world of 1 and
starts no process group; every collective below is then the identity.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch

#: How long a process waits at a collective (rank 0 merges after the slowest shard finishes).
TIMEOUT = timedelta(hours=2)


@dataclass
class Dist:
    """This process's place in the run: ``rank`` of ``world``, ``local_rank`` on its machine."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    started: bool = False

    @classmethod
    def from_env(cls) -> "Dist":
        """From torchrun's environment variables (rank 0 of 1 without them)."""
        try:
            world = int(os.environ.get("WORLD_SIZE", "1"))
            rank = int(os.environ.get("RANK", "0"))
            local = int(os.environ.get("LOCAL_RANK", "0"))
        except ValueError:
            return cls()
        if world < 2 or not 0 <= rank < world:
            return cls()
        return cls(rank, world, local)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def device(self, requested: str) -> torch.device:
        """The device of this process: ``cuda:LOCAL_RANK`` when a CUDA device is requested (or ``auto``
        finds one) in a world of several processes, else the requested one."""
        from .registry import pick_device

        dev = pick_device() if requested == "auto" else torch.device(requested)
        if dev.type == "cuda" and self.world > 1:
            dev = torch.device("cuda", self.local_rank)
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        return dev

    def start(self, device: torch.device) -> None:
        """Join the process group (a world of several processes only)."""
        if self.world < 2:
            return
        import torch.distributed as dist

        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend, init_method="env://", rank=self.rank, world_size=self.world,
                                timeout=TIMEOUT)
        self.started = True

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (pickled; small plans only)."""
        if not self.started:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj``, in rank order (also a barrier)."""
        if not self.started:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        if self.started:
            import torch.distributed as dist

            dist.destroy_process_group()
            self.started = False
