// The npm package as users get it: what `npm pack` ships, and the tarball installed into a fresh Vite app,
// built with no plugin or config, served, and run in headless Chromium against the reference server.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { launchChromium } from './support/browser.mjs';
import { startServer } from './support/server.mjs';

const repoRoot = new URL('../../', import.meta.url).pathname;
const pkgDir = join(repoRoot, 'pkg');
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
  assert.deepEqual(files, [
    'README.md',
    'index.d.ts',
    'index.js',
    'package.json',
    'sync-status.d.ts',
    'sync-status.js',
    'wasm/outbox_sync.d.ts',
    'wasm/outbox_sync.js',
    'wasm/outbox_sync_bg.wasm',
    'wasm/outbox_sync_bg.wasm.d.ts',
    'wasm/snippets/<hash>/src/js/sync-error.js',
    'wasm/sync-error.js',
  ]);
  // The tarball is the wasm module plus a little JS; anything much bigger means something leaked in.
  assert.ok(pack.size < 600_000, `tarball is ${pack.size} bytes`);
  console.log(`# ${pack.filename}: ${pack.files.length} files, ${pack.size} bytes packed, ${pack.unpackedSize} unpacked`);
});

test('the tarball works in a fresh Vite app: built with no plugins, it enqueues and drains in Chromium', async () => {
  const { filename } = packJson(['--pack-destination', tmp]);
  const app = join(tmp, 'vite-app');
  execFileSync('mkdir', ['-p', join(app, 'src')]);
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'vite-app', private: true, type: 'module', dependencies: { 'outbox-sync': `file:../${filename}` } }),
  );
  writeFileSync(
    join(app, 'index.html'),
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>vite app</title></head>
<body><sync-status></sync-status><script type="module" src="/src/main.js"></script></body></html>`,
  );
  // What a user writes: bare imports of the package and its element; no bundler configuration.
  writeFileSync(
    join(app, 'src/main.js'),
    `import { Outbox, SyncError } from 'outbox-sync';
import 'outbox-sync/sync-status';

const outbox = await Outbox.open({ name: 'vite-app', endpoint: '/api', clientId: 'vite-app' });
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
  // Vite is the repository's pinned dev dependency, run on the app's own root and node_modules.
  execFileSync(process.execPath, [join(repoRoot, 'node_modules/vite/bin/vite.js'), 'build', app, '--logLevel', 'warn'], {
    cwd: app,
    stdio: 'inherit',
  });
  const assets = readdirSync(join(app, 'dist/assets'));
  assert.ok(assets.some((f) => f.endsWith('.wasm')), `vite emitted the wasm as an asset: ${assets}`);

  const server = await startServer({ www: join(app, 'dist') });
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e));
    await page.goto(server.url);
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
    await server.close();
  }
});
