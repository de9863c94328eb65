// The page in a real browser: Debian's chromium driven by playwright-core.
//
//   node ui.mjs main BASE MODEL WORKDIR SHOTDIR   upload, progress, table, plots, downloads
//                                                 (and $ONNX_MODEL as a job of another client)
//   node ui.mjs auth BASE TOKEN WORKDIR           the page asks for the token and sends it
//
// tests/browser/ui.sh starts the daemon and prepares WORKDIR/cli.safetensors and
// WORKDIR/cli.json with `squant quantize` and the options this script picks on the page.
// Prints one line per failed check and exits 1 if any failed.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import path from 'node:path';

const [mode, base, arg, work, shotDir] = process.argv.slice(2);
const failures = [];
let checks = 0;
function check(desc, ok, detail) {
  checks++;
  if (!ok) {
    failures.push(desc);
    console.log('FAIL: ' + desc + (detail !== undefined ? ' (' + detail + ')' : ''));
  }
}

const WAIT = { timeout: 60000 };

async function launch() {
  const profile = fs.mkdtempSync(path.join(work, 'profile-'));
  return chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    acceptDownloads: true,
    viewport: { width: 1560, height: 1000 },
  });
}

// Every request the browser makes, and every console error or page error.
function watch(context, page) {
  const seen = { requests: [], errors: [] };
  context.on('request', (r) => seen.requests.push(r));
  page.on('console', (m) => { if (m.type() === 'error') seen.errors.push('console: ' + m.text()); });
  page.on('pageerror', (e) => seen.errors.push('page error: ' + e.message));
  return seen;
}

function local(url) {
  return url.startsWith(base + '/') || url.startsWith('blob:' + base + '/') || url.startsWith('data:');
}

async function download(page, selector, to) {
  const [d] = await Promise.all([page.waitForEvent('download', WAIT), page.click(selector)]);
  await d.saveAs(to);
  return { name: d.suggestedFilename(), bytes: fs.readFileSync(to) };
}

