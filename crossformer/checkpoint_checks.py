"""Checks on a checkpoint file, made before anything is allocated from it (issue 28).

Each check reads bytes and *declared* sizes only and raises :class:`CheckpointError` with a sentence a user
can act on. :mod:`.checkpoint` runs them in this order, and any other reader (e.g. of detector checkpoints)
can call the same small functions:

1. the container — :func:`check_zip_members` (declared sizes and compression ratios of every archive
   member), :func:`check_pickle_storages` (the tensor bytes a ``torch.save`` pickle declares, found by a
   scan that runs nothing), :func:`check_npy_members` (each ``.npy`` header of an ``.npz``),
   :func:`read_safetensors_header` (header size, JSON, dtypes, shapes, offsets inside the file and not
   overlapping, sizes = dtype × shape);
2. the entries — :func:`check_tensor_entries` (string names; dense, real, CPU tensors of a number dtype);
3. the declared config — :func:`crossformer.config.check_limits`, then the shapes against a model built on
   the meta device (no memory) — in :mod:`.checkpoint`.
"""

from __future__ import annotations

import io
import json
import math
import pickle
import struct
import zipfile
import zlib
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np
import torch


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message says why in words a user can act on."""


@dataclass(frozen=True)
class FileLimits:
    """Hard bounds on what a checkpoint file may declare (generous: ++-H has 892 tensors, 400 MB)."""

    max_header_bytes: int = 16 * 2 ** 20     # safetensors JSON header
    max_tensors: int = 100_000               # entries of a header / members of an archive
    max_rank: int = 8                        # dimensions of one tensor
    max_ratio: int = 100                     # inflated / compressed bytes of a zip member (real weights ≈ 1–25)
    ratio_slack: int = 64 * 2 ** 10          # bytes a tiny member may inflate beyond the ratio
    max_inflated: int = 8 * 2 ** 30          # all members together, inflated


#: The bounds every check here applies (frozen).
FILE_LIMITS = FileLimits()

#: safetensors dtype name → torch dtype (the only dtypes read; e.g. F8 and complex are refused).
SAFETENSORS_DTYPES: Mapping[str, torch.dtype] = MappingProxyType({
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool})
#: Tensor dtypes a state dict may hold (weights are floats; v1 index buffers are int64).
TENSOR_DTYPES = frozenset(SAFETENSORS_DTYPES.values())


# ---- safetensors ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TensorSpec:
    """One tensor a safetensors header declares; its bytes stay in the file until :meth:`load`."""

    dtype: torch.dtype
    shape: tuple[int, ...]
    raw: memoryview                          # exactly numel · itemsize bytes of the file

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def is_floating_point(self) -> bool:
        return self.dtype.is_floating_point

    def load(self) -> torch.Tensor:
        """The tensor, copied out of the file (``shape``, ``dtype``)."""
        if not len(self.raw):
            return torch.zeros(self.shape, dtype=self.dtype)
        return torch.frombuffer(bytearray(self.raw), dtype=self.dtype).reshape(self.shape)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        dup = next(k for k in keys if keys.count(k) > 1)
        raise CheckpointError(f"the safetensors header names {dup!r} twice; the file is corrupt")
    return dict(pairs)


def read_safetensors_header(data: bytes, name: str = "the file") -> tuple[dict[str, TensorSpec], dict[str, str]]:
    """Validate a safetensors file's header → ``({name: TensorSpec}, metadata)``; no tensor is built.

    Checked: the header length and JSON, string→string metadata, every entry's dtype (one of
    :data:`SAFETENSORS_DTYPES`), shape (≤ 8 non-negative ints), ``data_offsets`` (inside the data section,
    size = numel · itemsize) and that no two tensors share bytes.
    """
    limits = FILE_LIMITS
    if len(data) < 8:
        raise CheckpointError(f"{name} is truncated: a safetensors file starts with an 8-byte header length")
    (n,) = struct.unpack("<Q", data[:8])
    if n > limits.max_header_bytes:
        raise CheckpointError(f"{name} declares a {n:,}-byte safetensors header (at most "
                              f"{limits.max_header_bytes:,} accepted): the file is corrupt or not safetensors")
    if 8 + n > len(data):
        raise CheckpointError(f"{name} is truncated: its safetensors header needs {n:,} bytes, "
                              f"{len(data) - 8:,} are there — download it again")
    try:
        header = json.loads(bytes(data[8:8 + n]), object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as err:
        if isinstance(err, CheckpointError):
            raise
        raise CheckpointError(f"{name}: the safetensors header is not valid JSON ({str(err)[:120]})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{name}: the safetensors header is a JSON {type(header).__name__}, not an object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise CheckpointError(f"{name}: the safetensors __metadata__ must map names to strings")
    if len(header) > limits.max_tensors:
        raise CheckpointError(f"{name} declares {len(header):,} tensors (at most {limits.max_tensors:,} accepted)")
    body = memoryview(data)[8 + n:]
    specs = {key: _tensor_spec(key, entry, body, name) for key, entry in header.items()}
    _check_no_overlap(header, name)
    return specs, meta


def _tensor_spec(key: str, entry: Any, body: memoryview, name: str) -> TensorSpec:
    """One validated header entry → :class:`TensorSpec` (a view of its bytes, nothing copied)."""
    if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
        raise CheckpointError(f"{name}: safetensors entry {key!r} must hold exactly dtype, shape and data_offsets")
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if dtype not in SAFETENSORS_DTYPES:
        raise CheckpointError(f"{name}: tensor {key!r} has dtype {str(dtype)[:20]!r}; supported: "
                              f"{', '.join(SAFETENSORS_DTYPES)} — re-save the weights as F32, F16 or BF16")
    if not _int_list(shape, FILE_LIMITS.max_rank):
        raise CheckpointError(f"{name}: tensor {key!r} has shape {str(shape)[:60]}; a shape is a list of at most "
                              f"{FILE_LIMITS.max_rank} non-negative integers")
    if not _int_list(offsets, 2) or len(offsets) != 2 or offsets[0] > offsets[1]:
        raise CheckpointError(f"{name}: tensor {key!r} has data_offsets {str(offsets)[:60]}; expected [begin, end] "
                              "with 0 ≤ begin ≤ end")
    begin, end = offsets
    if end > len(body):
        raise CheckpointError(f"{name} is truncated: tensor {key!r} runs past the end of the file "
                              f"(byte {end:,} of a {len(body):,}-byte data section) — download it again")
    dt = SAFETENSORS_DTYPES[dtype]
    expected = math.prod(shape) * dt.itemsize
    if end - begin != expected:
        raise CheckpointError(f"{name}: tensor {key!r} is {dtype} of shape {tuple(shape)}, i.e. {expected:,} bytes, "
                              f"but its data_offsets span {end - begin:,} bytes; the file is corrupt")
    return TensorSpec(dt, tuple(shape), body[begin:end])


def _int_list(value: Any, max_len: int) -> bool:
    """A list of at most ``max_len`` non-negative ``int``s (JSON ``true`` is not a number here)."""
    return isinstance(value, list) and len(value) <= max_len and all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)


def _check_no_overlap(header: Mapping[str, Any], name: str) -> None:
    """No two non-empty tensors share a byte of the data section."""
    spans = sorted((e["data_offsets"][0], e["data_offsets"][1], k) for k, e in header.items()
                   if e["data_offsets"][1] > e["data_offsets"][0])
    for (_, end_a, a), (begin_b, _, b) in zip(spans, spans[1:]):
        if begin_b < end_a:
            raise CheckpointError(f"{name}: tensors {a!r} and {b!r} overlap in the file (their data_offsets share "
                                  "bytes); the file is corrupt or forged")


# ---- zip archives (.pth, .npz) ----------------------------------------------------------------------
def open_zip(data: bytes, name: str) -> zipfile.ZipFile:
    """Open an archive held in memory and :func:`check_zip_members`; nothing is inflated yet."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError, struct.error,
            NotImplementedError) as err:
        raise CheckpointError(f"{name} is truncated or corrupt (broken zip archive: {str(err)[:120]}) — "
                              "download it again") from None
    check_zip_members(infos, len(data), name)
    return archive


