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
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Mapping

import numpy as np
import torch

from .checkpoint_checks import (CheckpointError, TensorSpec, check_npy_members, check_pickle_storages,
                                check_tensor_entries, error_line, open_zip, read_safetensors_header)
from .config import CONFIG_LIMITS, CrossFormerConfig, check_limits
from .dense_checkpoint import is_dense_state_dict, load_backbone
from .model import CrossFormer
from .state_dict import RECOMPUTABLE_KEY, check_complete, split_state_dict, strip_prefixes
from .variants import PP_LAYOUT, VARIANT_RECORDS, VARIANTS, get_config

try:  # numpy scalars (e.g. a stored accuracy) pickle through this constructor
    from numpy._core.multiarray import scalar as _np_scalar
except ImportError:  # numpy < 2
    from numpy.core.multiarray import scalar as _np_scalar  # type: ignore[no-redef]

log = logging.getLogger(__name__)

Source = str | Path | bytes | BinaryIO


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
        raise CheckpointError(f"refused to unpickle: {reason}. Only tensors and plain containers are read from "
                              "a .pth and nothing from it was executed; if the file is truncated, download it "
                              "again.") from None


# ---- formats --------------------------------------------------------------------------------------
def _read_npz(data: bytes, name: str, archive: zipfile.ZipFile) -> dict[str, torch.Tensor]:
    """An ``.npz`` (``archive``: its members already checked) whose ``.npy`` headers pass
    :func:`check_npy_members`; pickled arrays are refused."""
    check_npy_members(archive, name)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as err:
        raise CheckpointError(f"{name} holds pickled objects or a broken array, which are refused ({err})") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError) as err:
        raise CheckpointError(f"{name} is truncated or corrupt ({type(err).__name__}: {err}) — download it "
                              "again") from None
    if any(k.startswith("sd/") for k in arrays):   # the project's test-vector layout
        arrays = {k[3:]: v for k, v in arrays.items() if k.startswith("sd/")}
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}


def _read_pth(data: bytes, name: str, archive: zipfile.ZipFile | None) -> tuple[dict[str, torch.Tensor], dict]:
    """A ``torch.save`` file (zip, or legacy when ``archive`` is None) → (state dict, metadata).

    The declared tensor bytes are checked against the file before ``torch.load`` allocates them.
    """
    check_pickle_storages(data, name, archive)
    try:
        obj = _torch_load(data)
    except CheckpointError:
        raise
    except Exception as err:   # whatever a corrupt file makes torch raise: one error type, one sentence
        raise CheckpointError(f"{name} could not be read — truncated or not a PyTorch checkpoint "
                              f"({type(err).__name__}: {error_line(err, 200)})") from None
    meta: dict[str, Any] = {}
    if isinstance(obj, Mapping) and isinstance(obj.get("config"), dict):
        meta["official_config"] = dict(obj["config"])
    sd = _unwrap(obj, name)
    check_tensor_entries(sd, name)
    return dict(sd), meta


