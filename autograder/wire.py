"""The wire codec between the grader and its sandbox worker, shared by both sides.

SELF-CONTAINED (stdlib, plus numpy for arrays): inside the sandbox this file's source is part of
the worker program (:func:`autograder.worker.program_source`); the trusted side imports it as
``autograder.wire``.  One frame reader (:func:`read_frame` / :func:`parse_frame_header`) and one
writer (:func:`write_frame`) for both directions.

A frame is ``u32 json_len | JSON | blob_0 | blob_1 | ...`` (big-endian); the JSON object lists the
blob lengths in ``"_blobs"``.  Values are JSON with tagged objects for what JSON lacks:
``{"$t": "nd", "b": i}`` is the i-th blob, an ``.npy`` file (read with our own header checks and
``allow_pickle=False``), ``{"$t": "tuple", "v": [...]}``, ``{"$t": "dict", "items": [[k, v], ...]}``,
``{"$t": "rng", "state": {...}}`` (a PCG64 Generator, trusted -> worker only).  Nothing is ever
pickled; every frame and value is checked against the limits below before it is allocated.
"""
from __future__ import annotations

import io
import json
import math
import os
import struct
from typing import Any

# ============================================================================================
# Codec (shared with the trusted side)
# ============================================================================================
MAX_JSON_BYTES = 8 * 1024 * 1024          # one frame's JSON part
MAX_BLOB_BYTES = 256 * 1024 * 1024        # all blobs of one frame together
MAX_DEPTH = 32                            # nesting of lists/tuples/dicts
MAX_NODES = 200_000                       # values in one message
ALLOWED_KINDS = "biuf"                    # bool, int, uint, float arrays only


class ProtocolError(Exception):
    """A frame or value that does not follow the wire format (or breaks its limits)."""


class EncodeError(TypeError):
    """A value that is not plain data (the message says which and where)."""


def _read_exact(fd: int, n: int) -> bytes:
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError("pipe closed")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def write_frame(fd: int, header: dict, blobs: list[bytes]) -> None:
    """Write one frame: the JSON ``header`` (``_blobs`` added) followed by ``blobs``."""
    header = dict(header)
    header["_blobs"] = [len(b) for b in blobs]
    data = json.dumps(header, allow_nan=True, separators=(",", ":")).encode("utf-8")
    buf = b"".join([struct.pack(">I", len(data)), data, *blobs])
    view = memoryview(buf)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def parse_frame_header(raw: bytes, max_blob_bytes: int = MAX_BLOB_BYTES) -> tuple[dict, list[int]]:
    """Decode a frame's JSON part and validate its blob list."""
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"frame is not JSON: {type(exc).__name__}") from None
    if type(header) is not dict:
        raise ProtocolError("frame is not a JSON object")
    sizes = header.pop("_blobs", [])
    if type(sizes) is not list or not all(type(s) is int and s >= 0 for s in sizes):
        raise ProtocolError("frame has an invalid blob list")
    if sum(sizes) > max_blob_bytes:
        raise ProtocolError(f"frame carries {sum(sizes)} bytes of arrays (limit {max_blob_bytes})")
    return header, sizes


def read_frame(fd: int, max_json: int = MAX_JSON_BYTES,
               max_blob_bytes: int = MAX_BLOB_BYTES) -> tuple[dict, list[bytes]]:
    """Blocking read of one frame (used inside the worker; the trusted side reads with a deadline)."""
    (n,) = struct.unpack(">I", _read_exact(fd, 4))
    if n > max_json:
        raise ProtocolError(f"frame JSON of {n} bytes exceeds {max_json}")
    header, sizes = parse_frame_header(_read_exact(fd, n), max_blob_bytes)
    return header, [_read_exact(fd, s) for s in sizes]


def npy_bytes(arr: Any) -> bytes:
    """Serialize a plain numeric ndarray as ``.npy`` bytes (never pickled)."""
    import numpy as np
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
    return buf.getvalue()


def npy_load(data: bytes, max_elements: int | None = None) -> Any:
    """Parse ``.npy`` bytes into a NEW plain ndarray, checking everything before allocating.

    Only bool/int/uint/float dtypes; the header must describe exactly the bytes present.
    """
    import numpy as np
    fmt = np.lib.format
    buf = io.BytesIO(data)
    try:
        version = fmt.read_magic(buf)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(buf)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = fmt.read_array_header_2_0(buf)
        else:
            raise ProtocolError(f"unsupported .npy version {version}")
    except ProtocolError:
        raise
    except Exception as exc:  # noqa: BLE001 - any malformed header
        raise ProtocolError(f"malformed array header: {exc}") from None
    if not isinstance(dtype, np.dtype) or dtype.hasobject or dtype.fields is not None \
            or dtype.subdtype is not None or dtype.kind not in ALLOWED_KINDS:
        raise ProtocolError(f"array dtype {dtype} is not allowed (only bool/int/uint/float)")
    if type(shape) is not tuple or not all(type(d) is int and d >= 0 for d in shape) or len(shape) > 32:
        raise ProtocolError("array header has an invalid shape")
    count = math.prod(shape)
    if max_elements is not None and count > max_elements:
        raise ProtocolError(f"array of {count} elements exceeds the limit of {max_elements}")
    payload = data[buf.tell():]
    if len(payload) != count * dtype.itemsize:
        raise ProtocolError("array header does not match its data length")
    flat = np.frombuffer(payload, dtype=dtype, count=count)
    arr = flat.reshape(shape, order="F" if fortran else "C")
    native = dtype.newbyteorder("=")
    return np.array(arr, dtype=native, order="C", copy=True)