def check_zip_members(infos: list[zipfile.ZipInfo], archive_size: int, name: str) -> None:
    """Bound every member before anything is read: count, method, bytes inside the archive, inflated size
    and ratio per member (≤ :attr:`FileLimits.max_ratio`, plus a little slack for tiny members) and in all.
    """
    limits = FILE_LIMITS
    if len(infos) > limits.max_tensors:
        raise CheckpointError(f"{name} holds {len(infos):,} archive members (at most {limits.max_tensors:,} accepted)")
    total = 0
    for info in infos:
        what = f"{name}: archive member {info.filename[:80]!r}"
        if info.flag_bits & 0x41:          # bit 0: encrypted, bit 6: strong encryption
            raise CheckpointError(f"{what} is encrypted; save the checkpoint without a password")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise CheckpointError(f"{what} uses compression method {info.compress_type}; only stored or deflated "
                                  "members are read (torch.save, numpy.savez)")
        if info.header_offset + info.compress_size > archive_size:
            raise CheckpointError(f"{what} runs past the end of the file: it is truncated — download it again")
        if info.compress_type == zipfile.ZIP_STORED and info.file_size != info.compress_size:
            raise CheckpointError(f"{what} is stored uncompressed but declares {info.file_size:,} bytes for "
                                  f"{info.compress_size:,}; the file is corrupt")
        if info.file_size > limits.max_ratio * info.compress_size + limits.ratio_slack:
            raise CheckpointError(f"{what} would inflate {info.compress_size:,} bytes to {info.file_size:,} "
                                  f"(more than {limits.max_ratio}×): refused as a zip bomb. Real weights barely "
                                  "compress; re-save the checkpoint with torch.save or numpy.savez")
        total += info.file_size
    bound = min(limits.max_inflated, limits.max_ratio * archive_size + limits.ratio_slack)
    if total > bound:
        raise CheckpointError(f"{name} would inflate to {total:,} bytes from {archive_size:,} (at most {bound:,} "
                              "accepted): refused as a zip bomb")


