// No tab open: the app's service worker drains the outbox (`outbox-sync/worker`). Ops are enqueued while the
// server refuses everything, every tab of the app is closed, the server comes back, and the Background Sync
// event is fired through the DevTools protocol: the ledger must show every op applied once.
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { launchChromium } from './support/browser.mjs';
import { startServer } from './support/server.mjs';
import { eventually } from './support/tabs.mjs';

const repoRoot = new URL('../../', import.meta.url).pathname;
const OPTIONS = { name: 'sw-drain', endpoint: '/api', clientId: 'sw', retry: { baseMs: 60_000, capMs: 60_000 } };

// A site of its own: the staged package, an empty page and the service worker an app would write.
let www;
let server;
let browser;
before(async () => {
  www = mkdtempSync(join(tmpdir(), 'outbox-sw-www-'));
  cpSync(join(repoRoot, 'www/vendor/outbox-sync'), join(www, 'vendor/outbox-sync'), { recursive: true });
  writeFileSync(join(www, 'index.html'), '<!doctype html><title>app</title>');
  writeFileSync(
    join(www, 'sw.js'),
    `import { handleSync } from './vendor/outbox-sync/worker.js';
handleSync({ options: ${JSON.stringify(OPTIONS)} });
// What the test reads when it fails: the last error the sync met in here.
self.addEventListener('unhandledrejection', (event) => { self.lastError = String(event.reason?.stack ?? event.reason); });
self.addEventListener('sync', () => { self.syncs = (self.syncs ?? 0) + 1; });
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));
`,
  );
  server = await startServer({ www });
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await server?.close();
  rmSync(www, { recursive: true, force: true });
});

test('the service worker drains what closed tabs left, on the sync event, each op once', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(server.url);
  await page.evaluate(async () => {
    await navigator.serviceWorker.register('/sw.js', { type: 'module' });
    await navigator.serviceWorker.ready;
  });
  // The server refuses every write: the tab's sends fail and the ops wait for a retry a minute away.
  await server.admin('faults', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ error503Percent: 100, methods: ['PUT', 'POST'] }),
  });
  const keys = await page.evaluate(async (options) => {
    const { Outbox } = await import('/vendor/outbox-sync/index.js');
    const { requestSync } = await import('/vendor/outbox-sync/worker.js');
    const outbox = await Outbox.open(options);
    const keys = [];
    for (let i = 0; i < 10; i++) {
      keys.push((await outbox.enqueue({ collection: 'sw', key: `k${i}`, op: 'put', value: { i } })).idempotencyKey);
    }
    await new Promise((resolve) => {
      const check = () => (outbox.status().state === 'retrying' ? resolve() : setTimeout(check, 20));
      check();
    });
    // Under another tag: Chromium fires a registered sync at once while it thinks it is online, and that
    // drain (while the server still refuses) would race the one this test fires itself.
    window.syncRequest = await requestSync('registration-check');
    await outbox.close();
    return keys;
  }, OPTIONS);
  assert.equal(await page.evaluate(() => window.syncRequest), 'registered', 'Chromium has Background Sync');
  const origin = new URL(server.url).origin;
  // Every tab of the app goes; a blank tab of another origin carries the DevTools session.
  const blank = await context.newPage();
  const cdp = await context.newCDPSession(blank);
  const registrations = new Map();
  cdp.on('ServiceWorker.workerRegistrationUpdated', ({ registrations: list }) => {
    for (const r of list) if (r.scopeURL.startsWith(origin) && !r.isDeleted) registrations.set(r.scopeURL, r.registrationId);
  });
  await cdp.send('ServiceWorker.enable');
  await page.close();
  await server.admin('faults', { method: 'DELETE' });
  const registrationId = await eventually(() => [...registrations.values()][0], { what: 'the registration is known' });
  await cdp.send('ServiceWorker.dispatchSyncEvent', { origin, registrationId, tag: 'outbox-sync', lastChance: false });
  const ledger = await eventually(
    async () => {
      const ledger = await server.admin('ledger');
      return keys.every((key) => ledger[`sw/${key}`] === 1) ? ledger : null;
    },
    { timeoutMs: 20_000, what: 'every op applied by the service worker' },
  ).catch(async (error) => {
    const worker = context.serviceWorkers()[0];
    const seen = worker ? await worker.evaluate(() => ({ syncs: self.syncs, lastError: self.lastError })) : 'no worker';
    throw new Error(`${error.message}; in the worker: ${JSON.stringify(seen)}`);
  });
  for (const key of keys) assert.equal(ledger[`sw/${key}`], 1, 'applied once');
  for (let i = 0; i < 10; i++) {
    const doc = await (await fetch(new URL(`api/docs/sw/k${i}`, server.url))).json();
    assert.deepEqual(doc, { i });
  }
  await context.close();
});
