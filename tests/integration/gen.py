#!/usr/bin/env python3
"""Make test inputs for the integration tests (standard library only).

  gen.py npy OUT SHAPE [--seed N] [--dtype f4|f2|f8] [--nan I] [--huge I] [--version 1|2|3]
  gen.py raw OUT SHAPE [--seed N] [--dtype F32|F16|BF16|F64] [--nan I]
  gen.py safetensors OUT NAME=SHAPE[:DTYPE] ... [--seed N]

--nan I makes element I a NaN; --huge I makes elements I and I+1 +-3.4e38
(finite, near FLT_MAX). SHAPE is comma-separated (64,64,3,3). Values are a deterministic
pseudo-random function of the seed, so every run makes the same bytes.
"""
import json
import math
import struct
import sys


UNIQUE = 1 << 18  # distinct values; longer tensors repeat them, so big models are fast to make


def values(n, seed, nan=None, huge=None):
    x = (seed * 2654435761 + 12345) & 0xFFFFFFFF
    out = []
    for i in range(min(n, UNIQUE)):
        x = (x * 1664525 + 1013904223) & 0xFFFFFFFF
        out.append(((x >> 8) / float(1 << 24) - 0.5) * 0.2)
    if nan is not None and nan < len(out):
        out[nan] = float("nan")
    if huge is not None and huge + 1 < len(out):
        out[huge], out[huge + 1] = 3.4e38, -3.4e38
    return out


def data(n, seed, dtype, nan=None, huge=None):
    """n elements of dtype: the first UNIQUE values, tiled as bytes."""
    v = values(n, seed, nan, huge)
    b = pack(v, dtype)
    if n > len(v):
        reps = n // len(v) + 1
        b = (b * reps)[: n * (len(b) // len(v))]
    return b


def f16(v):
    return struct.pack("<e", v)


def bf16(v):
    b = struct.pack("<f", v)
    return b[2:4]  # truncation is fine for test data


def pack(vals, dtype):
    if dtype in ("F32", "f4"):
        return struct.pack("<%df" % len(vals), *vals)
    if dtype in ("F64", "f8"):
        return struct.pack("<%dd" % len(vals), *vals)
    if dtype in ("F16", "f2"):
        return b"".join(f16(v) for v in vals)
    if dtype == "BF16":
        return b"".join(bf16(v) for v in vals)
    raise SystemExit("unknown dtype " + dtype)


def shape_of(s):
    return [int(d) for d in s.split(",")] if s else []


def opts(args):
    o = {"--seed": "1", "--dtype": None, "--nan": None, "--huge": None, "--version": "1"}
    rest = []
    i = 0
    while i < len(args):
        if args[i] in o:
            o[args[i]] = args[i + 1]
            i += 2
        else:
            rest.append(args[i])
            i += 1
    return o, rest


def npy(out, shape, seed, dtype, nan, version, huge=None):
    n = math.prod(shape)
    descr = {"f4": "<f4", "f2": "<f2", "f8": "<f8"}[dtype or "f4"]
    header = "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }" % (
        descr, ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else ""))
    ver = int(version)
    pre = 10 if ver == 1 else 12
    total = pre + len(header) + 1
    header += " " * ((64 - total % 64) % 64) + "\n"
    if ver == 1:
        head = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header))
    else:
        head = b"\x93NUMPY" + bytes([ver, 0]) + struct.pack("<I", len(header))
    body = data(n, seed, dtype or "f4", nan, huge)
    with open(out, "wb") as f:
        f.write(head + header.encode("latin1") + body)


def safetensors(out, specs, seed):
    header = {}
    blobs = []
    off = 0
    for k, spec in enumerate(specs):
        name, rest = spec.split("=", 1)
        parts = rest.split(":")
        shape = shape_of(parts[0])
        dtype = parts[1] if len(parts) > 1 else "F32"
        blob = data(math.prod(shape), seed + k, dtype)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(out, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    kind, out = sys.argv[1], sys.argv[2]
    o, rest = opts(sys.argv[3:])
    seed = int(o["--seed"])
    nan = int(o["--nan"]) if o["--nan"] is not None else None
    huge = int(o["--huge"]) if o["--huge"] is not None else None
    if kind == "npy":
        npy(out, shape_of(rest[0]), seed, o["--dtype"], nan, o["--version"], huge)
    elif kind == "raw":
        shape = shape_of(rest[0])
        with open(out, "wb") as f:
            f.write(data(math.prod(shape), seed, o["--dtype"] or "F32", nan))
    elif kind == "safetensors":
        safetensors(out, rest, seed)
    else:
        raise SystemExit(__doc__)


main()
