"""Open real-world CrossFormer checkpoint files safely and build the matching model.

Formats: official ``.pth`` of both code families (state dict under ``'model'``, ``'state_dict'`` or bare;
``module.``/``backbone.`` prefixes; v1 buffer keys; a pickled yacs ``CfgNode`` under ``'config'``),
``.safetensors`` and ``.npz``. Pickled files are never allowed to run code: ``torch.load(weights_only=True)``
with a short list of data-only extras (a yacs config read as a dict, numpy scalars; SPEC §11).
The variant is inferred from the tensors (SPEC §12).
"""

from __future__ import annotations

import io
import json
import logging
import pickle
import struct
import zipfile
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Mapping

import numpy as np
import torch

from .config import CrossFormerConfig
from .dense_checkpoint import is_dense_state_dict, load_backbone
from .model import CrossFormer
from .state_dict import RECOMPUTABLE_KEY, check_against, split_state_dict, strip_prefixes
from .variants import PP_LAYOUT, VARIANT_RECORDS, VARIANTS, get_config

try:  # numpy scalars (e.g. a stored accuracy) pickle through this constructor
    from numpy._core.multiarray import scalar as _np_scalar
except ImportError:  # numpy < 2
    from numpy.core.multiarray import scalar as _np_scalar  # type: ignore[no-redef]

log = logging.getLogger(__name__)

Source = str | Path | bytes | BinaryIO


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message says why in words a user can act on."""


@dataclass
class CheckpointInfo:
    """What :func:`load_checkpoint` found."""

    source: str                       # file name (or "<bytes>")
    format: str                       # "pth" | "pth-legacy" | "safetensors" | "npz"
    variant: str                      # registry name, or "custom"
    family: str                       # human description of the code family
    code_version: str                 # "v1" (implicit LDA interval) | "v2" (explicit interval)
    config: CrossFormerConfig
    num_params: int
    missing: list[str] = field(default_factory=list)      # model keys the file lacked (always empty on success)
    unexpected: list[str] = field(default_factory=list)   # file keys the model does not use (ignored)
    dropped: list[str] = field(default_factory=list)      # recomputable buffers dropped (v1 DPB indices)
    notes: list[str] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> str:
        return (f"{self.variant} — {self.family}, {self.num_params / 1e6:.1f} M parameters, "
                f"{self.config.num_classes} classes ({self.format})")


# ---- safe unpickling ------------------------------------------------------------------------------
class ConfigDict:
    """Stand-in for yacs ``CfgNode`` (a dict subclass): keeps the values, runs no yacs code.

    ``torch.load(weights_only=True)`` fills only plain dicts, so unpickling this class yields an
    ``OrderedDict`` holding the config's items (and the CfgNode's flags as attributes).
    """

    def __new__(cls, *args: Any) -> "OrderedDict[str, Any]":  # type: ignore[misc]
        return OrderedDict()


class _Namespace(dict):
    """Stand-in for ``argparse.Namespace`` stored by some training scripts."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, dict):
            self.update(state)


def _safe_globals() -> list[Any]:
    """What ``torch.load(weights_only=True)`` may rebuild beyond tensors and plain containers.

    Official training files pickle a yacs ``CfgNode`` (read as a plain :class:`ConfigDict`: no yacs code
    runs, yacs need not be installed), sometimes an ``argparse.Namespace``, and numpy scalars (a stored
    accuracy). Each entry is a class or function that builds data only.
    """
    import codecs

    dtype_classes = {type(np.dtype(t)) for t in (np.float16, np.float32, np.float64, np.int8, np.int16, np.int32,
                                                  np.int64, np.uint8, np.bool_)}
    return [(ConfigDict, "yacs.config.CfgNode"), (_Namespace, "argparse.Namespace"),
            (_np_scalar, "numpy.core.multiarray.scalar"), (_np_scalar, "numpy._core.multiarray.scalar"),
            np.dtype, *dtype_classes, frozenset, slice, (codecs.encode, "_codecs.encode")]


def _torch_load(data: bytes) -> Any:
    """``torch.load(weights_only=True)`` with :func:`_safe_globals`: pickled code is never executed."""
    try:
        with torch.serialization.safe_globals(_safe_globals()):
            return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        reason = str(err).split("WeightsUnpickler error:")[-1].strip().splitlines()[0][:200]
        raise CheckpointError(f"refused to unpickle: {reason}. The file contains objects other than tensors "
                              "and plain containers; nothing from it was executed.") from None


# ---- formats --------------------------------------------------------------------------------------
_ST_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32,
              "I16": np.int16, "I8": np.int8, "U8": np.uint8, "BOOL": np.bool_}