def _unwrap(obj: Any, name: str) -> Mapping[Any, Any]:
    """Find the state dict inside what ``torch.load`` returned."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{name} holds a {type(obj).__name__}, not a state dict")
    for key in ("model", "state_dict", "model_state_dict"):
        inner = obj.get(key)
        if isinstance(inner, Mapping) and inner:
            return inner
    return obj


def _read_bytes(source: Source) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), "<bytes>"
    if hasattr(source, "read"):
        try:
            return source.read(), getattr(source, "name", "<stream>")
        except OSError as err:
            raise CheckpointError(f"cannot read the uploaded stream: {err}") from None
    path = Path(source)
    if not path.exists():
        raise CheckpointError(f"no such file: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder, not a checkpoint file")
    try:
        return path.read_bytes(), path.name
    except OSError as err:
        raise CheckpointError(f"cannot read {path}: {err.strerror or err} — check the file's permissions") from None


def _looks_like_safetensors(data: bytes) -> bool:
    """An 8-byte little-endian header length, then a JSON object (its size is checked by the reader).

    Checked before the legacy-pickle test: a header length whose low byte is 0x80 starts with the same
    byte as a pickle (0x80 = PROTO); a legacy ``torch.save`` file has a fixed magic number, no ``{``, there.
    """
    return len(data) >= 10 and data[8:9] == b"{"


def read_entries(source: Source) -> tuple[dict[str, torch.Tensor | TensorSpec], str, dict[str, Any], str]:
    """Read and check any supported file → (entries, format, metadata, display name). Nothing is executed.

    Every container check of :mod:`.checkpoint_checks` has passed. A ``.safetensors`` file's entries are
    :class:`TensorSpec` (shape and dtype; bytes still in the file, loaded by ``.load()``); other formats'
    are tensors, already checked to be dense CPU tensors with string names.
    """
    data, name = _read_bytes(source)
    if not data:
        raise CheckpointError(f"{name} is empty (0 bytes)")
    if data[:4] == b"PK\x03\x04":
        archive = open_zip(data, name)
        names = archive.namelist()
        if any(n.endswith(".npy") for n in names) and not any(n.endswith("data.pkl") for n in names):
            return _read_npz(data, name, archive), "npz", {}, name
        sd, meta = _read_pth(data, name, archive)
        return sd, "pth", meta, name
    if _looks_like_safetensors(data):
        specs, meta = read_safetensors_header(data, name)
        return dict(specs), "safetensors", meta, name
    if data[:1] == b"\x80":
        sd, meta = _read_pth(data, name, None)
        return sd, "pth-legacy", meta, name
    raise CheckpointError(f"{name} is not a checkpoint: expected a PyTorch .pth/.pt, .safetensors or .npz file")


def read_state_dict(source: Source) -> tuple[dict[str, torch.Tensor], str, dict[str, Any], str]:
    """Read any supported file → (raw state dict of tensors, format, metadata, display name). Nothing is executed."""
    entries, fmt, meta, name = read_entries(source)
    return {k: _tensor(v) for k, v in entries.items()}, fmt, meta, name


def _tensor(value: torch.Tensor | TensorSpec) -> torch.Tensor:
    return value.load() if isinstance(value, TensorSpec) else value


# ---- variant inference ----------------------------------------------------------------------------
def _count(sd: Mapping[str, Any], fmt: str) -> int:
    n = 0
    while fmt.format(n) in sd:
        n += 1
    return n


def _dim(sd: Mapping[str, Any], key: str, ndim: int, axis: int = 0) -> int:
    """``sd[key].shape[axis]`` of a tensor that must have ``ndim`` dimensions and a positive size there."""
    if key not in sd:
        raise CheckpointError(f"this is an incomplete CrossFormer checkpoint: no {key!r}")
    shape = tuple(sd[key].shape)
    if len(shape) != ndim or shape[axis] < 1:
        raise CheckpointError(f"{key} has shape {shape}; a CrossFormer checkpoint has a {ndim}-d tensor there "
                              "(the file is corrupt or from another model)")
    return int(shape[axis])


def _stored_config(metadata: Mapping[str, Any], notes: list[str]) -> CrossFormerConfig | None:
    """The config a file written by this project declares in its metadata (None: none, or unreadable)."""
    if "config" not in metadata:
        return None
    try:
        cfg_dict = json.loads(metadata["config"])
        return CrossFormerConfig(**{k: (tuple(tuple(x) if isinstance(x, list) else x for x in v)
                                        if isinstance(v, list) else v) for k, v in cfg_dict.items()})
    except (TypeError, ValueError, AttributeError, ArithmeticError, RecursionError) as err:
        notes.append(f"ignored the stored config ({str(err)[:120]}); inferring from tensors")
        return None


def _within_limits(cfg: CrossFormerConfig, where: str) -> CrossFormerConfig:
    """``cfg`` if it respects :func:`crossformer.config.check_limits`, else :class:`CheckpointError`."""
    try:
        check_limits(cfg)
    except (TypeError, ValueError, ArithmeticError) as err:
        raise CheckpointError(f"{where} declares a model this app will not build: {err}. If it is a real "
                              "CrossFormer, open an issue with its config") from None
    return cfg


def infer_config(sd: Mapping[str, Any], metadata: Mapping[str, Any] | None = None,
                 buffers: Mapping[str, Any] | None = None) -> tuple[str, CrossFormerConfig, str, list[str]]:
    """Read the architecture off the tensors (SPEC §12) → (variant name or "custom", config, family, notes).

    ``sd`` maps names to anything with a ``.shape`` (tensors, or a safetensors header's
    :class:`~crossformer.checkpoint_checks.TensorSpec`): only shapes are read. ``buffers`` are the
    recomputable v1 keys dropped before loading (they tell the v1 code and its G). The config is checked
    against :func:`crossformer.config.check_limits`; anything unusable raises :class:`CheckpointError`.
    """
    metadata = metadata or {}
    notes: list[str] = []
    stored = _stored_config(metadata, notes)
    if stored is not None:
        variant = str(metadata.get("variant", "custom"))[:80]
        return variant, _within_limits(stored, "the file's stored config"), \
            f"{variant} (config stored in the file)", notes
    variant, cfg, family = _config_from_shapes(sd, {**(buffers or {}), **{
        k: v for k, v in sd.items() if RECOMPUTABLE_KEY.search(k)}}, notes)
    return variant, _within_limits(cfg, "the file's tensor shapes"), family, notes


def _config_from_shapes(sd: Mapping[str, Any], buffers: Mapping[str, Any],
                        notes: list[str]) -> tuple[str, CrossFormerConfig, str]:
    """SPEC §12's reading of the weights → (variant or "custom", config, family)."""
    if "patch_embed.norm.weight" not in sd or "patch_embed.projs.0.weight" not in sd:
        sample = ", ".join(list(sd)[:4])
        raise CheckpointError(f"not a CrossFormer checkpoint: no cross-scale embedding (patch_embed.projs.*) "
                              f"keys; the file starts with {sample or 'nothing'}")
    if "head.weight" not in sd or "norm.weight" not in sd:
        raise CheckpointError("this is a CrossFormer backbone without the classification head "
                              "(detection/segmentation weights); load a classification checkpoint")
    D = _dim(sd, "patch_embed.norm.weight", 1)
    kernels = tuple(_dim(sd, f"patch_embed.projs.{i}.weight", 4, 3)
                    for i in range(_count(sd, "patch_embed.projs.{}.weight")))
    n_stages = _count(sd, "layers.{}.blocks.0.norm1.weight")
    if not n_stages:
        raise CheckpointError("this is an incomplete CrossFormer checkpoint: no 'layers.0.blocks.0.norm1.weight' "
                              "(the file holds no transformer blocks)")
    depths = tuple(_count(sd, f"layers.{i}.blocks.{{}}.norm1.weight") for i in range(n_stages))
    heads = tuple(_dim(sd, f"layers.{i}.blocks.0.attn.pos.pos3.2.weight", 2) for i in range(n_stages))
    ratios = tuple(_dim(sd, f"layers.{i}.blocks.0.mlp.fc1.weight", 2) / (D * 2 ** i)
                   if f"layers.{i}.blocks.0.mlp.fc1.weight" in sd else 4.0 for i in range(n_stages))
    merges = tuple(tuple(_dim(sd, f"layers.{i}.downsample.reductions.{j}.weight", 4, 3)
                         for j in range(_count(sd, f"layers.{i}.downsample.reductions.{{}}.weight")))
                   for i in range(n_stages - 1))
    acl = any(".ex_conv." in k for k in sd)
    v1 = any(k.endswith("attn.biases") for k in buffers)
    num_classes = _dim(sd, "head.weight", 2)
    shape_key = dict(embed_dim=D, depths=depths, num_heads=heads, use_acl=acl)
    for name, rec in VARIANT_RECORDS.items():
        cfg = rec.config
        if rec.published is not None and all(getattr(cfg, k) == v for k, v in shape_key.items()) \
                and cfg.patch_kernels == kernels and cfg.merge_kernels == merges:
            family = (f"{rec.title.split('-')[0]} ({rec.paper}, v2 code)" if acl
                      else f"{rec.title.split('-')[0]} ({rec.paper}" + (", trained with the v1 code)" if v1 else ")"))
            return name, get_config(name, num_classes=num_classes, mlp_ratio=ratios), family
    demo = VARIANTS["crossformer_demo"]
    if all(getattr(demo, k) == v for k, v in shape_key.items()) and demo.num_classes == num_classes:
        return "crossformer_demo", demo, "CrossFormer demo (this project)"
    # Not a released shape: group sizes/intervals cannot be read off the weights (DPB is size-agnostic).
    if acl:
        G, I = PP_LAYOUT["group_size"], PP_LAYOUT["interval"]
        notes.append(f"custom CrossFormer++ shape: assumed the ++ group sizes {'/'.join(map(str, G))} and "
                     f"intervals {'/'.join(map(str, I))}")
    else:
        G, I = (7,) * n_stages, None
        idx = [k for k in buffers if k.endswith("attn.relative_position_index")]
        if v1 and idx:
            G = (int(round(_dim(buffers, idx[0], 2) ** 0.5)),) * n_stages
        notes.append(f"custom CrossFormer shape: assumed group size {G[0]} and the v1 LDA rule (interval = H/G)")
    G = tuple(G) + (G[-1],) * (n_stages - len(G))       # a custom ++ shape may have more than 4 stages
    I = tuple(I) + (I[-1],) * (n_stages - len(I)) if I else None
    try:
        cfg = CrossFormerConfig(embed_dim=D, depths=depths, num_heads=heads, group_size=G[:n_stages],
                                interval=I[:n_stages] if I else None, mlp_ratio=ratios, patch_kernels=kernels,
                                merge_kernels=merges, use_acl=acl, num_classes=num_classes)
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"the weights describe an unsupported architecture: {err}") from None
    return "custom", cfg, "CrossFormer++ (custom)" if acl else "CrossFormer (custom)"


