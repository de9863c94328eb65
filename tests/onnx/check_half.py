#!/usr/bin/env python3
"""Check squant's QDQ output of half.onnx (FLOAT16 and DOUBLE weights).

  check_half.py QDQ.onnx DEQ.onnx QD.onnx ORT.json

QDQ is `squant quantize`, DEQ `--dequantized`, QD `squant dequantize QDQ`;
ORT.json holds ONNX Runtime's outputs of the three (run.js). Checks: each
weight's dequantization ends in a Cast back to its own type (ONNX Runtime
loads and runs the model), the outputs agree with DEQ's to float16
rounding (ONNX Runtime may fuse the dequantization into a float MatMul),
and QD holds DEQ's weights bit for bit, in their types, with DEQ's outputs.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import onnxpb as pb  # noqa: E402
from check import fail  # noqa: E402


def main():
    q_path, d_path, qd_path, ort_path = sys.argv[1:5]
    q = pb.Model(open(q_path, "rb").read())
    d = pb.Model(open(d_path, "rb").read())
    qd = pb.Model(open(qd_path, "rb").read())
    for w, t in (("h1.w", pb.FLOAT16), ("h2.w", pb.FLOAT16), ("d.w", pb.DOUBLE)):
        p = q.producer(w)
        if q.tensor(w) or not p or p["op"] != "Cast" or p["attrs"]["to"][3][0] != t or p["in"] != [w + "_float"]:
            fail("%s is not cast back to type %d from %s_float" % (w, t, w))
        a, b = d.tensor(w), qd.tensor(w)
        if b is None or (a.dtype, a.dims, a.raw) != (b.dtype, b.dims, b.raw):
            fail("squant dequantize: %s is not the dequantized weight, bit for bit and in its type" % w)
    if any(n["op"] == "Cast" and n["in"][0].endswith("_float") for n in qd.nodes):
        fail("squant dequantize left a Cast of a restored weight")
    ort = json.load(open(ort_path))
    for out in ort[d_path]:
        want = ort[d_path][out]
        top = max(abs(x) for x in want) or 1.0
        err = max(abs(x - y) for x, y in zip(ort[q_path][out], want))
        if err > 4e-3 * top:
            fail("ONNX Runtime: %s of QDQ is %g off the dequantized model's (max %g)" % (out, err, top))
        if ort[qd_path][out] != want:
            fail("ONNX Runtime: %s of the folded-back model differs" % out)
    print("FLOAT16 and DOUBLE weights: cast back after the dequantization; ONNX Runtime runs it")


if __name__ == "__main__":
    main()