def _read_safetensors(data: bytes) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Parse a safetensors file with numpy (no code execution possible by design)."""
    if len(data) < 8:
        raise CheckpointError("safetensors file is truncated (no header)")
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8 or n > 100_000_000:
        raise CheckpointError("safetensors header is truncated or corrupt")
    try:
        header = json.loads(data[8:8 + n])
    except ValueError as err:
        raise CheckpointError(f"safetensors header is not valid JSON ({err})") from None
    meta = header.pop("__metadata__", {}) or {}
    body = memoryview(data)[8 + n:]
    out: dict[str, torch.Tensor] = {}
    for key, spec in header.items():
        dtype, shape, (b, e) = spec["dtype"], spec["shape"], spec["data_offsets"]
        if e > len(body) or b > e:
            raise CheckpointError(f"safetensors file is truncated: tensor {key} runs past the end")
        raw = bytes(body[b:e])
        if dtype == "BF16":
            t = torch.frombuffer(bytearray(raw), dtype=torch.bfloat16).reshape(shape) if raw else \
                torch.empty(shape, dtype=torch.bfloat16)
        elif dtype in _ST_DTYPES:
            t = torch.from_numpy(np.frombuffer(raw, dtype=_ST_DTYPES[dtype]).reshape(shape).copy())
        else:
            raise CheckpointError(f"unsupported safetensors dtype {dtype} for {key}")
        out[key] = t
    return out, {str(k): str(v) for k, v in meta.items()}


def _read_npz(data: bytes) -> dict[str, torch.Tensor]:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as err:
        raise CheckpointError(f"npz file holds pickled objects, which are refused ({err})") from None
    if any(k.startswith("sd/") for k in arrays):   # the project's test-vector layout
        arrays = {k[3:]: v for k, v in arrays.items() if k.startswith("sd/")}
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}


def _unwrap(obj: Any) -> Mapping[str, Any]:
    """Find the state dict inside what ``torch.load`` returned."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"the file holds a {type(obj).__name__}, not a state dict")
    for key in ("model", "state_dict", "model_state_dict"):
        inner = obj.get(key)
        if isinstance(inner, Mapping) and inner and all(isinstance(k, str) for k in inner):
            return inner
    return obj


def _read_bytes(source: Source) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "<bytes>"
    if hasattr(source, "read"):
        return source.read(), getattr(source, "name", "<stream>")
    path = Path(source)
    if not path.exists():
        raise CheckpointError(f"no such file: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
    return path.read_bytes(), path.name


def _looks_like_safetensors(data: bytes) -> bool:
    """8-byte little-endian header length, then a JSON object that fits in the file.

    Checked before the legacy-pickle test: a header length whose low byte is 0x80 starts with the same
    byte as a pickle (0x80 = PROTO).
    """
    if len(data) < 10 or data[8:9] != b"{":
        return False
    return 8 + int.from_bytes(data[:8], "little") <= len(data)


def read_state_dict(source: Source) -> tuple[dict[str, torch.Tensor], str, dict[str, Any], str]:
    """Read any supported file → (raw state dict, format, metadata, display name). Nothing is executed."""
    data, name = _read_bytes(source)
    if not data:
        raise CheckpointError(f"{name} is empty (0 bytes)")
    meta: dict[str, Any] = {}
    if data[:4] == b"PK\x03\x04":
        try:
            names = zipfile.ZipFile(io.BytesIO(data)).namelist()
        except zipfile.BadZipFile:
            raise CheckpointError(f"{name} is truncated or corrupt (broken zip archive)") from None
        if any(n.endswith(".npy") for n in names) and not any(n.endswith("data.pkl") for n in names):
            return _read_npz(data), "npz", meta, name
        fmt = "pth"
    elif _looks_like_safetensors(data):
        sd, meta = _read_safetensors(data)
        return sd, "safetensors", meta, name
    elif data[:1] == b"\x80":
        fmt = "pth-legacy"
    else:
        raise CheckpointError(f"{name} is not a checkpoint: expected a PyTorch .pth/.pt, .safetensors or .npz file")
    try:
        obj = _torch_load(data)
    except CheckpointError:
        raise
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, struct.error) as err:
        raise CheckpointError(f"{name} could not be read — truncated or not a PyTorch checkpoint "
                              f"({type(err).__name__}: {str(err).splitlines()[0][:200]})") from None
    if isinstance(obj, Mapping) and isinstance(obj.get("config"), dict):
        meta["official_config"] = dict(obj["config"])
    sd = _unwrap(obj)
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"not a state dict: {bad[0]!r} holds a {type(sd[bad[0]]).__name__}, not a tensor")
    return dict(sd), fmt, meta, name


# ---- variant inference ----------------------------------------------------------------------------
def _count(sd: Mapping[str, Any], fmt: str) -> int:
    n = 0
    while fmt.format(n) in sd:
        n += 1
    return n