# ---- public entry points --------------------------------------------------------------------------
def _class_names(cfg: CrossFormerConfig, meta: Mapping[str, Any], notes: list[str]) -> CrossFormerConfig:
    """``cfg`` with the class names the metadata lists (a JSON list of ``num_classes`` strings), if any."""
    if "class_names" not in meta:
        return cfg
    try:
        names = json.loads(meta["class_names"])
    except (ValueError, TypeError, RecursionError):
        names = None
    if isinstance(names, list) and len(names) == cfg.num_classes and all(isinstance(n, str) for n in names):
        return cfg.replace(class_names=tuple(n[:200] for n in names))
    notes.append("ignored unreadable class names in the metadata")
    return cfg


def check_weights(cfg: CrossFormerConfig, sd: Mapping[str, Any], name: str,
                   variant: str) -> tuple[list[str], list[str]]:
    """Compare the file's entries with a model of ``cfg`` built on the meta device (no memory used) →
    ``(missing, unexpected)``; raises :class:`CheckpointError` on any shape, key or dtype problem."""
    with torch.device("meta"):
        try:
            skeleton = CrossFormer(cfg)
        except (ValueError, TypeError) as err:
            raise CheckpointError(f"the weights describe an unsupported architecture: {err}") from None
    n_params = sum(p.numel() for p in skeleton.parameters())
    if n_params > CONFIG_LIMITS.max_params:
        raise CheckpointError(f"{name} describes a model of {n_params / 1e6:,.0f} M parameters (at most "
                              f"{CONFIG_LIMITS.max_params / 1e6:,.0f} M are built here)")
    try:
        return [], check_complete(skeleton.state_dict(), sd, name, variant)
    except ValueError as err:
        raise CheckpointError(str(err)) from None


