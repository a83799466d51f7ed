// outbox-sync/react in a real React app: the packed tarball installed into a fresh app, built with Vite
// (React's development build, so StrictMode really mounts everything twice), run in headless Chromium
// against the reference server.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { launchChromium } from './support/browser.mjs';
import { screenshot, waitUntil } from './support/demo.mjs';
import { startServer } from './support/server.mjs';

const repoRoot = new URL('../../', import.meta.url).pathname;
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const viteBin = join(repoRoot, 'node_modules/vite/bin/vite.js');

let tmp;
before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'outbox-react-'));
});
after(() => {
  rmSync(tmp, { recursive: true, force: true });
});

// The app as a user writes it: hooks only, no outbox calls in render. `window.app` lets the test act as the
// rest of the app would (enqueue, drain, close).
const APP = `import { StrictMode, useEffect, useState } from 'react';
import { createRoot } from 'react-dom/client';
import { Outbox } from 'outbox-sync';
import { useConflicts, useDoc, useFailed, useList, useSyncStatus } from 'outbox-sync/react';

window.effects = 0;

function Details({ outbox }) {
  const status = useSyncStatus(outbox);
  const milk = useDoc(outbox, 'notes', 'milk');
  const conflicts = useConflicts(outbox);
  return <p id="details">{status ? status.state : 'none'} / {milk ? milk.title : 'no milk'} / {conflicts.length} conflicts</p>;
}

function App({ outbox }) {
  const status = useSyncStatus(outbox);
  const notes = useList(outbox, 'notes');
  const failed = useFailed(outbox);
  const [ticks, setTicks] = useState(0);
  const [details, setDetails] = useState(true);
  useEffect(() => {
    window.effects++;
  }, []);
  return (
    <main>
      <h1>Notes</h1>
      <p id="status" data-state={status ? status.state : 'none'} data-pending={status ? status.pending : -1}>
        {status ? status.state + ' · ' + status.pending + ' pending' : 'opening…'}
      </p>
      <ul id="notes">
        {notes.map((note) => (
          <li key={note.key} data-pending={note.pending}>{note.value.title}</li>
        ))}
      </ul>
      <h2>Failed</h2>
      <ul id="failed">
        {failed.map((op) => (
          <li key={op.id}>
            {op.op} {op.collection}/{op.key}: {op.lastError ? op.lastError.status : '?'}{' '}
            <button onClick={() => outbox.discard(op.id)}>Discard</button>
          </li>
        ))}
      </ul>
      <button id="tick" onClick={() => setTicks((n) => n + 1)}>Re-render ({ticks})</button>
      <button id="toggle" onClick={() => setDetails((d) => !d)}>Toggle details</button>
      {details && <Details outbox={outbox} />}
    </main>
  );
}

const root = createRoot(document.getElementById('root'));
// First without an outbox, as an app renders while it opens.
root.render(<StrictMode><App outbox={null} /></StrictMode>);
const outbox = await Outbox.open({ name: 'react-app-' + Math.random(), endpoint: '/api', autoDrain: false });
// ?eager: subscribe, watch and watchDoc also call back at registration, synchronously, as a release may do;
// the hooks must not depend on either behaviour.
if (new URLSearchParams(location.search).has('eager')) {
  const { subscribe, watch, watchDoc } = outbox;
  outbox.subscribe = (cb) => { const stop = subscribe.call(outbox, cb); cb(outbox.status()); return stop; };
  outbox.watch = (c, cb) => { const stop = watch.call(outbox, c, cb); cb(outbox.list(c)); return stop; };
  outbox.watchDoc = (c, k, cb) => { const stop = watchDoc.call(outbox, c, k, cb); cb(outbox.get(c, k)); return stop; };
}
window.app = { outbox };
root.render(<StrictMode><App outbox={outbox} /></StrictMode>);
`;

