#!/usr/bin/env python3
"""Check squant's ONNX outputs against its safetensors outputs and ONNX Runtime.

  check.py ORIG.onnx QDQ.onnx DEQ.onnx CODES.safetensors FLOATS.safetensors ORT.json [EXPECT_FLOAT...]

CODES.safetensors is `squant quantize --format safetensors` of ORIG (codes,
scale and zero point in the core's [out, in, k...] layout), FLOATS is
`squant dequantize` of it. Checks, for every quantized weight: the codes in
QDQ equal CODES (after the layout change), the dequantization QDQ
expresses equals FLOATS, DEQ holds FLOATS in ORIG's layout and dtype; every
other tensor, the opset, the IR version and the other fields are kept;
metadata_props "squant" is the report; ONNX Runtime's outputs for QDQ and
DEQ agree. EXPECT_FLOAT names weights that must have stayed float.
"""
import json
import math
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onnxpb as pb  # noqa: E402


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def safetensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    meta = h.pop("__metadata__", {})
    out = {}
    for k, v in h.items():
        s, e = v["data_offsets"]
        data = b[8 + n + s:8 + n + e]
        fmt = {"F32": "f", "I8": "b", "U8": "B"}[v["dtype"]]
        out[k] = (v["shape"], list(struct.unpack("<%d%s" % (len(data) // struct.calcsize(fmt), fmt), data)))
    return out, meta


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def consumer(model, name):
    for n in model.nodes:
        if len(n["in"]) > 1 and n["in"][1] == name and n["op"] in ("Conv", "ConvTranspose", "Gemm", "MatMul"):
            g = n["attrs"].get("group", {}).get(3, [1])[0]
            tb = n["attrs"].get("transB", {}).get(3, [0])[0]
            axis = {"Conv": 0, "ConvTranspose": 1, "Gemm": 0 if tb else 1, "MatMul": 1}[n["op"]]
            return n["op"], axis, g
    fail("no consumer for " + name)


def to_model_layout(core, dims, axis, g):
    """Core [g*B, Ai, s] values -> the model's [A, B, s] (see swap_groups in onnx.c)."""
    if axis == 0:
        return core
    A, B = dims[0], dims[1]
    s = 1
    for d in dims[2:]:
        s *= d
    Ai = A // g
    out = [None] * len(core)
    for gi in range(g):
        for b in range(B):
            for i in range(Ai):
                m = ((gi * Ai + i) * B + b) * s
                c = ((gi * B + b) * Ai + i) * s
                out[m:m + s] = core[c:c + s]
    return out


def bcast_index(t, dims):
    """f(i): the element of t (right-aligned broadcast, leading dims only) for flat index i."""
    ones = 0
    for d in reversed(t.dims):
        if d != 1:
            break
        ones += 1
    inner = 1
    for d in dims[len(dims) - ones:]:
        inner *= d
    nt = 1
    for d in t.dims:
        nt *= d
    return lambda i: (i // inner) % nt


class Gathered:
    """Gather(data, indices, axis) over constants, as ONNX computes it."""

    def __init__(self, q, node):
        data, idx = q.tensor(node["in"][0]), q.tensor(node["in"][1]).values()
        axis = node["attrs"].get("axis", {}).get(3, [0])[0]
        pre = post = 1
        for d in data.dims[:axis]:
            pre *= d
        for d in data.dims[axis + 1:]:
            post *= d
        D, dv = data.dims[axis], data.values()
        self.dims = data.dims[:axis] + [len(idx)] + data.dims[axis + 1:]
        self.vals = [dv[(a * D + i) * post + r] for a in range(pre) for i in idx for r in range(post)]

    def values(self):
        return self.vals


def operand(q, name):
    t = q.tensor(name)
    if t is not None:
        return t
    p = q.producer(name)
    if p is None or p["op"] != "Gather":
        fail("%s is neither a constant nor a Gather of constants" % name)
    return Gathered(q, p)


def qdq_values(q, name, dims):
    """What QDQ computes for weight `name` (emulating ONNX Runtime in float32)."""
    p = q.producer(name)
    if p is None:
        fail("%s: no node computes it in the QDQ model" % name)
    n = 1
    for d in dims:
        n *= d
    if p["op"] == "DequantizeLinear":
        x, s, z = (q.tensor(i) for i in p["in"])
        kind = "DequantizeLinear" if x.dtype == pb.INT8 else "DequantizeLinear INT4"
        axis = p["attrs"]["axis"][3][0]
        xv, sv, zv = x.values(), s.values(), z.values()
        if "block_size" in p["attrs"]:
            # Blocked (opset 21): s and z have x's dims, ceil(D / block) along axis.
            b = p["attrs"]["block_size"][3][0]
            D = dims[axis]
            G = (D + b - 1) // b
            want = list(dims)
            want[axis] = G
            if s.dims != want or z.dims != want:
                fail("%s: blocked scale %s / zero point %s, expected %s" % (name, s.dims, z.dims, want))
            post = 1
            for d in dims[axis + 1:]:
                post *= d

            def at(i):
                return ((i // (post * D)) * G + (i // post) % D // b) * post + i % post
            out = [f32((xv[i] - zv[at(i)]) * sv[at(i)]) for i in range(n)]
            return out, xv, kind + " blocked"
        inner = 1
        for d in dims[axis + 1:]:
            inner *= d
        C = dims[axis]
        out = [f32((xv[i] - zv[(i // inner) % C]) * sv[(i // inner) % C]) for i in range(n)]
        return out, xv, kind
    if p["op"] == "Reshape":
        # Reshape(Mul(Sub(Reshape(Cast(q), view), z), s), dims): groups below opset 21.
        mul = q.producer(p["in"][0])
        sub = q.producer(mul["in"][0]) if mul else None
        rs = q.producer(sub["in"][0]) if sub else None
        cast = q.producer(rs["in"][0]) if rs else None
        if not (mul and mul["op"] == "Mul" and sub["op"] == "Sub" and rs["op"] == "Reshape" and cast["op"] == "Cast"):
            fail("%s: Reshape not fed by Mul(Sub(Reshape(Cast)))" % name)
        if q.tensor(p["in"][1]).values() != list(dims):
            fail("%s: the outer Reshape does not give the weight's dims" % name)
        view = q.tensor(rs["in"][1]).values()
        x, z, s = q.tensor(cast["in"][0]), q.tensor(sub["in"][1]), q.tensor(mul["in"][1])
        xv, zv, sv = x.values(), z.values(), s.values()

        def bidx(t):
            # numpy broadcasting of t over view (same rank here)
            if len(t.dims) != len(view) or any(a not in (1, b) for a, b in zip(t.dims, view)):
                fail("%s: %s does not broadcast over the view %s" % (name, t.dims, view))

            def f(i):
                off, stride = 0, 1
                for a, b in reversed(list(zip(t.dims, view))):
                    if a != 1:
                        off += (i % b) * stride
                    stride *= a
                    i //= b
                return off
            return f
        zi, si = bidx(z), bidx(s)
        out = [f32(f32(float(xv[i]) - zv[zi(i)]) * sv[si(i)]) for i in range(n)]
        return out, xv, "Cast/Reshape/Sub/Mul/Reshape"
    if p["op"] == "Mul":
        sub = q.producer(p["in"][0])
        cast = q.producer(sub["in"][0])
        if cast["op"] == "DequantizeLinear":  # INT4 to float: scale 1, zero point 0
            one, zero = q.tensor(cast["in"][1]), q.tensor(cast["in"][2])
            if one.values() != [1.0] or zero.values() != [0]:
                fail("%s: INT4 to float is not exact" % name)
        elif sub["op"] != "Sub" or cast["op"] != "Cast":
            fail("%s: Mul not fed by Sub(Cast)" % name)
        x = q.tensor(cast["in"][0])
        z = operand(q, sub["in"][1])
        s = operand(q, p["in"][1])
        xv, zv, sv = x.values(), z.values(), s.values()
        zi, si = bcast_index(z, dims), bcast_index(s, dims)
        out = [f32(f32(float(xv[i]) - zv[zi(i)]) * sv[si(i)]) for i in range(n)]
        kind = "Cast/Sub/Mul" if cast["op"] == "Cast" else "DequantizeLinear(1, 0)/Sub/Mul"
        return out, xv, kind + (" with Gather" if isinstance(s, Gathered) else "")
    fail("%s: produced by %s" % (name, p["op"]))


def main():
    orig_p, qdq_p, deq_p, codes_p, floats_p, ort_p = sys.argv[1:7]
    expect_float = sys.argv[7:]
    orig = pb.Model(open(orig_p, "rb").read())
    qdq = pb.Model(open(qdq_p, "rb").read())
    deq = pb.Model(open(deq_p, "rb").read())
    codes, _ = safetensors(codes_p)
    floats, _ = safetensors(floats_p)
    for m, what in ((qdq, "QDQ"), (deq, "dequantized")):
        if m.opset != orig.opset or m.ir != orig.ir:
            fail("%s: opset %s IR %s, the input has %s IR %s" % (what, m.opset, m.ir, orig.opset, orig.ir))
        for f in (2, 3, 6):
            if m.fields.get(f) != orig.fields.get(f):
                fail("%s: ModelProto field %d changed" % (what, f))
        for k, v in orig.meta.items():
            if m.meta.get(k) != v:
                fail("%s: metadata_props %s lost" % (what, k))
        rep = json.loads(m.meta["squant"])
        names = sorted(l["name"] for l in rep["layers"])
        if names != sorted(k for k in codes if not k.endswith((".scale", ".zero_point"))):
            fail("%s: report layers %s" % (what, names))
    quantized = [k for k in codes if not k.endswith((".scale", ".zero_point"))]
    left = [e["name"] for e in json.loads(qdq.meta["squant"]).get("left_float", [])]
    if sorted(left) != sorted(expect_float):
        fail("the report's left_float is %s, expected %s" % (left, expect_float))
    for name in expect_float:
        if name in quantized:
            fail("%s was quantized but must stay float" % name)
        for m, what in ((qdq, "QDQ"), (deq, "dequantized")):
            if m.tensor(name).raw != orig.tensor(name).raw:
                fail("%s: %s changed" % (what, name))
    kinds = {}
    for name in quantized:
        ot = orig.tensor(name)
        dims = ot.dims
        op, axis, g = consumer(orig, name)
        want_codes = to_model_layout(codes[name][1], dims, axis, g)
        want_floats = to_model_layout(floats[name][1], dims, axis, g)
        got, got_codes, kind = qdq_values(qdq, name, dims)
        kinds[name] = kind
        if got_codes != want_codes:
            fail("%s: QDQ codes differ from squant quantize's" % name)
        if got != want_floats:
            bad = [i for i in range(len(got)) if got[i] != want_floats[i]]
            fail("%s: QDQ dequantizes to other values than squant dequantize at %d places, e.g. %r vs %r"
                 % (name, len(bad), got[bad[0]], want_floats[bad[0]]))
        dt = deq.tensor(name)
        if dt.dims != dims or dt.dtype != ot.dtype:
            fail("%s: dequantized has dims %s dtype %s, the input %s %s" % (name, dt.dims, dt.dtype, dims, ot.dtype))
        if ot.dtype == pb.FLOAT and dt.values() != want_floats:
            fail("%s: dequantized model's weights differ from squant dequantize's" % name)
        if name in qdq.inits or name in qdq.constants:
            fail("%s: the float weight is still in the QDQ model" % name)
    # Tensors that were not quantized are byte-identical.
    for name, t in list(orig.inits.items()) + list(orig.constants.items()):
        if name in quantized:
            continue
        for m, what in ((qdq, "QDQ"), (deq, "dequantized")):
            if m.tensor(name) is None or m.tensor(name).raw != t.raw:
                fail("%s: tensor %s not kept byte for byte" % (what, name))
    # QD: `squant dequantize` of the QDQ output, which must fold back to the floats.
    qd_p = os.environ.get("QD")
    if qd_p:
        qd = pb.Model(open(qd_p, "rb").read())
        if [n["op"] for n in qd.nodes if n["op"] != "Constant"] != [n["op"] for n in orig.nodes if n["op"] != "Constant"]:
            fail("squant dequantize of QDQ: the operators differ from the input's")
        for name in quantized:
            op, axis, g = consumer(orig, name)
            t = qd.tensor(name)
            if t is None or t.dtype != pb.FLOAT or t.dims != orig.tensor(name).dims:
                fail("squant dequantize of QDQ: %s is not a FLOAT weight of the input's shape" % name)
            if t.values() != to_model_layout(floats[name][1], t.dims, axis, g):
                fail("squant dequantize of QDQ: %s differs from squant dequantize's floats" % name)
        for name, t in list(orig.inits.items()) + list(orig.constants.items()):
            if name not in quantized and (qd.tensor(name) is None or qd.tensor(name).raw != t.raw):
                fail("squant dequantize of QDQ: %s not kept" % name)
        print("squant dequantize folds the QDQ output back: %d weights" % len(quantized))
    ort = json.load(open(ort_p))
    rq, rd = ort[qdq_p], ort[deq_p]
    for k in rq:
        for a, b in zip(rq[k], rd[k]):
            if not (math.isfinite(a) and abs(a - b) <= 1e-4 * max(1.0, abs(b))):
                fail("ONNX Runtime: output %s of QDQ %r and dequantized %r disagree" % (k, a, b))
    if qd_p:
        for k in rd:
            if any(abs(a - b) > 1e-5 * max(1.0, abs(b)) for a, b in zip(ort[qd_p][k], rd[k])):
                fail("ONNX Runtime: output %s of the folded-back QDQ and of dequantized disagree" % k)
    if orig_p in ort:
        ro = ort[orig_p]
        for k in ro:
            err = max(abs(a - b) for a, b in zip(rq[k], ro[k]))
            scale = max(abs(b) for b in ro[k])
            print("ONNX Runtime: output %s: max |QDQ - float| = %.4g (max |float| %.4g)" % (k, err, scale))
    for kind in sorted(set(kinds.values())):
        print("%s: %s" % (kind, " ".join(sorted(k for k, v in kinds.items() if v == kind))))
    print("ok: %d weights; ONNX Runtime outputs of QDQ and dequantized agree" % len(quantized))


if __name__ == "__main__":
    main()