def load_checkpoint(source: Source, device: str | torch.device = "cpu", *,
                    as_backbone: bool = False) -> tuple[CrossFormer, CheckpointInfo]:
    """Open a checkpoint file (path, bytes or stream) and return ``(model in eval mode, info)``.

    Detector/segmentor files (mmdet/mmseg) and bare backbone state dicts open as the detection/segmentation
    backbone (:mod:`.dense_checkpoint`); ``as_backbone=True`` opens a classification file that way too.
    Raises :class:`CheckpointError` with a readable message for empty, truncated, hostile, foreign or
    mismatched files. Never executes code from the file. Order: the file's container and entries are
    checked (:mod:`.checkpoint_checks`), the config is inferred from shapes and bounded, the shapes are
    compared with a meta-device model, and only then are tensors read and the model built.
    """
    raw, fmt, meta, name = read_entries(source)
    if as_backbone or is_dense_state_dict(raw):   # a detector/segmentor file or a bare backbone
        try:
            model, fields = load_backbone(raw, meta, name, infer_config)
        except CheckpointError:
            raise
        except ValueError as err:                 # DenseFileError: its message says why
            raise CheckpointError(str(err)) from None
        except (KeyError, IndexError, TypeError, ArithmeticError) as err:   # e.g. a 0-d tensor
            raise CheckpointError(f"{name} cannot be opened as a CrossFormer backbone: {error_line(err, 200)}") \
                from None
        return model.to(device), CheckpointInfo(source=name, format=fmt, **fields)
    sd, buffers = split_state_dict(raw)
    dropped = [k for k in raw if RECOMPUTABLE_KEY.search(strip_prefixes(k))]
    variant, cfg, family, notes = infer_config(sd, meta, buffers)
    cfg = _class_names(cfg, meta, notes)
    missing, unexpected = check_weights(cfg, sd, name, variant)
    model = CrossFormer(cfg)
    state = {k: _tensor(sd[k]).to(torch.float32) for k in model.state_dict()}
    if not all(torch.isfinite(t).all() for t in state.values()):
        notes.append("some weights are NaN or infinite: outputs will be meaningless")
    model.load_state_dict(state, strict=True)
    if unexpected:
        notes.append(f"ignored {len(unexpected)} keys the model does not use (e.g. {unexpected[0]})")
    info = CheckpointInfo(source=name, format=fmt, variant=variant, family=family, code_version=cfg.code_version,
                          config=cfg, num_params=sum(p.numel() for p in model.parameters()), missing=missing,
                          unexpected=unexpected, dropped=dropped, notes=notes,
                          metadata={k: v for k, v in meta.items() if k != "official_config"})
    if "official_config" in meta:
        info.metadata["official_config_keys"] = sorted(str(k)[:80] for k in meta["official_config"])[:20]
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