def check_npy_members(archive: zipfile.ZipFile, name: str) -> None:
    """Every ``.npy`` member's header: a number dtype, ≤ 8 dims, and exactly the data its shape needs.

    ``numpy.load`` allocates an array of the declared shape *before* reading it, so a 200-byte member
    could otherwise ask for terabytes.
    """
    for info in archive.infolist():
        if not info.filename.endswith(".npy"):
            continue
        what = f"{name}: array {info.filename[:80]!r}"
        try:
            with archive.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(f)
                else:
                    raise CheckpointError(f"{what} uses .npy format {version}; save it with numpy.savez")
                start = f.tell()
        except (ValueError, EOFError, OSError, zipfile.BadZipFile, SyntaxError, zlib.error,
                NotImplementedError) as err:
            if isinstance(err, CheckpointError):
                raise
            raise CheckpointError(f"{what} has a broken header ({str(err)[:120]})") from None
        if dtype.hasobject or dtype.kind not in "fiub" or dtype.fields is not None:
            raise CheckpointError(f"{what} holds {dtype} values (pickled objects or non-numbers are refused); "
                                  "a checkpoint holds number arrays only")
        if len(shape) > FILE_LIMITS.max_rank:
            raise CheckpointError(f"{what} has {len(shape)} dimensions (at most {FILE_LIMITS.max_rank})")
        expected = math.prod(shape) * dtype.itemsize
        if info.file_size - start != expected:
            raise CheckpointError(f"{what} declares shape {shape} of {dtype} ({expected:,} bytes) but holds "
                                  f"{info.file_size - start:,} bytes; the file is corrupt")


