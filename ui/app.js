// The page of squantd: pick a model, choose options and per-layer bits,
// submit it as an async job, follow its progress, then show the per-layer
// report as a sortable table and plots, with downloads of every output
// layout. It talks only to the daemon that served it (the API under /v1),
// with a bearer token when the daemon asks for one.
'use strict';

(function () {
  const $ = (id) => document.getElementById(id);
  const FLOATS = new Set(['F32', 'F16', 'BF16', 'F64']);
  const NPY_FLOATS = { '<f4': 'F32', '<f2': 'F16', '<f8': 'F64' };

  const state = {
    token: sessionStorage.getItem('squantd-token') || '',
    info: null,
    file: null,
    kind: null, // 'safetensors' | 'npy' | 'onnx'
    tensors: [], // {name, dtype, shape, eligible}
    job: null, // {id, options, fileName}
    reportText: null,
    report: null,
    sort: { key: null, dir: 1 },
    plots: [],
  };

  class ApiError extends Error {
    constructor(status, body) {
      const e = body && body.error;
      super(e ? e.message : 'HTTP ' + status);
      this.status = status;
      this.code = e ? e.code : '';
    }
  }

  // A request to the daemon, with the token when there is one.
  async function api(path, opts) {
    const o = Object.assign({}, opts || {});
    o.headers = Object.assign({}, o.headers || {});
    if (state.token) o.headers['Authorization'] = 'Bearer ' + state.token;
    const r = await fetch(path, o);
    if (r.status === 401) {
      askToken(state.token ? 'that token was refused' : '');
      throw new ApiError(401, null);
    }
    if (!r.ok) {
      let body = null;
      try { body = await r.json(); } catch (e) { body = null; }
      throw new ApiError(r.status, body);
    }
    return r;
  }

  function askToken(msg) {
    $('token-form').hidden = false;
    $('token-msg').textContent = msg || '';
    $('token').focus();
  }

  $('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    state.token = $('token').value.trim();
    sessionStorage.setItem('squantd-token', state.token);
    $('token-form').hidden = true;
    start();
  });

  // ------------------------------------------------------------ options from /v1/info

  function fillSelect(sel, values, chosen) {
    sel.textContent = '';
    for (const v of values) {
      const o = document.createElement('option');
      o.value = String(v);
      o.textContent = String(v);
      if (String(v) === String(chosen)) o.selected = true;
      sel.appendChild(o);
    }
  }

  function bitRange() {
    const b = state.info.bits;
    const out = [];
    for (let i = b.min; i <= b.max; i++) out.push(i);
    return out;
  }

  async function start() {
    try {
      const r = await api('/v1/info');
      state.info = await r.json();
    } catch (e) {
      if (e.status !== 401) $('file-error').textContent = 'cannot reach the daemon: ' + e.message;
      return;
    }
    $('version').textContent = 'v' + state.info.version;
    fillSelect($('bits'), bitRange(), state.info.bits.default);
    fillSelect($('mode'), state.info.modes, state.info.modes[0]);
    fillSelect($('scheme'), state.info.schemes, state.info.schemes[0]);
    $('submit').disabled = !state.file;
    refreshJobs();
  }

  // ------------------------------------------------------------ reading the file's tensors

  function readSafetensors(buf, size) {
    if (size < 8) throw new Error('too short for a safetensors file');
    const dv = new DataView(buf);
    const n = dv.getBigUint64(0, true);
    if (n > BigInt(size - 8) || n > 100n * 1024n * 1024n) throw new Error('the header length does not fit the file');
    return Number(n);
  }

  async function parseFile(file) {
    const head = await file.slice(0, 16).arrayBuffer();
    const bytes = new Uint8Array(head);
    if (bytes[0] === 0x93 && String.fromCharCode(...bytes.slice(1, 6)) === 'NUMPY') {
      const major = bytes[6];
      const dv = new DataView(head);
      const hl = major === 1 ? dv.getUint16(8, true) : dv.getUint32(8, true);
      const start = major === 1 ? 10 : 12;
      const text = await file.slice(start, start + hl).text();
      const descr = (text.match(/'descr':\s*'([^']*)'/) || [])[1];
      const shapeText = (text.match(/'shape':\s*\(([^)]*)\)/) || [])[1];
      if (descr === undefined || shapeText === undefined) throw new Error('not a readable .npy header');
      const shape = shapeText.split(',').map((s) => s.trim()).filter((s) => s).map(Number);
      const dtype = NPY_FLOATS[descr] || descr;
      return { kind: 'npy', tensors: [{ name: 'weight', dtype, shape, eligible: FLOATS.has(dtype) && shape.length >= 2 }] };
    }
    if (/\.onnx$/i.test(file.name)) {
      return { kind: 'onnx', tensors: [] };
    }
    const n = readSafetensors(head, file.size);
    const header = JSON.parse(await file.slice(8, 8 + n).text());
    const tensors = [];
    for (const [name, t] of Object.entries(header)) {
      if (name === '__metadata__') continue;
      const shape = t.shape || [];
      tensors.push({ name, dtype: t.dtype, shape, eligible: FLOATS.has(t.dtype) && shape.length >= 2 && shape.every((d) => d > 0) });
    }
    return { kind: 'safetensors', tensors };
  }

  async function chooseFile(file) {
    $('file-error').textContent = '';
    try {
      const parsed = await parseFile(file);
      if (parsed.kind === 'onnx' && !(state.info && state.info.formats.input.includes('onnx'))) {
        throw new Error('this daemon does not read ONNX yet');
      }
      state.file = file;
      state.kind = parsed.kind;
      state.tensors = parsed.tensors;
    } catch (e) {
      state.file = null;
      $('file-error').textContent = file.name + ': ' + e.message;
      $('submit').disabled = true;
      return;
    }
    const eligible = state.tensors.filter((t) => t.eligible).length;
    $('file-info').textContent = file.name + ' — ' + (file.size / 1024).toFixed(1) + ' KiB, ' +
      (state.kind === 'onnx' ? 'ONNX model' : state.tensors.length + ' tensors, ' + eligible + ' to quantize');
    renderLayerChoices();
    $('submit').disabled = !state.info;
  }

  function renderLayerChoices() {
    const tb = $('layers').querySelector('tbody');
    tb.textContent = '';
    const eligible = state.tensors.filter((t) => t.eligible);
    $('layers-summary').textContent = state.kind === 'onnx'
      ? 'chosen by the daemon for ONNX (Conv, Gemm, MatMul weights)'
      : eligible.length + ' of ' + state.tensors.length + ' tensors';
    for (const t of eligible) {
      const tr = document.createElement('tr');
      tr.dataset.name = t.name;
      const q = document.createElement('input');
      q.type = 'checkbox';
      q.checked = true;
      q.className = 'layer-on';
      const bits = document.createElement('select');
      bits.className = 'layer-bits';
      fillSelect(bits, ['default'].concat(bitRange()), 'default');
      q.addEventListener('change', () => { bits.disabled = !q.checked; });
      const cells = [q, t.name, t.dtype, t.shape.join('×'), bits];
      cells.forEach((c, i) => {
        const td = document.createElement('td');
        if (i === 1) td.className = 'name';
        if (typeof c === 'string') td.textContent = c; else td.appendChild(c);
        tr.appendChild(td);
      });
      tb.appendChild(tr);
    }
  }

  const drop = $('drop');
  drop.addEventListener('dragover', (ev) => { ev.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (ev) => {
    ev.preventDefault();
    drop.classList.remove('over');
    if (ev.dataTransfer.files.length) chooseFile(ev.dataTransfer.files[0]);
  });
  $('file').addEventListener('change', () => { if ($('file').files.length) chooseFile($('file').files[0]); });

  // ------------------------------------------------------------ the request

  // A glob that matches exactly this name (fnmatch: backslash escapes).
  const exactGlob = (name) => name.replace(/[\\*?[\]]/g, '\\$&');

  function currentOptions() {
    const o = { bits: Number($('bits').value), mode: $('mode').value, scheme: $('scheme').value };
    const exclude = [];
    const bitsFor = {};
    for (const tr of $('layers').querySelectorAll('tbody tr')) {
      const on = tr.querySelector('.layer-on').checked;
      const b = tr.querySelector('.layer-bits').value;
      if (!on) exclude.push(exactGlob(tr.dataset.name));
      else if (b !== 'default' && Number(b) !== o.bits) bitsFor[exactGlob(tr.dataset.name)] = Number(b);
    }
    if (exclude.length) o.exclude = exclude;
    if (Object.keys(bitsFor).length) o.bits_for = bitsFor;
    return o;
  }

  function modelForm(options) {
    const types = { safetensors: 'application/vnd.safetensors', npy: 'application/x-npy', onnx: 'application/onnx' };
    const fd = new FormData();
    fd.append('model', new Blob([state.file], { type: types[state.kind] }), state.file.name);
    fd.append('options', JSON.stringify(options));
    return fd;
  }

  $('submit').addEventListener('click', async () => {
    if (!state.file) return;
    const options = Object.assign(currentOptions(), { format: 'safetensors' });
    $('submit').disabled = true;
    $('results').hidden = true;
    $('job-error').textContent = '';
    $('progress').dataset.state = 'uploading';
    showProgress(0, 0, 'uploading');
    try {
      const r = await api('/v1/jobs', { method: 'POST', body: modelForm(options) });
      const doc = await r.json();
      state.job = { id: doc.id, options, fileName: state.file.name, file: state.file, kind: state.kind, tensors: state.tensors.length };
      follow(doc);
    } catch (e) {
      $('job-error').textContent = 'not accepted: ' + e.message;
      $('submit').disabled = false;
    }
  });

  function showProgress(done, total, what) {
    $('progress-section').hidden = false;
    const p = $('progress');
    p.max = total > 0 ? total : 1;
    p.value = total > 0 ? done : 0;
    $('progress-text').textContent = total > 0 ? what + ': ' + done + ' / ' + total + ' layers' : what;
  }

  // Poll the job until it ends; the bar follows its layers done / total.
  async function follow(doc) {
    const p = $('progress');
    p.dataset.state = doc.state;
    showProgress(doc.layers.done, doc.layers.total, doc.state);
    if (doc.state === 'queued' || doc.state === 'running') {
      await new Promise((res) => setTimeout(res, 150));
      try {
        const r = await api('/v1/jobs/' + doc.id);
        follow(await r.json());
      } catch (e) {
        $('job-error').textContent = 'lost the job: ' + e.message;
        $('submit').disabled = false;
      }
      return;
    }
    $('submit').disabled = false;
    refreshJobs();
    if (doc.state !== 'done') {
      $('job-error').textContent = 'job ' + doc.state + (doc.error ? ': ' + doc.error.message : '');
      return;
    }
    showProgress(doc.layers.total, doc.layers.total, 'done');
    p.dataset.state = 'done';
    await loadReport(doc.id, doc.result && doc.result.format);
  }

  // format: the job's output format (result.format of the job document).
  async function loadReport(id, format) {
    try {
      const r = await api('/v1/jobs/' + id + '/report');
      state.reportText = await r.text();
      state.report = JSON.parse(state.reportText);
    } catch (e) {
      $('job-error').textContent = 'no report: ' + e.message;
      return;
    }
    if (!state.job || state.job.id !== id) state.job = { id, options: null, fileName: 'job-' + id.slice(0, 8), file: null };
    state.job.format = format || 'safetensors';
    $('results').hidden = false;
    renderDownloads();
    renderTable();
    renderPlots();
  }

  // ------------------------------------------------------------ downloads

  function save(blob, name) {
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  }

  function baseName() {
    const n = state.job.fileName.replace(/\.(safetensors|npy|onnx)$/i, '');
    return n + '.q' + state.report.params.bits;
  }

  function renderDownloads() {
    const box = $('downloads');
    box.textContent = '';
    const ext = { safetensors: '.safetensors', npy: '.npy', json: '.json', onnx: '.onnx' };
    // "dequantized" is the input's own container; "onnx" needs an ONNX input.
    ext.dequantized = '.dequantized' + (state.job.kind === 'onnx' ? '.onnx' : '.safetensors');
    // The job's own result is downloaded as is, under its real format; the
    // other layouts are the same request again.
    const main = state.job.format;
    for (const fmt of state.info.formats.output) {
      if (fmt === 'onnx' && fmt !== main && state.job.kind !== 'onnx') continue;
      const b = document.createElement('button');
      b.type = 'button';
      b.dataset.format = fmt;
      b.textContent = 'Download ' + fmt;
      const single = state.job.file && state.job.tensors === 1;
      if (fmt === 'npy' && !single) {
        b.disabled = true;
        b.title = 'npy holds one array: only for an input of exactly one tensor';
      }
      if (fmt !== main && !state.job.file) {
        b.disabled = true;
        b.title = 'this job\'s file is not in the page: only its own result can be downloaded';
      }
      b.addEventListener('click', async () => {
        b.disabled = true;
        try {
          let r;
          if (fmt === main) {
            r = await api('/v1/jobs/' + state.job.id + '/result');
          } else {
            // The same request in another layout: the same codes, written differently.
            const saveFile = state.file, saveKind = state.kind;
            state.file = state.job.file; state.kind = state.job.kind;
            const form = modelForm(Object.assign({}, state.job.options, { format: fmt }));
            state.file = saveFile; state.kind = saveKind;
            r = await api('/v1/quantize', { method: 'POST', body: form });
          }
          save(await r.blob(), baseName() + (fmt === 'json' ? '.squant' : '') + ext[fmt]);
        } catch (e) {
          $('job-error').textContent = 'download failed: ' + e.message;
        }
        b.disabled = false;
      });
      box.appendChild(b);
    }
    const rb = document.createElement('button');
    rb.type = 'button';
    rb.dataset.format = 'report';
    rb.textContent = 'Download report (JSON)';
    rb.addEventListener('click', () => save(new Blob([state.reportText], { type: 'application/json' }), baseName() + '.report.json'));
    box.appendChild(rb);
  }

  // ------------------------------------------------------------ the table

  const pct = (v) => (100 * v).toFixed(1) + '%';
  const fix = (v) => v.toFixed(4);
  const sci = (v) => v.toExponential(3);
  const COLUMNS = [
    { key: 'name', label: 'layer', cls: 'name', fmt: String, text: true },
    { key: 'kernel_residual_reduction', label: 'kernel cut', fmt: pct, lead: true, title: '1 − SQuant / RTN largest kernel residual' },
    { key: 'channel_residual_reduction', label: 'channel cut', fmt: pct, lead: true, title: '1 − SQuant / RTN largest channel residual' },
    { key: 'max_kernel_residual', label: 'kernel res', fmt: fix, title: 'largest |Σ(q − x)| over a kernel, code units' },
    { key: 'rtn_max_kernel_residual', label: 'RTN kernel res', fmt: fix },
    { key: 'max_channel_residual', label: 'channel res', fmt: fix, title: 'largest |Σ(q − x)| over an output channel' },
    { key: 'rtn_max_channel_residual', label: 'RTN channel res', fmt: fix },
    { key: 'mse', label: 'MSE', fmt: sci },
    { key: 'rtn_mse', label: 'RTN MSE', fmt: sci },
    { key: 'max_abs_error', label: 'max err', fmt: sci },
    { key: 'rtn_max_abs_error', label: 'RTN max err', fmt: sci },
    { key: 'flips', label: 'flips', fmt: String, title: 'codes that differ from round to nearest' },
    { key: 'kernel_flips', label: 'kernel flips', fmt: String },
    { key: 'channel_flips', label: 'channel flips', fmt: String },
    { key: 'bits', label: 'bits', fmt: String },
    { key: 'weights', label: 'weights', fmt: String },
    { key: 'shape', label: 'shape', fmt: (s) => s.join('×'), text: true, sortBy: (s) => s.reduce((a, b) => a * b, 1) },
  ];

  function renderTable() {
    const t = $('report');
    const head = t.querySelector('thead');
    head.textContent = '';
    const tr = document.createElement('tr');
    for (const c of COLUMNS) {
      const th = document.createElement('th');
      th.textContent = c.label;
      th.dataset.key = c.key;
      if (c.cls) th.className = c.cls;
      if (c.lead) th.classList.add('lead');
      if (c.title) th.title = c.title;
      if (state.sort.key === c.key) th.setAttribute('aria-sort', state.sort.dir > 0 ? 'ascending' : 'descending');
      // Ascending, descending, then back to the report's order.
      th.addEventListener('click', () => {
        if (state.sort.key !== c.key) state.sort = { key: c.key, dir: 1 };
        else if (state.sort.dir > 0) state.sort.dir = -1;
        else state.sort = { key: null, dir: 1 };
        renderTable();
      });
      tr.appendChild(th);
    }
    head.appendChild(tr);
    let rows = state.report.layers.slice();
    if (state.sort.key) {
      const c = COLUMNS.find((x) => x.key === state.sort.key);
      const val = (l) => (c.sortBy ? c.sortBy(l[c.key]) : l[c.key]);
      rows.sort((a, b) => {
        const x = val(a), y = val(b);
        return (x < y ? -1 : x > y ? 1 : 0) * state.sort.dir;
      });
    }
    const body = t.querySelector('tbody');
    body.textContent = '';
    for (const l of rows) {
      const r = document.createElement('tr');
      r.dataset.name = l.name;
      for (const c of COLUMNS) {
        const td = document.createElement('td');
        const v = l[c.key];
        td.textContent = c.fmt(v);
        td.dataset.key = c.key;
        if (!c.text) td.dataset.v = String(v);
        if (c.cls) td.className = c.cls;
        if (c.lead) {
          td.classList.add('lead');
          if (v < 0) td.classList.add('neg');
        }
        r.appendChild(td);
      }
      body.appendChild(r);
    }
    const foot = t.querySelector('tfoot');
    foot.textContent = '';
    const tot = state.report.total;
    const fr = document.createElement('tr');
    for (const c of COLUMNS) {
      const td = document.createElement('td');
      if (c.key === 'name') { td.textContent = 'total (' + tot.layers + ' layers)'; td.className = 'name'; }
      else if (c.key in tot && c.key !== 'layers') td.textContent = c.fmt(tot[c.key]);
      fr.appendChild(td);
    }
    foot.appendChild(fr);
  }

  // ------------------------------------------------------------ the plots

  const PLOTS = [
    { title: 'Residual cut against RTN per layer (%), higher is better', log: false, pct: true,
      series: [['kernel_residual_reduction', 'kernel cut', '#137333'], ['channel_residual_reduction', 'channel cut', '#1f6feb']] },
    { title: 'Largest kernel residual |Σ(q − x)| (code units, log)', log: true,
      series: [['max_kernel_residual', 'SQuant', '#1f6feb'], ['rtn_max_kernel_residual', 'RTN', '#d9480f']] },
    { title: 'Largest channel residual |Σ(q − x)| (code units, log)', log: true,
      series: [['max_channel_residual', 'SQuant', '#1f6feb'], ['rtn_max_channel_residual', 'RTN', '#d9480f']] },
    { title: 'Mean squared error of the weights (log)', log: true,
      series: [['mse', 'SQuant', '#1f6feb'], ['rtn_mse', 'RTN', '#d9480f']] },
    { title: 'Largest absolute error of a weight (log)', log: true,
      series: [['max_abs_error', 'SQuant', '#1f6feb'], ['rtn_max_abs_error', 'RTN', '#d9480f']] },
    { title: 'Flips per stage (codes changed)', log: false,
      series: [['kernel_flips', 'kernel stage', '#7048e8'], ['channel_flips', 'channel stage', '#0b7285'], ['flips', 'net vs RTN', '#5b6573']] },
  ];

  function renderPlots() {
    for (const p of state.plots) p.destroy();
    state.plots = [];
    const box = $('plots');
    box.textContent = '';
    const layers = state.report.layers;
    const names = layers.map((l) => l.name);
    const xs = layers.map((_, i) => i);
    for (const spec of PLOTS) {
      const div = document.createElement('div');
      div.className = 'plot';
      const h = document.createElement('h4');
      h.textContent = spec.title;
      div.appendChild(h);
      box.appendChild(div);
      const width = Math.max(300, div.clientWidth || 420);
      const data = [xs];
      const series = [{ label: 'layer', value: (u, v) => (v == null ? '' : names[v]) }];
      for (const [key, label, color] of spec.series) {
        data.push(layers.map((l) => {
          const v = spec.pct ? 100 * l[key] : l[key];
          return spec.log && !(v > 0) ? null : v;
        }));
        series.push({ label, stroke: color, width: 2, points: { show: true, size: 6, fill: color },
          value: (u, v) => (v == null ? '—' : spec.pct ? v.toFixed(1) + '%' : spec.log ? v.toExponential(3) : String(v)) });
      }
      const opts = {
        width, height: 220,
        scales: { x: { time: false }, y: spec.log ? { distr: 3 } : {} },
        axes: [
          { values: (u, splits) => splits.map((v) => (Number.isInteger(v) ? String(v) : '')), label: 'layer (index in the report)' },
          spec.log ? { size: 64, values: (u, splits) => splits.map((v) => (v == null ? '' : v >= 0.01 && v < 1000 ? String(+v.toPrecision(3)) : v.toExponential(0))) } : { size: 64 },
        ],
        series,
        cursor: { drag: { x: false, y: false } },
      };
      state.plots.push(new uPlot(opts, data, div));
    }
  }

  // ------------------------------------------------------------ recent jobs

  async function refreshJobs() {
    let doc;
    try {
      doc = await (await api('/v1/jobs?limit=10')).json();
    } catch (e) {
      return;
    }
    const tb = $('jobs').querySelector('tbody');
    tb.textContent = '';
    for (const j of doc.jobs) {
      const tr = document.createElement('tr');
      const cells = [j.id.slice(0, 12), j.state, (j.created_at || '').replace('T', ' ').replace('Z', ''),
        j.layers.done + ' / ' + j.layers.total];
      for (const c of cells) {
        const td = document.createElement('td');
        td.className = 'text';
        td.textContent = c;
        tr.appendChild(td);
      }
      const td = document.createElement('td');
      if (j.state === 'done') {
        const b = document.createElement('button');
        b.type = 'button';
        b.textContent = 'show report';
        b.addEventListener('click', () => loadReport(j.id, j.result && j.result.format));
        td.appendChild(b);
      } else if (j.error) {
        td.textContent = j.error.message;
        td.className = 'text error';
      }
      tr.appendChild(td);
      tb.appendChild(tr);
    }
  }

  start();
})();