async function mainTest() {
  const model = arg;
  const context = await launch();
  const page = context.pages()[0] || (await context.newPage());
  const seen = watch(context, page);
  const resp = await page.goto(base + '/', WAIT);
  check('GET / answers 200', resp.status() === 200, resp.status());
  await page.waitForSelector('#bits option', { state: 'attached', ...WAIT });

  // The model, and the options: 3 bits, fc.weight at 8, layer2.0.down.weight left as it is.
  await page.setInputFiles('#file', model);
  await page.waitForFunction(() => /to quantize/.test(document.getElementById('file-info').textContent), null, WAIT);
  const listed = await page.$$eval('#layers tbody tr', (rows) => rows.map((r) => r.dataset.name));
  const header = JSON.parse(fs.readFileSync(model).subarray(8, 8 + Number(fs.readFileSync(model).readBigUInt64LE(0))).toString());
  const eligible = Object.entries(header).filter(([n, t]) => n !== '__metadata__' && t.shape.length >= 2).map(([n]) => n);
  check('the layer list is the file\'s own eligible tensors', JSON.stringify(listed) === JSON.stringify(eligible), listed.length);
  await page.selectOption('#bits', '3');
  await page.click('#layers-box summary');
  await page.selectOption('#layers tr[data-name="fc.weight"] .layer-bits', '8');
  await page.uncheck('#layers tr[data-name="layer2.0.down.weight"] .layer-on');

  // Submit; the bar follows the job to its end.
  const posted = page.waitForResponse((r) => r.url() === base + '/v1/jobs' && r.request().method() === 'POST', WAIT);
  await page.click('#submit');
  const job = await (await posted).json();
  check('submitted as an async job', /^[0-9a-f]{32}$/.test(job.id), job.id);
  await page.waitForSelector('#progress[data-state="done"]', { state: 'attached', ...WAIT });
  const bar = await page.$eval('#progress', (p) => ({ value: p.value, max: p.max }));
  check('the progress bar is full', bar.value === bar.max && bar.max === eligible.length - 1, JSON.stringify(bar));
  await page.waitForSelector('#report tbody tr', WAIT);

  // The table: a row per quantized layer, its numbers those of the report.
  const report = await (await fetch(base + '/v1/jobs/' + job.id + '/report')).json();
  const rows = await page.$$eval('#report tbody tr', (trs) => trs.map((tr) => ({
    name: tr.dataset.name,
    cells: Object.fromEntries([...tr.querySelectorAll('td')].map((td) => [td.dataset.key, { v: td.dataset.v, text: td.textContent }])),
  })));
  check('one row per quantized layer', rows.length === report.layers.length && rows.length === eligible.length - 1, rows.length);
  check('fc.weight got 8 bits, the rest 3', report.layers.every((l) => l.bits === (l.name === 'fc.weight' ? 8 : 3)));
  check('the unchecked layer was not quantized', !report.layers.some((l) => l.name === 'layer2.0.down.weight'));
  const numeric = ['kernel_residual_reduction', 'channel_residual_reduction', 'max_kernel_residual',
    'rtn_max_kernel_residual', 'max_channel_residual', 'rtn_max_channel_residual', 'mse', 'rtn_mse',
    'max_abs_error', 'rtn_max_abs_error', 'flips', 'kernel_flips', 'channel_flips', 'bits', 'weights'];
  let mismatches = 0;
  let firstBad = '';
  report.layers.forEach((l, i) => {
    const row = rows[i];
    if (!row || row.name !== l.name) { mismatches++; firstBad = firstBad || 'row ' + i; return; }
    for (const k of numeric) {
      const c = row.cells[k];
      if (!c || Number(c.v) !== l[k]) { mismatches++; firstBad = firstBad || l.name + '.' + k + ': ' + (c && c.v) + ' != ' + l[k]; }
    }
    if (row.cells.shape.text !== l.shape.join('×')) { mismatches++; firstBad = firstBad || l.name + '.shape'; }
    const pct = (100 * l.kernel_residual_reduction).toFixed(1) + '%';
    if (row.cells.kernel_residual_reduction.text !== pct) { mismatches++; firstBad = firstBad || l.name + ' shown ' + row.cells.kernel_residual_reduction.text; }
  });
  check('every cell equals the report JSON', mismatches === 0, firstBad);
  const lead = await page.$$eval('#report thead th', (ths) => ths.slice(0, 3).map((th) => th.dataset.key));
  check('the table leads with the residual cuts', JSON.stringify(lead) === JSON.stringify(['name', 'kernel_residual_reduction', 'channel_residual_reduction']), lead);

  // Sorting by a column, both ways.
  const sortedBy = async () => page.$$eval('#report tbody td[data-key="channel_residual_reduction"]', (tds) => tds.map((td) => Number(td.dataset.v)));
  await page.click('#report thead th[data-key="channel_residual_reduction"]');
  const up = await sortedBy();
  await page.click('#report thead th[data-key="channel_residual_reduction"]');
  const down = await sortedBy();
  const asc = [...up].sort((a, b) => a - b);
  check('sorts ascending, then descending', JSON.stringify(up) === JSON.stringify(asc) && JSON.stringify(down) === JSON.stringify([...asc].reverse()));
  await page.click('#report thead th[data-key="channel_residual_reduction"]');
  const back = await page.$$eval('#report tbody tr', (trs) => trs.map((tr) => tr.dataset.name));
  check('a third click restores the report\'s order', JSON.stringify(back) === JSON.stringify(report.layers.map((l) => l.name)));

  // Every plot drew on its canvas.
  const plots = await page.$$eval('#plots .plot', (divs) => divs.map((d) => {
    const c = d.querySelector('canvas');
    if (!c) return -1;
    const px = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < px.length; i += 4) if (px[i] !== 0) n++;
    return n;
  }));
  check('six plots', plots.length === 6, plots.length);
  check('every plot drew', plots.length > 0 && plots.every((n) => n > 500), JSON.stringify(plots));
  const explain = await page.$eval('#explain', (p) => p.textContent);
  check('the page says why MSE may rise while the residuals fall', /MSE rise while the residuals fall/.test(explain));

  // Downloads: each layout, byte for byte what squant quantize writes.
  const formats = await page.$$eval('#downloads button', (bs) => bs.map((b) => b.dataset.format + (b.disabled ? '-' : '')));
  check('a download button per layout and the report', JSON.stringify(formats) === JSON.stringify(['safetensors', 'dequantized', 'npy-', 'json', 'report']), formats);
  const st = await download(page, '#downloads button[data-format="safetensors"]', path.join(work, 'page.safetensors'));
  check('the safetensors download = squant quantize', st.bytes.equals(fs.readFileSync(path.join(work, 'cli.safetensors'))), st.bytes.length);
  check('the download is named after the file', st.name === path.basename(model).replace(/\.safetensors$/, '') + '.q3.safetensors', st.name);
  const js = await download(page, '#downloads button[data-format="json"]', path.join(work, 'page.json'));
  check('the json download = squant quantize --format json', js.bytes.equals(fs.readFileSync(path.join(work, 'cli.json'))), js.bytes.length);
  const rep = await download(page, '#downloads button[data-format="report"]', path.join(work, 'page.report.json'));
  const stored = Buffer.from(await (await fetch(base + '/v1/jobs/' + job.id + '/report')).arrayBuffer());
  check('the report download = GET /v1/jobs/{id}/report', rep.bytes.equals(stored), rep.bytes.length);

  fs.mkdirSync(shotDir, { recursive: true });
  await page.screenshot({ path: path.join(shotDir, 'ui.png'), fullPage: true });

  // A single .npy tensor: its header read by the page, the .npy layout offered.
  const npy = path.join(work, 'w.npy');
  await page.setInputFiles('#file', npy);
  await page.waitForFunction(() => /w\.npy/.test(document.getElementById('file-info').textContent), null, WAIT);
  const npyLayers = await page.$$eval('#layers tbody tr', (rows) => rows.map((r) => r.dataset.name + ' ' + r.children[3].textContent));
  check('the .npy tensor is listed with its shape', JSON.stringify(npyLayers) === JSON.stringify(['weight 64×32×3×3']), npyLayers);
  await page.selectOption('#bits', '2');
  const posted2 = page.waitForResponse((r) => r.url() === base + '/v1/jobs' && r.request().method() === 'POST', WAIT);
  await page.click('#submit');
  const job2 = await (await posted2).json();
  await page.waitForSelector('#progress[data-state="done"]', { state: 'attached', ...WAIT });
  await page.waitForSelector('#report tbody tr[data-name="weight"]', WAIT);
  check('the .npy job is a new one', job2.id !== job.id);
  check('the npy layout is offered for one tensor', !(await page.$eval('#downloads button[data-format="npy"]', (b) => b.disabled)));
  const np = await download(page, '#downloads button[data-format="npy"]', path.join(work, 'page.npy'));
  check('the npy download = squant quantize --format npy', np.bytes.equals(fs.readFileSync(path.join(work, 'cli.npy'))), np.bytes.length);
  check('the npy download is named after the file', np.name === 'w.q2.npy', np.name);

  // The recent jobs list shows it.
  await page.waitForFunction((id) => [...document.querySelectorAll('#jobs td')].some((td) => id.startsWith(td.textContent)), job.id, WAIT);

  // An ONNX job posted by another client (default output: ONNX), opened from
  // the jobs list: its result is offered, and saved, as the ONNX it is.
  const onnxModel = fs.readFileSync(process.env.ONNX_MODEL);
  const oj = await (await fetch(base + '/v1/jobs?bits=4', { method: 'POST', headers: { 'Content-Type': 'application/onnx' }, body: onnxModel })).json();
  let od = oj;
  for (let i = 0; i < 600 && od.state !== 'done' && od.state !== 'failed'; i++) {
    await new Promise((r) => setTimeout(r, 100));
    od = await (await fetch(base + '/v1/jobs/' + oj.id)).json();
  }
  check('the ONNX job is done, its result ONNX', od.state === 'done' && od.result && od.result.format === 'onnx', JSON.stringify(od.result));
  await page.reload(WAIT);
  const row = page.locator('#jobs tr', { hasText: oj.id.slice(0, 12) });
  await row.locator('button').click(WAIT);
  await page.waitForSelector('#downloads button[data-format="onnx"]', WAIT);
  const onnxButtons = await page.$$eval('#downloads button', (bs) => bs.map((b) => b.dataset.format + (b.disabled ? '-' : '') + ':' + b.textContent));
  check('the ONNX job\'s own result is the enabled "Download onnx"', onnxButtons.includes('onnx:Download onnx') && onnxButtons.includes('safetensors-:Download safetensors'), onnxButtons);
  const ob = await download(page, '#downloads button[data-format="onnx"]', path.join(work, 'page.onnx'));
  const oresult = Buffer.from(await (await fetch(base + '/v1/jobs/' + oj.id + '/result')).arrayBuffer());
  check('the ONNX download is the job\'s result', ob.bytes.equals(oresult) && oresult.length > 0, ob.bytes.length);
  check('the ONNX download is named .onnx', /\.onnx$/.test(ob.name), ob.name);


  const foreign = seen.requests.map((r) => r.url()).filter((u) => !local(u));
  check('no request left ' + base, foreign.length === 0, foreign.join(' '));
  check('requests were made (the watch works)', seen.requests.some((r) => r.url() === base + '/ui/uPlot.iife.min.js'));
  check('no console or page error', seen.errors.length === 0, seen.errors.join(' | '));
  await context.close();
}