# ---- pickles written by torch.save --------------------------------------------------------------------
#: Bytes per element of the storage classes ``torch.save`` pickles (unknown names count as 8).
_STORAGE_ITEMSIZE: Mapping[str, int] = MappingProxyType({
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2, "LongStorage": 8,
    "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1,
    "UntypedStorage": 1, "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16})


class _Inert:
    """What every global of a scanned pickle becomes: it absorbs construction and filling, runs nothing."""

    storage_name = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> "_Inert":
        return object.__new__(cls)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass


class _StorageScan(pickle._Unpickler):  # the pure-Python unpickler: it never pre-sizes a buffer from the file
    """Reads a pickle only to collect the storages it declares: ``{key: bytes}``; imports and calls nothing."""

    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file)
        self.storages: dict[str, int] = {}

    def find_class(self, module: str, name: str) -> type:
        return type("Inert", (_Inert,), {"storage_name": str(name)})

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage":
            numel = pid[4]
            if isinstance(numel, bool) or not isinstance(numel, int) or numel < 0:
                raise CheckpointError(f"a tensor storage declares {str(numel)[:40]} elements; the file is corrupt")
            if pid[3] != "meta":       # meta storages hold no bytes (check_tensor_entries refuses them)
                itemsize = _STORAGE_ITEMSIZE.get(getattr(pid[1], "storage_name", ""), 8)
                self.storages[str(pid[2])] = numel * itemsize
        return _Inert()


def declared_storages(stream: bytes) -> dict[str, int]:
    """``{storage key: declared bytes}`` of the pickle ``stream`` starts with (raises on a broken one)."""
    scan = _StorageScan(io.BytesIO(stream))
    scan.load()
    return scan.storages


def _legacy_storages(data: bytes) -> dict[str, int]:
    """The storages a legacy (pre-1.6) ``torch.save`` file declares: magic number, protocol, system info,
    then the objects. A file whose first pickle is not the magic number declares none: ``torch.load``
    stops at that check before it allocates anything (and says why, e.g. a refused global)."""
    f = io.BytesIO(data)
    if _StorageScan(f).load() != torch.serialization.MAGIC_NUMBER:
        return {}
    found: dict[str, int] = {}
    for _ in range(3):
        scan = _StorageScan(f)
        scan.load()
        found.update(scan.storages)
    return found


def check_pickle_storages(data: bytes, name: str, archive: zipfile.ZipFile | None) -> None:
    """The tensor bytes a ``torch.save`` file declares must be in the file (checked before ``torch.load``
    allocates them): in a zip, each storage's record holds at least its declared bytes; in the legacy
    (pre-1.6) format, all declared storages fit in the file.
    """
    try:
        if archive is None:            # legacy: magic number, protocol, system info, then the objects
            declared = {"(all)": sum(_legacy_storages(data).values())}
            records = {"(all)": len(data)}
        else:
            pkl = [i for i in archive.infolist() if i.filename.endswith("data.pkl")]
            if len(pkl) != 1:
                raise CheckpointError(f"{name} is a zip archive without one data.pkl: not a PyTorch checkpoint")
            prefix = pkl[0].filename[: -len("data.pkl")] + "data/"
            declared = declared_storages(archive.read(pkl[0]))
            records = {i.filename[len(prefix):]: i.file_size for i in archive.infolist()
                       if i.filename.startswith(prefix)}
    except CheckpointError:
        raise
    except Exception as err:           # a broken pickle: say so in one sentence, whatever the parser raised
        raise CheckpointError(f"{name} could not be read — truncated or not a PyTorch checkpoint "
                              f"({type(err).__name__}: {error_line(err)})") from None
    for key, nbytes in declared.items():
        if records.get(key, -1) < nbytes:
            raise CheckpointError(f"{name} declares {nbytes:,} bytes of tensor data that the file does not hold "
                                  f"(storage {key!r}): it is truncated or forged — download it again")


def error_line(err: BaseException, limit: int = 120) -> str:
    """The first line of an exception's message, at most ``limit`` characters."""
    text = str(err).strip()
    return text.splitlines()[0][:limit] if text else ""


# ---- state-dict entries -------------------------------------------------------------------------------
def check_tensor_entries(state_dict: Mapping[Any, Any], name: str) -> None:
    """Every key a string, every value a dense, real (not meta), CPU tensor of a :data:`TENSOR_DTYPES` dtype."""
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise CheckpointError(f"{name}: the state dict has a {type(key).__name__} key {str(key)[:40]!r}; "
                                  "keys must be parameter names (strings) as model.state_dict() writes them")
        if isinstance(value, TensorSpec):
            continue
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{name} is not a state dict: {key!r} holds a {type(value).__name__}, not a tensor")
        if value.is_meta:
            raise CheckpointError(f"{name}: {key!r} is a meta tensor (a shape without values); the file was saved "
                                  "from a model that was never given weights")
        if value.layout != torch.strided:
            raise CheckpointError(f"{name}: {key!r} is a {str(value.layout).replace('torch.', '')} tensor; save "
                                  "dense weights (tensor.to_dense()) and load again")
        if value.dtype not in TENSOR_DTYPES:
            raise CheckpointError(f"{name}: {key!r} holds {str(value.dtype).replace('torch.', '')} values; "
                                  "expected float32/float16/bfloat16 weights")
        if value.device.type != "cpu":
            raise CheckpointError(f"{name}: {key!r} lives on {value.device}; save CPU tensors")
