"""A tiny protobuf encoder/decoder for the ONNX messages the tests need.

No onnx or protobuf package: the tests build their models and read ours
with these few functions (field numbers of the public onnx.proto).
"""
import struct

FLOAT, UINT8, INT8, INT32, INT64, FLOAT16, DOUBLE, BFLOAT16, INT4 = 1, 2, 3, 6, 7, 10, 11, 16, 22


def varint(n):
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(field, wt):
    return varint(field << 3 | wt)


def f_int(field, v):
    return key(field, 0) + varint(v)


def f_bytes(field, b):
    if isinstance(b, str):
        b = b.encode()
    return key(field, 2) + varint(len(b)) + b


def f_float(field, v):
    return key(field, 5) + struct.pack("<f", v)


def tensor(name, dims, dtype=FLOAT, raw=None, floats=None, int32s=None, doubles=None, ext=None):
    b = b"".join(f_int(1, d) for d in dims) + f_int(2, dtype)
    if floats is not None:
        b += f_bytes(4, struct.pack("<%df" % len(floats), *floats))
    if int32s is not None:
        b += f_bytes(5, b"".join(varint(v) for v in int32s))
    if name is not None:
        b += f_bytes(8, name)
    if raw is not None:
        b += f_bytes(9, raw)
    if doubles is not None:
        b += f_bytes(10, struct.pack("<%dd" % len(doubles), *doubles))
    if ext is not None:
        for k, v in ext:
            b += f_bytes(13, f_bytes(1, k) + f_bytes(2, str(v)))
        b += f_int(14, 1)
    return b


def attr_int(name, v):
    return f_bytes(1, name) + f_int(3, v) + f_int(20, 2)


def attr_ints(name, vs):
    return f_bytes(1, name) + b"".join(f_int(8, v) for v in vs) + f_int(20, 7)


def attr_tensor(name, t):
    return f_bytes(1, name) + f_bytes(5, t) + f_int(20, 4)


def node(op, inputs, outputs, attrs=(), name=None):
    b = b"".join(f_bytes(1, i) for i in inputs) + b"".join(f_bytes(2, o) for o in outputs)
    if name:
        b += f_bytes(3, name)
    b += f_bytes(4, op)
    b += b"".join(f_bytes(5, a) for a in attrs)
    return b


def value_info(name, shape, elem=FLOAT):
    dims = b"".join(f_bytes(1, f_int(1, d)) for d in shape)
    tt = f_int(1, elem) + f_bytes(2, dims)
    return f_bytes(1, name) + f_bytes(2, f_bytes(1, tt))


def graph(nodes, name, inits, inputs, outputs):
    return (b"".join(f_bytes(1, n) for n in nodes) + f_bytes(2, name) +
            b"".join(f_bytes(5, t) for t in inits) + f_bytes(10, "a test graph") +
            b"".join(f_bytes(11, i) for i in inputs) + b"".join(f_bytes(12, o) for o in outputs))


def model(g, opset, ir, meta=()):
    b = f_int(1, ir) + f_bytes(2, "squant-tests") + f_bytes(3, "1") + f_bytes(6, "kept as is")
    b += f_bytes(7, g) + f_bytes(8, f_bytes(1, "") + f_int(2, opset))
    for k, v in meta:
        b += f_bytes(14, f_bytes(1, k) + f_bytes(2, v))
    return b


# ------------------------------------------------------------------ decoding

def decode(b):
    """Fields of one message: {field: [value, ...]} (varints as int, others as bytes)."""
    out, i = {}, 0
    while i < len(b):
        k, i = _varint(b, i)
        field, wt = k >> 3, k & 7
        if wt == 0:
            v, i = _varint(b, i)
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 2:
            n, i = _varint(b, i)
            v, i = b[i:i + n], i + n
        elif wt == 5:
            v, i = b[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wt)
        out.setdefault(field, []).append(v)
    return out


def _varint(b, i):
    n = s = 0
    while True:
        c = b[i]
        i += 1
        n |= (c & 0x7F) << s
        s += 7
        if not c & 0x80:
            return n, i


def packed_varints(fields, f):
    vals = []
    for v in fields.get(f, []):
        if isinstance(v, int):
            vals.append(v)
        else:
            i = 0
            while i < len(v):
                x, i = _varint(v, i)
                vals.append(x)
    return vals


class Tensor:
    def __init__(self, b):
        f = decode(b)
        self.dims = [d - (1 << 64) if d >= 1 << 63 else d for d in packed_varints(f, 1)]
        self.dtype = f.get(2, [1])[0]
        self.name = f.get(8, [b""])[0].decode()
        self.raw = f.get(9, [None])[0]
        if self.raw is None and 4 in f:
            self.raw = b"".join(f[4])
        self.external = 14 in f and f[14][0] == 1

    def values(self):
        n = 1
        for d in self.dims:
            n *= d
        if self.dtype == FLOAT:
            return list(struct.unpack("<%df" % n, self.raw))
        if self.dtype == INT8:
            return list(struct.unpack("<%db" % n, self.raw))
        if self.dtype == 2:  # UINT8
            return list(self.raw[:n])
        if self.dtype == 7:  # INT64
            return list(struct.unpack("<%dq" % n, self.raw))
        if self.dtype == INT4:
            out = []
            for byte in self.raw:
                for nib in (byte & 15, byte >> 4):
                    out.append(nib - 16 if nib >= 8 else nib)
            return out[:n]
        raise ValueError("dtype %d" % self.dtype)


class Model:
    """The parts of a ModelProto the tests look at."""

    def __init__(self, data):
        m = decode(data)
        self.fields = m
        self.ir = m[1][0]
        self.opset = {decode(o).get(1, [b""])[0].decode(): decode(o)[2][0] for o in m.get(8, [])}
        self.meta = {}
        for e in m.get(14, []):
            d = decode(e)
            self.meta[d[1][0].decode()] = d[2][0].decode()
        g = decode(m[7][0])
        self.graph = g
        self.inits = {}
        for t in g.get(5, []):
            t = Tensor(t)
            self.inits[t.name] = t
        self.nodes = []
        self.constants = {}
        for n in g.get(1, []):
            d = decode(n)
            op = d[4][0].decode()
            attrs = {}
            for a in d.get(5, []):
                ad = decode(a)
                attrs[ad[1][0].decode()] = ad
            node = {"op": op, "domain": d.get(7, [b""])[0].decode(),
                    "in": [x.decode() for x in d.get(1, [])],
                    "out": [x.decode() for x in d.get(2, [])], "attrs": attrs}
            self.nodes.append(node)
            if op == "Constant" and "value" in attrs:
                self.constants[node["out"][0]] = Tensor(attrs["value"][5][0])

    def tensor(self, name):
        return self.inits.get(name) or self.constants.get(name)

    def producer(self, name):
        for n in self.nodes:
            if name in n["out"]:
                return n
        return None