def infer_config(sd: Mapping[str, torch.Tensor], metadata: Mapping[str, Any] | None = None,
                 buffers: Mapping[str, torch.Tensor] | None = None) -> tuple[str, CrossFormerConfig, str, list[str]]:
    """Read the architecture off the tensors (SPEC §12) → (variant name or "custom", config, family, notes).

    ``buffers`` are the recomputable v1 keys dropped before loading (they tell the v1 code and its G).
    """
    metadata = metadata or {}
    buffers = {**(buffers or {}), **{k: v for k, v in sd.items() if RECOMPUTABLE_KEY.search(k)}}
    notes: list[str] = []
    if "config" in metadata:   # files written by this project carry their config
        try:
            cfg_dict = json.loads(metadata["config"])
            cfg = CrossFormerConfig(**{k: (tuple(tuple(x) if isinstance(x, list) else x for x in v)
                                          if isinstance(v, list) else v) for k, v in cfg_dict.items()})
            variant = metadata.get("variant", "custom")
            return variant, cfg, f"{variant} (config stored in the file)", notes
        except (TypeError, ValueError) as err:
            notes.append(f"ignored the stored config ({err}); inferring from tensors")
    if "patch_embed.norm.weight" not in sd or "patch_embed.projs.0.weight" not in sd:
        sample = ", ".join(list(sd)[:4])
        raise CheckpointError(f"not a CrossFormer checkpoint: no cross-scale embedding (patch_embed.projs.*) "
                              f"keys; the file starts with {sample or 'nothing'}")
    if "head.weight" not in sd or "norm.weight" not in sd:
        raise CheckpointError("this is a CrossFormer backbone without the classification head "
                              "(detection/segmentation weights); load a classification checkpoint")
    D = int(sd["patch_embed.norm.weight"].shape[0])
    n_k = _count(sd, "patch_embed.projs.{}.weight")
    kernels = tuple(int(sd[f"patch_embed.projs.{i}.weight"].shape[-1]) for i in range(n_k))
    n_stages = _count(sd, "layers.{}.blocks.0.norm1.weight")
    depths = tuple(_count(sd, f"layers.{i}.blocks.{{}}.norm1.weight") for i in range(n_stages))
    heads = tuple(int(sd[f"layers.{i}.blocks.0.attn.pos.pos3.2.weight"].shape[0]) for i in range(n_stages))
    fc1 = [sd.get(f"layers.{i}.blocks.0.mlp.fc1.weight") for i in range(n_stages)]
    ratios = tuple(float(w.shape[0]) / (D * 2 ** i) if w is not None else 4.0 for i, w in enumerate(fc1))
    merges = tuple(tuple(int(sd[f"layers.{i}.downsample.reductions.{j}.weight"].shape[-1])
                         for j in range(_count(sd, f"layers.{i}.downsample.reductions.{{}}.weight")))
                   for i in range(n_stages - 1))
    acl = any(".ex_conv." in k for k in sd)
    v1 = any(k.endswith("attn.biases") for k in buffers)
    num_classes = int(sd["head.weight"].shape[0])
    shape_key = dict(embed_dim=D, depths=depths, num_heads=heads, use_acl=acl)
    for name, rec in VARIANT_RECORDS.items():
        cfg = rec.config
        if rec.published is not None and all(getattr(cfg, k) == v for k, v in shape_key.items()) \
                and cfg.patch_kernels == kernels and cfg.merge_kernels == merges:
            family = (f"{rec.title.split('-')[0]} ({rec.paper}, v2 code)" if acl
                      else f"{rec.title.split('-')[0]} ({rec.paper}" + (", trained with the v1 code)" if v1 else ")"))
            return name, get_config(name, num_classes=num_classes, mlp_ratio=ratios), family, notes
    demo = VARIANTS["crossformer_demo"]
    if all(getattr(demo, k) == v for k, v in shape_key.items()) and demo.num_classes == num_classes:
        return "crossformer_demo", demo, "CrossFormer demo (this project)", notes
    # Not a released shape: group sizes/intervals cannot be read off the weights (DPB is size-agnostic).
    if acl:
        G, I = PP_LAYOUT["group_size"], PP_LAYOUT["interval"]
        notes.append(f"custom CrossFormer++ shape: assumed the ++ group sizes {'/'.join(map(str, G))} and "
                     f"intervals {'/'.join(map(str, I))}")
    else:
        G, I = (7,) * n_stages, None
        if v1:
            idx = [k for k in buffers if k.endswith("attn.relative_position_index")]
            g = int(round(buffers[idx[0]].shape[0] ** 0.5)) if idx else 7
            G = (g,) * n_stages
        notes.append(f"custom CrossFormer shape: assumed group size {G[0]} and the v1 LDA rule (interval = H/G)")
    cfg = CrossFormerConfig(embed_dim=D, depths=depths, num_heads=heads, group_size=G[:n_stages],
                            interval=I[:n_stages] if I else None, mlp_ratio=ratios, patch_kernels=kernels,
                            merge_kernels=merges, use_acl=acl, num_classes=num_classes)
    return "custom", cfg, "CrossFormer++ (custom)" if acl else "CrossFormer (custom)", notes


