// The npm package as users get it: what `npm pack` ships, and the tarball installed into a fresh app, built
// with Vite and with webpack 5 (no plugin, no config), and served by Vite's dev server, each run in headless
// Chromium against the reference server.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, test } from 'node:test';
import { launchChromium } from './support/browser.mjs';
import { startServer } from './support/server.mjs';
import webpack from 'webpack';

const repoRoot = new URL('../../', import.meta.url).pathname;
// The package as published: pkg/ with its scripts minified (scripts/dist.mjs).
const pkgDir = join(repoRoot, 'dist');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function packJson(args) {
  const out = execFileSync(npm, ['pack', '--json', '--loglevel=error', ...args], { cwd: pkgDir, encoding: 'utf8' });
  return JSON.parse(out.slice(out.indexOf('[')))[0];
}

let tmp;
before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'outbox-pack-'));
});
after(() => {
  rmSync(tmp, { recursive: true, force: true });
});

test('npm pack ships only what users need', () => {
  const pack = packJson(['--dry-run']);
  const files = pack.files.map((f) => f.path.replace(/snippets\/[^/]+\//, 'snippets/<hash>/')).sort();
  const scripts = [
    'index.js',
    'react.js',
    'sync-history.js',
    'sync-status.js',
    'tabs.js',
    'wasm/outbox_sync.js',
    'wasm/snippets/<hash>/src/js/exact-json.js',
    'wasm/snippets/<hash>/src/js/sync-error.js',
    'wasm/snippets/<hash>/src/js/validate.js',
    'wasm/sync-error.js',
    'worker.js',
  ];
  const expected = [
    'README.md',
    'index.d.ts',
    'package.json',
    'react.d.ts',
    'sync-history.d.ts',
    'sync-status.d.ts',
    'wasm/outbox_sync.d.ts',
    'wasm/outbox_sync_bg.wasm',
    'wasm/outbox_sync_bg.wasm.d.ts',
    'worker.d.ts',
    ...scripts,
    ...scripts.map((f) => `${f}.map`),
  ];
  assert.deepEqual(files, expected.sort());
  // The tarball is the wasm module plus a little JS and its source maps; anything much bigger means
  // something leaked in.
  assert.ok(pack.size < 600_000, `tarball is ${pack.size} bytes`);
  console.log(`# ${pack.filename}: ${pack.files.length} files, ${pack.size} bytes packed, ${pack.unpackedSize} unpacked`);
});

test('each shipped script is minified, with a source map that carries its readable source from pkg/', () => {
  const shipped = readdirSync(pkgDir, { recursive: true }).filter((f) => f.endsWith('.js'));
  assert.ok(shipped.length >= 11, `only ${shipped.length} scripts in dist/`);
  for (const file of shipped) {
    const source = readFileSync(join(repoRoot, 'pkg', file), 'utf8');
    const min = readFileSync(join(pkgDir, file), 'utf8');
    assert.ok(min.length < source.length || source.length < 200, `${file} is ${min.length} bytes, its source ${source.length}: not minified`);
    const mapName = `${basename(file)}.map`;
    assert.ok(min.trimEnd().endsWith(`//# sourceMappingURL=${mapName}`), `${file} does not link its map`);
    const map = JSON.parse(readFileSync(join(pkgDir, `${file}.map`), 'utf8'));
    assert.deepEqual(map.sourcesContent, [source], `${file}.map does not carry pkg/${file}`);
  }
});

test('the wasm module names no path of the machine that built it', () => {
  // Panic messages name their source files; scripts/build.sh remaps the cargo registry's prefix away.
  const wasm = readFileSync(join(pkgDir, 'wasm/outbox_sync_bg.wasm')).toString('latin1');
  for (const path of [homedir(), repoRoot.replace(/\/$/, ''), '/registry/src/'].filter((p) => p.length > 1)) {
    assert.ok(!wasm.includes(path), `the shipped wasm contains ${path}`);
  }
  assert.match(wasm, /serde_json-[0-9.]+\/src\/[a-z_/]+\.rs/, 'a dependency is named by its crate folder');
});

/** Packs the package and installs the tarball into a fresh Vite app in `tmp` (once). */
let appDir;
function freshViteApp() {
  if (appDir) return appDir;
  const { filename } = packJson(['--pack-destination', tmp]);
  const app = join(tmp, 'vite-app');
  mkdirSync(join(app, 'src'), { recursive: true });
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'vite-app', private: true, type: 'module', dependencies: { 'outbox-sync': `file:../${filename}` } }),
  );
  writeFileSync(
    join(app, 'index.html'),
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>vite app</title></head>
<body><sync-status></sync-status><script type="module" src="/src/main.js"></script></body></html>`,
  );
  // What a user writes: bare imports of the package and its element. The API base defaults to the page's
  // own origin; ?api= points it elsewhere (the dev server test, through CORS).
  writeFileSync(
    join(app, 'src/main.js'),
    `import { Outbox, SyncError } from 'outbox-sync';
import 'outbox-sync/sync-status';

const endpoint = new URLSearchParams(location.search).get('api') ?? '/api';
const outbox = await Outbox.open({ name: 'vite-app', endpoint, clientId: 'vite-app' });
document.querySelector('sync-status').outbox = outbox;
const { idempotencyKey } = await outbox.enqueue({ collection: 'notes', key: 'from-vite', op: 'put', value: { title: 'built by vite' } });
const report = await outbox.drain();
let invalid;
try { await outbox.enqueue({ collection: '', key: 'k', op: 'put', value: 1 }); } catch (e) { invalid = e instanceof SyncError && e.code; }
window.result = { idempotencyKey, report, state: outbox.status().state, invalid };
`,
  );
  // The tarball has no dependencies, so this needs no network.
  execFileSync(npm, ['install', '--offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: app, stdio: 'inherit' });
  appDir = app;
  return app;
}

/** Loads the app in Chromium and checks it enqueued, drained and showed "Synced" against `server`. */
async function assertAppSyncs(url, server) {
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e));
    await page.goto(url);
    await page.waitForFunction(() => window.result, null, { timeout: 15_000 });
    const result = await page.evaluate(() => window.result);
    assert.equal(result.report.acked, 1);
    assert.equal(result.state, 'idle');
    assert.equal(result.invalid, 'INVALID_OP', 'SyncError from the bundle is the class the package exports');
    const ledger = await server.admin('ledger');
    assert.equal(ledger[`vite-app/${result.idempotencyKey}`], 1);
    const doc = await (await fetch(new URL('api/docs/notes/from-vite', server.url))).json();
    assert.deepEqual(doc, { title: 'built by vite' });
    const label = await page.locator('sync-status [part~="label"]').textContent();
    assert.equal(label, 'Synced', 'the element registered from the bundle and attached');
    assert.deepEqual(errors, []);
  } finally {
    await browser.close();
  }
}

const viteBin = join(repoRoot, 'node_modules/vite/bin/vite.js');

test('the tarball works in a fresh Vite app: built with no plugins, it enqueues and drains in Chromium', async () => {
  const app = freshViteApp();
  // Vite is the repository's pinned dev dependency, run on the app's own root and node_modules; no config.
  execFileSync(process.execPath, [viteBin, 'build', app, '--logLevel', 'warn'], { cwd: app, stdio: 'inherit' });
  const assets = readdirSync(join(app, 'dist/assets'));
  assert.ok(assets.some((f) => f.endsWith('.wasm')), `vite emitted the wasm as an asset: ${assets}`);

  const server = await startServer({ www: join(app, 'dist') });
  try {
    await assertAppSyncs(server.url, server);
  } finally {
    await server.close();
  }
});

test('the same app builds with webpack 5 and no configuration beyond the entry, and syncs', async () => {
  const app = freshViteApp();
  const output = join(app, 'dist-webpack');
  const stats = await new Promise((resolve, reject) =>
    webpack(
      { mode: 'production', context: app, entry: './src/main.js', output: { path: output, clean: true }, performance: { hints: false } },
      (error, result) => (error ? reject(error) : resolve(result)),
    ),
  );
  assert.equal(stats.hasErrors(), false, stats.toString({ all: false, errors: true }));
  assert.ok(readdirSync(output).some((f) => f.endsWith('.wasm')), 'webpack emitted the wasm as an asset');
  writeFileSync(
    join(output, 'index.html'),
    '<!doctype html><html lang="en"><body><sync-status></sync-status><script src="main.js"></script></body></html>',
  );
  const server = await startServer({ www: output });
  try {
    await assertAppSyncs(server.url, server);
  } finally {
    await server.close();
  }
});

test('the Vite dev server works with the one setting the README documents (optimizeDeps.exclude)', async () => {
  const app = freshViteApp();
  writeFileSync(join(app, 'vite.config.js'), `export default { optimizeDeps: { exclude: ['outbox-sync'] } };\n`);
  const port = await freePort();
  const vite = spawn(process.execPath, [viteBin, app, '--port', String(port), '--strictPort', '--host', '127.0.0.1'], {
    cwd: app,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const server = await startServer();
  try {
    await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('vite dev did not start within 20 s')), 20_000);
      vite.once('exit', (code) => reject(new Error(`vite exited with ${code}`)));
      vite.stdout.on('data', (chunk) => {
        if (String(chunk).replace(/\x1b\[[0-9;]*m/g, '').includes(`:${port}/`)) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    // Another origin than the API's: this also goes through the reference server's CORS.
    const api = new URL('api', server.url).href;
    await assertAppSyncs(`http://127.0.0.1:${port}/?api=${encodeURIComponent(api)}`, server);
  } finally {
    vite.kill('SIGTERM');
    await server.close();
  }
});

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}