async function authTest() {
  const token = arg;
  const context = await launch();
  const page = context.pages()[0] || (await context.newPage());
  const seen = watch(context, page);
  await page.goto(base + '/', WAIT);
  await page.waitForSelector('#token-form:not([hidden])', WAIT);
  check('no options before the token', (await page.$$('#bits option')).length === 0);
  await page.fill('#token', token);
  await page.click('#token-form button');
  await page.waitForSelector('#bits option', { state: 'attached', ...WAIT });
  check('the token form is gone', await page.$eval('#token-form', (f) => f.hidden));
  const api = seen.requests.filter((r) => r.url().startsWith(base + '/v1/'));
  const sent = api.filter((r) => r.headers()['authorization'] === 'Bearer ' + token);
  check('the API is called with the bearer token', sent.length >= 1 && sent.some((r) => r.url() === base + '/v1/info'), api.length + ' calls, ' + sent.length + ' with the token');
  const foreign = seen.requests.map((r) => r.url()).filter((u) => !local(u));
  check('no request left ' + base, foreign.length === 0, foreign.join(' '));
  // The one 401 before the token is the only error the console may show.
  const other = seen.errors.filter((e) => !/401/.test(e));
  check('no console error but the refused request', other.length === 0, other.join(' | '));
  await context.close();
}

try {
  if (mode === 'main') await mainTest();
  else if (mode === 'auth') await authTest();
  else throw new Error('unknown mode ' + mode);
} catch (e) {
  check('the browser run finished', false, e.stack || e.message);
}
console.log('ui.mjs ' + mode + ': ' + checks + ' checks, ' + failures.length + ' failed');
process.exit(failures.length ? 1 : 0);
