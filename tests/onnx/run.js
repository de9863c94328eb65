// Run ONNX models with ONNX Runtime (onnxruntime-node) on a fixed input.
//   node run.js OUT.json SHAPE[:text] MODEL...   (SHAPE like 1,3,8,8)
// The input is a smooth wave, or with ":text" dark bars on a light ground
// (text lines for a detector, values -2 and 2 as after normalization).
// Writes {"MODEL": {"output name": [values...]}, ...}; a model that fails
// to load or run is an error (exit 1) naming it.
const fs = require('fs');
const ort = require('onnxruntime-node');

async function main() {
  const [out, shapeArg, ...models] = process.argv.slice(2);
  const [dims, pattern] = shapeArg.split(':');
  const shape = dims.split(',').map(Number);
  const n = shape.reduce((a, b) => a * b, 1);
  const x = new Float32Array(n);
  const H = shape[shape.length - 2], W = shape[shape.length - 1];
  for (let i = 0; i < n; i++) {
    const row = Math.floor(i / W) % H, col = i % W;
    x[i] = pattern === 'text'
      ? ((Math.floor(row / 8) % 4 === 1 && Math.floor(col / 6) % 2 === 0) ? -2.0 : 2.0)
      : Math.sin(0.37 * i + 0.1) * 0.8 + 0.1;
  }
  const result = {};
  for (const m of models) {
    let session;
    try {
      session = await ort.InferenceSession.create(m, { logSeverityLevel: 3 });
    } catch (e) {
      throw new Error(`${m}: ONNX Runtime cannot load it: ${e.message}`);
    }
    const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', x, shape) };
    const r = await session.run(feeds);
    result[m] = {};
    for (const k of session.outputNames) result[m][k] = Array.from(r[k].data);
    console.log(`onnxruntime ${ort.env.versions ? ort.env.versions.common : ''}: ${m}: ` +
                session.outputNames.map(k => `${k} [${r[k].dims}]`).join(', '));
  }
  fs.writeFileSync(out, JSON.stringify(result));
}
main().catch(e => { console.error(e.message); process.exit(1); });