/** Packs the package, installs the tarball into a fresh app with React linked from the repository, builds it. */
function buildApp() {
  const { filename } = JSON.parse(
    execFileSync(npm, ['pack', '--json', '--loglevel=error', '--pack-destination', tmp], { cwd: join(repoRoot, 'dist'), encoding: 'utf8' }).replace(/^[^[]*/, ''),
  )[0];
  const app = join(tmp, 'react-app');
  mkdirSync(join(app, 'src'), { recursive: true });
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({ name: 'react-app', private: true, type: 'module', dependencies: { 'outbox-sync': `file:../${filename}` } }),
  );
  // The tarball has no dependencies (react is an optional peer), so this needs no network.
  execFileSync(npm, ['install', '--offline', '--no-audit', '--no-fund', '--loglevel=error'], { cwd: app, stdio: 'inherit' });
  // React comes from the repository's own (pinned) install, linked in as a workspace would be.
  for (const name of ['react', 'react-dom']) symlinkSync(join(repoRoot, 'node_modules', name), join(app, 'node_modules', name), 'dir');
  writeFileSync(
    join(app, 'index.html'),
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>react app</title></head>
<body><div id="root"></div><script type="module" src="/src/main.jsx"></script></body></html>`,
  );
  writeFileSync(join(app, 'src/main.jsx'), APP);
  // React's development build (StrictMode's double mount only happens there); one copy of React.
  writeFileSync(
    join(app, 'vite.config.js'),
    `export default {
  mode: 'development',
  define: { 'process.env.NODE_ENV': '"development"' },
  resolve: { dedupe: ['react', 'react-dom'] },
  esbuild: { jsx: 'automatic' },
  build: { minify: false },
};
`,
  );
  execFileSync(process.execPath, [viteBin, 'build', app, '--logLevel', 'warn'], { cwd: app, stdio: 'inherit' });
  return join(app, 'dist');
}

let dist;
const built = () => (dist ??= buildApp());

for (const [mode, query] of [['', ''], [' (watchers that also call back at registration)', '?eager']]) {
  test(`a React app in StrictMode shows the list, status and failed ops, and survives close()${mode}`, () => runApp(query));
}

async function runApp(query) {
  const server = await startServer({ www: built() });
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 640, height: 480 } });
    const errors = [];
    const consoleMessages = [];
    page.on('pageerror', (error) => errors.push(error));
    page.on('console', (message) => {
      // Chromium logs the server's deliberate 404 (the refused op below) as a failed resource load.
      if (['error', 'warning'].includes(message.type()) && !message.text().startsWith('Failed to load resource')) {
        consoleMessages.push(`${message.type()}: ${message.text()}`);
      }
    });
    await page.goto(server.url + query);
    await page.locator('#status[data-state="idle"]').waitFor({ timeout: 15_000 });
    assert.ok(await page.evaluate(() => window.effects) >= 2, 'StrictMode mounted the app twice (development build)');
    const text = (selector) => page.locator(selector).allTextContents();
    assert.deepEqual(await text('#notes li'), []);
    assert.deepEqual(await text('#failed li'), []);

    // An enqueue shows at once, as pending; the drain acks it and the status goes back to idle, 0 pending.
    await page.evaluate(() => window.app.outbox.enqueue({ collection: 'notes', key: 'milk', op: 'put', value: { title: 'Milk' } }));
    await page.locator('#notes li[data-pending="1"]', { hasText: 'Milk' }).waitFor();
    assert.equal(await page.locator('#status').getAttribute('data-pending'), '1');
    assert.match(await page.locator('#details').textContent(), /Milk/);
    await page.evaluate(() => window.app.outbox.drain());
    await page.locator('#notes li[data-pending="0"]', { hasText: 'Milk' }).waitFor();
    await page.locator('#status[data-state="idle"][data-pending="0"]').waitFor();
    assert.equal(await page.locator('#status').textContent(), 'idle · 0 pending');

    // A patch of a document the server does not have fails (404): it is listed, then discarded from the UI.
    await page.evaluate(async () => {
      await window.app.outbox.enqueue({ collection: 'todo', key: 'ghost', op: 'patch', value: { done: true } });
      await window.app.outbox.drain();
    });
    await page.locator('#failed li', { hasText: 'patch todo/ghost: 404' }).waitFor();
    await page.locator('#status[data-state="error"]').waitFor();
    if (!query) await screenshot(page, 'react-app-failed.png');
    await page.locator('#failed li button', { hasText: 'Discard' }).click();
    await waitUntil(() => text('#failed li'), (items) => items.length === 0, { what: 'the failed op to disappear' });
    await page.locator('#status[data-state="idle"][data-pending="0"]').waitFor();

    // Closed: renders, unmounts and new mounts keep the last snapshot (or the fallback) and throw nothing.
    const before = await page.locator('#status').textContent();
    await page.evaluate(() => window.app.outbox.close());
    await page.locator('#tick').click();
    await page.locator('#toggle').click();
    await page.locator('#toggle').click();
    await page.locator('#tick').click();
    await page.locator('#tick', { hasText: 'Re-render (2)' }).waitFor();
    assert.equal(await page.locator('#status').textContent(), before);
    assert.deepEqual(await text('#notes li'), ['Milk']);
    assert.equal(await page.locator('#details').textContent(), 'none / no milk / 0 conflicts', 'mounted after close: the fallbacks');
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(errors, []);
    assert.deepEqual(consoleMessages, [], 'no React warning or error in the console');
  } finally {
    await browser.close();
    await server.close();
  }
}