# ---- public entry points --------------------------------------------------------------------------
def load_checkpoint(source: Source, device: str | torch.device = "cpu", *,
                    as_backbone: bool = False) -> tuple[CrossFormer, CheckpointInfo]:
    """Open a checkpoint file (path, bytes or stream) and return ``(model in eval mode, info)``.

    Detector/segmentor files (mmdet/mmseg) and bare backbone state dicts open as the detection/segmentation
    backbone (:mod:`.dense_checkpoint`); ``as_backbone=True`` opens a classification file that way too.
    Raises :class:`CheckpointError` with a readable message for empty, truncated, hostile, foreign or
    mismatched files. Never executes code from the file.
    """
    raw, fmt, meta, name = read_state_dict(source)
    if as_backbone or is_dense_state_dict(raw):   # a detector/segmentor file or a bare backbone
        try:
            model, fields = load_backbone(raw, meta, name, infer_config)
        except ValueError as err:
            raise CheckpointError(str(err)) from None
        return model.to(device), CheckpointInfo(source=name, format=fmt, **fields)
    sd, buffers = split_state_dict(raw)
    dropped = [k for k in raw if RECOMPUTABLE_KEY.search(strip_prefixes(k))]
    try:
        variant, cfg, family, notes = infer_config(sd, meta, buffers)
    except KeyError as err:
        raise CheckpointError(f"{name} is an incomplete CrossFormer checkpoint: no {err.args[0]!r}") from None
    if "class_names" in meta:
        try:
            names = tuple(json.loads(meta["class_names"]))
            if len(names) == cfg.num_classes:
                cfg = cfg.replace(class_names=names)
        except ValueError:
            notes.append("ignored unreadable class names in the metadata")
    try:
        model = CrossFormer(cfg)
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"the weights describe an unsupported architecture: {err}") from None
    own = model.state_dict()
    try:
        missing, unexpected = check_against(own, sd)
    except ValueError as err:
        raise CheckpointError(f"{err} ({variant})") from None
    if missing:
        raise CheckpointError(f"{name} lacks {len(missing)} of the model's {len(own)} weights "
                              f"(first: {', '.join(missing[:3])}); it is not a complete {variant} checkpoint")
    for k in own:
        if not sd[k].is_floating_point():
            raise CheckpointError(f"{k} holds {sd[k].dtype} values, expected floating point weights")
    state = {k: sd[k].to(torch.float32) for k in own}
    if not all(torch.isfinite(t).all() for t in state.values()):
        notes.append("some weights are NaN or infinite: outputs will be meaningless")
    model.load_state_dict(state, strict=True)
    if unexpected:
        notes.append(f"ignored {len(unexpected)} keys the model does not use (e.g. {unexpected[0]})")
    code_version = cfg.code_version
    info = CheckpointInfo(source=name, format=fmt, variant=variant, family=family, code_version=code_version,
                          config=cfg, num_params=sum(p.numel() for p in model.parameters()), missing=missing,
                          unexpected=unexpected, dropped=dropped, notes=notes,
                          metadata={k: v for k, v in meta.items() if k != "official_config"})
    if "official_config" in meta:
        info.metadata["official_config_keys"] = sorted(meta["official_config"])[:20]
    log.info("loaded %s: %s", name, info.summary())
    return model.to(device).eval(), info


def save_safetensors(model: CrossFormer, path: str | Path, metadata: Mapping[str, str] | None = None,
                     dtype: torch.dtype = torch.float32) -> None:
    """Write the model's state dict as ``.safetensors`` with its config in the metadata."""
    names = {torch.float32: "F32", torch.float16: "F16"}
    if dtype not in names:
        raise ValueError(f"dtype must be float32 or float16, got {dtype}")
    meta = {"variant": "custom", "config": json.dumps(model.cfg.to_dict())}
    if model.cfg.class_names:
        meta["class_names"] = json.dumps(list(model.cfg.class_names))
    meta.update(metadata or {})
    header: dict[str, Any] = {"__metadata__": meta}
    chunks, offset = [], 0
    for k, v in model.state_dict().items():
        arr = v.detach().to("cpu", dtype).contiguous().numpy().tobytes()
        header[k] = {"dtype": names[dtype], "shape": list(v.shape), "data_offsets": [offset, offset + len(arr)]}
        chunks.append(arr)
        offset += len(arr)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    Path(path).write_bytes(struct.pack("<Q", len(head)) + head + b"".join(chunks))