def encode(value: Any, blobs: list[bytes], *, allow_rng: bool = False,
           max_elements: int | None = None, _depth: int = 0, _where: str = "value") -> Any:
    """Plain data -> JSON-able tree (arrays appended to ``blobs``).

    Exact types only: a subclass of ndarray / list / dict is refused with :class:`EncodeError`,
    numpy scalars become Python scalars.
    """
    if _depth > MAX_DEPTH:
        raise EncodeError(f"{_where}: nested more than {MAX_DEPTH} levels deep")
    t = type(value)
    if value is None or t in (bool, int, float, str):
        return value
    import numpy as np
    if t is np.ndarray:
        if value.dtype.kind not in ALLOWED_KINDS or value.dtype.fields is not None:
            raise EncodeError(f"{_where}: arrays must have a bool/int/float dtype, not {value.dtype}")
        if max_elements is not None and value.size > max_elements:
            raise EncodeError(f"{_where}: array of {value.size} elements exceeds the limit {max_elements}")
        blobs.append(npy_bytes(value))
        return {"$t": "nd", "b": len(blobs) - 1}
    if isinstance(value, np.ndarray):
        raise EncodeError(f"{_where}: is a {t.__module__}.{t.__qualname__} (a subclass of numpy.ndarray); "
                          "return a plain numpy array (e.g. np.asarray(x))")
    if isinstance(value, np.generic) and t.__module__ == "numpy":
        if value.dtype.kind in ALLOWED_KINDS:
            return value.item()
        raise EncodeError(f"{_where}: numpy scalar of dtype {value.dtype} is not supported")
    kw: dict[str, Any] = {"allow_rng": allow_rng, "max_elements": max_elements, "_depth": _depth + 1}
    if t is list:
        return [encode(v, blobs, _where=f"{_where}[{i}]", **kw) for i, v in enumerate(value)]
    if t is tuple:
        return {"$t": "tuple", "v": [encode(v, blobs, _where=f"{_where}[{i}]", **kw)
                                     for i, v in enumerate(value)]}
    if t is dict:
        items = []
        for k, v in value.items():
            if not (k is None or type(k) in (bool, int, float, str)):
                raise EncodeError(f"{_where}: dict keys must be str/int/float/bool/None, not {type(k).__name__}")
            items.append([k, encode(v, blobs, _where=f"{_where}[{k!r}]", **kw)])
        return {"$t": "dict", "items": items}
    if allow_rng and t is np.random.Generator:
        bitgen = value.bit_generator
        if type(bitgen) is not np.random.PCG64:
            raise EncodeError(f"{_where}: only PCG64 generators can be sent, not {type(bitgen).__name__}")
        return {"$t": "rng", "state": bitgen.state}
    raise EncodeError(f"{_where}: {t.__module__}.{t.__qualname__} is not plain data "
                      "(use numpy arrays, Python numbers, str, None, and lists/tuples/dicts of those)")


def decode(node: Any, blobs: list[bytes], *, allow_rng: bool = False,
           max_elements: int | None = None) -> Any:
    """JSON tree -> plain data; the inverse of :func:`encode`.  Raises :class:`ProtocolError`."""
    count = [0]
    used: set[int] = set()

    def walk(n: Any, depth: int) -> Any:
        count[0] += 1
        if count[0] > MAX_NODES:
            raise ProtocolError(f"value has more than {MAX_NODES} parts")
        if depth > MAX_DEPTH + 1:
            raise ProtocolError("value nested too deeply")
        t = type(n)
        if n is None or t in (bool, int, float, str):
            return n
        if t is list:
            return [walk(v, depth + 1) for v in n]
        if t is not dict:
            raise ProtocolError(f"unexpected JSON node {t.__name__}")
        tag = n.get("$t")
        if tag == "nd":
            i = n.get("b")
            if type(i) is not int or not 0 <= i < len(blobs) or i in used:
                raise ProtocolError("array reference out of range")
            used.add(i)
            return npy_load(blobs[i], max_elements)
        if tag == "tuple" and type(n.get("v")) is list:
            return tuple(walk(v, depth + 1) for v in n["v"])
        if tag == "dict" and type(n.get("items")) is list:
            out = {}
            for item in n["items"]:
                if type(item) is not list or len(item) != 2:
                    raise ProtocolError("malformed dict item")
                k = item[0]
                if not (k is None or type(k) in (bool, int, float, str)):
                    raise ProtocolError("dict key is not a scalar")
                out[k] = walk(item[1], depth + 1)
            return out
        if tag == "rng" and allow_rng:
            import numpy as np
            bitgen = np.random.PCG64()
            bitgen.state = n.get("state")
            return np.random.Generator(bitgen)
        raise ProtocolError(f"unknown tagged value {str(tag)[:40]!r}")

    try:
        return walk(node, 0)
    except RecursionError:
        raise ProtocolError("value nested too deeply") from None


