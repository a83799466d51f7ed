// The npm package's API in headless Chromium against the reference server: imported by name from the
// demo origin, exactly as an app would load it.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useServerAndBrowser } from './support/env.mjs';

let page;
const env = useServerAndBrowser(async ({ browser, server }) => {
  page = await browser.newPage();
  await page.goto(server.url);
});

/** Runs `fn(module, arg)` in the page, with the package imported as the demo imports it. */
function inPage(fn, arg) {
  return page.evaluate(
    async ({ source, arg }) => {
      const module = await import('outbox-sync');
      return new Function(`return (${source})`)()(module, arg);
    },
    { source: fn.toString(), arg },
  );
}

test('errors are SyncError instances from the package, with a code', async () => {
  const result = await inPage(async ({ Outbox, SyncError }) => {
    try {
      await Outbox.open({ name: '' });
      return 'resolved';
    } catch (e) {
      return { isSyncError: e instanceof SyncError, isError: e instanceof Error, code: e.code, message: e.message };
    }
  });
  assert.deepEqual(result, {
    isSyncError: true,
    isError: true,
    code: 'INVALID_CONFIG',
    message: 'options.name must not be empty',
  });
});

test('ops reach the server once, with their keys, and the ETag comes back', async () => {
  const result = await inPage(async ({ Outbox }) => {
    const outbox = await Outbox.open({ name: `e2e-${Math.random()}`, endpoint: '/api', clientId: 'e2e-client' });
    const acked = [];
    outbox.on('acked', (e) => acked.push(e));
    const { idempotencyKey } = await outbox.enqueue({ collection: 'notes', key: 'n1', op: 'put', value: { title: 'hello' } });
    await outbox.enqueue({ collection: 'notes', key: 'n1', op: 'patch', value: { done: true } });
    await outbox.drain();
    const report = await outbox.drain();
    const doc = await (await fetch('/api/docs/notes/n1')).json();
    const status = outbox.status();
    await outbox.close();
    return { idempotencyKey, acked, doc, status, report };
  });
  assert.deepEqual(result.doc, { title: 'hello', done: true }, 'the patch applied on top of the put, in order');
  assert.equal(result.acked.length, 2);
  assert.equal(result.acked[0].version, '1', 'the version of the first write (its ETag without quotes)');
  assert.equal(result.acked[1].version, '2');
  assert.equal(result.status.state, 'idle');
  assert.equal(result.status.pending, 0);
  const ledger = await env.server.admin('ledger');
  assert.equal(ledger[`e2e-client/${result.idempotencyKey}`], 1, 'applied exactly once, under the op key');
});

test('a 503 with Retry-After is retried no sooner than the server asked', async () => {
  await env.server.admin('faults', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ seed: 1, sequence: ['error503'], retryAfter503Secs: 1, methods: ['PUT'] }),
  });
  const result = await inPage(async ({ Outbox }) => {
    const outbox = await Outbox.open({ name: `e2e-${Math.random()}`, endpoint: '/api' });
    const events = [];
    outbox.on('*', (e) => events.push({ ...e, seenAt: Date.now() }));
    await outbox.enqueue({ collection: 'notes', key: 'r1', op: 'put', value: { n: 1 } });
    await new Promise((resolve) => outbox.on('acked', resolve));
    await outbox.close();
    return events.filter((e) => e.type !== 'status_changed');
  });
  await env.server.admin('faults', { method: 'DELETE' });
  const sent = result.filter((e) => e.type === 'sent');
  const retry = result.find((e) => e.type === 'retry_scheduled');
  assert.equal(sent.length, 2, 'one 503, then one successful send');
  assert.equal(retry.error.status, 503);
  assert.ok(sent[1].seenAt - sent[0].seenAt >= 1000, `retried after ${sent[1].seenAt - sent[0].seenAt} ms`);
  assert.ok(result.some((e) => e.type === 'acked'));
});

test('a panic rejects pending promises with INTERNAL, and later calls fail fast', async () => {
  // Its own page: after a panic the module in that page is finished, by design.
  const panicPage = await env.browser.newPage();
  await panicPage.goto(env.server.url);
  const result = await panicPage.evaluate(async () => {
    const { Outbox, SyncError } = await import('outbox-sync');
    // A transport that never answers keeps a drain pending across the panic.
    const outbox = await Outbox.open({ name: `e2e-${Math.random()}`, transport: () => new Promise(() => {}) });
    await outbox.enqueue({ collection: 'notes', key: 'p', op: 'put', value: 1 });
    const draining = outbox.drain().then(
      () => 'resolved',
      (e) => ({ isSyncError: e instanceof SyncError, code: e.code }),
    );
    let thrown;
    try {
      outbox.__panicForTest();
    } catch (e) {
      thrown = { isSyncError: e instanceof SyncError, code: e.code };
    }
    const pending = await draining;
    const later = await outbox.enqueue({ collection: 'notes', key: 'q', op: 'put', value: 2 }).then(
      () => 'resolved',
      (e) => ({ isSyncError: e instanceof SyncError, code: e.code }),
    );
    let status;
    try {
      outbox.status();
    } catch (e) {
      status = e.code;
    }
    return { thrown, pending, later, status };
  });
  await panicPage.close();
  assert.deepEqual(result, {
    thrown: { isSyncError: true, code: 'INTERNAL' },
    pending: { isSyncError: true, code: 'INTERNAL' },
    later: { isSyncError: true, code: 'INTERNAL' },
    status: 'INTERNAL',
  });
});

test('a full disk rejects with QUOTA_EXCEEDED and leaves nothing half-written', async () => {
  const quotaPage = await env.browser.newPage();
  await quotaPage.goto(env.server.url);
  const cdp = await quotaPage.context().newCDPSession(quotaPage);
  await cdp.send('Storage.overrideQuotaForOrigin', { origin: new URL(env.server.url).origin, quotaSize: 2_000_000 });
  try {
    const result = await quotaPage.evaluate(async () => {
      const { Outbox } = await import('outbox-sync');
      const name = `e2e-quota-${Math.random()}`;
      const options = { name, transport: async () => [], autoDrain: false, maxOpBytes: 1_000_000 };
      let outbox = await Outbox.open(options);
      // Random printable text: IndexedDB compresses large values, so it must not compress.
      const chars = [];
      for (let i = 0; i < 400_000; i++) chars.push(String.fromCharCode(32 + Math.floor(Math.random() * 94)));
      const big = chars.join('');
      let stored = 0;
      let error;
      for (let i = 0; i < 20 && !error; i++) {
        try {
          await outbox.enqueue({ collection: 'files', key: `f${i}`, op: 'put', value: big });
          stored++;
        } catch (e) {
          error = { code: e.code, name: e.name, cause: e.cause?.name };
          // The optimistic change was rolled back with it.
          error.visibleAfterFailure = outbox.get('files', `f${i}`) !== undefined;
        }
      }
      const inMemory = (await outbox.pending()).length;
      await outbox.close();
      outbox = await Outbox.open(options);
      const afterReload = (await outbox.pending()).length;
      await outbox.close();
      return { stored, error, inMemory, afterReload };
    });
    assert.deepEqual(result.error, {
      code: 'QUOTA_EXCEEDED',
      name: 'SyncError',
      cause: 'QuotaExceededError',
      visibleAfterFailure: false,
    });
    assert.ok(result.stored >= 1, 'some ops fit before the quota ran out');
    assert.equal(result.inMemory, result.stored, 'the refused op was rolled back from the queue');
    assert.equal(result.afterReload, result.stored, 'storage holds exactly the ops that resolved');
  } finally {
    await quotaPage.close();
  }
});

test('batch mode sends one push for a burst, and every op lands once', async () => {
  const result = await inPage(async ({ Outbox }) => {
    const outbox = await Outbox.open({ name: `e2e-${Math.random()}`, endpoint: '/api', batch: true, clientId: 'e2e-batch' });
    const sent = [];
    outbox.on('sent', (e) => sent.push(e.ids.length));
    await outbox.enqueue({ collection: 'cards', key: 'b0', op: 'put', value: { n: 0 } });
    await Promise.all([1, 2, 3, 4].map((n) => outbox.enqueue({ collection: 'cards', key: `b${n}`, op: 'put', value: { n } })));
    await outbox.enqueue({ collection: 'cards', key: 'b0', op: 'delete' });
    await new Promise((resolve) => setTimeout(resolve, 50));
    await outbox.drain();
    const docs = await Promise.all([0, 1, 2, 3, 4].map((n) => fetch(`/api/docs/cards/b${n}`).then((r) => r.status)));
    const status = outbox.status();
    await outbox.close();
    return { sent, docs, status };
  });
  assert.deepEqual(result.docs, [410, 200, 200, 200, 200], 'b0 was created then deleted; the rest exist');
  assert.ok(result.sent.some((n) => n > 1), `ops travelled together: batches of ${result.sent}`);
  assert.equal(result.status.pending, 0);
  const ledger = await env.server.admin('ledger');
  const applied = Object.entries(ledger).filter(([k]) => k.startsWith('e2e-batch/'));
  assert.equal(applied.length, 6);
  assert.ok(applied.every(([, n]) => n === 1), 'each op applied exactly once');
});

test('route points ops at another URL shape', async () => {
  const result = await inPage(async ({ Outbox }) => {
    const outbox = await Outbox.open({
      name: `e2e-${Math.random()}`,
      endpoint: '/api',
      route: (op) => ({ method: 'PUT', url: `/api/docs/routed-${op.collection}/${op.key}` }),
    });
    await outbox.enqueue({ collection: 'notes', key: 'r', op: 'custom', name: 'rename', value: { title: 'routed' } });
    await outbox.drain();
    const doc = await (await fetch('/api/docs/routed-notes/r')).json();
    await outbox.close();
    return doc;
  });
  assert.deepEqual(result, { title: 'routed' });
});

test('a pull shares the rate-limit block with pushes, and waits while paused', async () => {
  await env.server.admin('faults', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ seed: 3, error429Percent: 100, retryAfter429Secs: 30, methods: ['GET'] }),
  });
  const result = await inPage(async ({ Outbox }) => {
    const outbox = await Outbox.open({ name: `e2e-${Math.random()}`, endpoint: '/api' });
    const failed = await outbox.pull().then(
      () => 'resolved',
      (e) => e.code,
    );
    const status = outbox.status();
    // Blocked: a push waits too, and so does the next pull.
    await outbox.enqueue({ collection: 'notes', key: 'blocked', op: 'put', value: 1 });
    const again = await outbox.pull();
    const pendingWhileBlocked = outbox.status().pending;
    await outbox.close();
    const paused = await Outbox.open({ name: `e2e-${Math.random()}`, endpoint: '/api' });
    paused.pause();
    const skipped = await paused.pull();
    await paused.close();
    return { failed, state: status.state, blockedUntil: status.blockedUntil, again, pendingWhileBlocked, skipped };
  });
  await env.server.admin('faults', { method: 'DELETE' });
  assert.equal(result.failed, 'PULL_FAILED');
  assert.equal(result.state, 'blocked');
  assert.ok(result.blockedUntil > Date.now() + 20_000, 'blocked for about Retry-After');
  assert.equal(result.again.skipped, 'blocked');
  assert.equal(result.pendingWhileBlocked, 1, 'the push waits out the block');
  assert.equal(result.skipped.skipped, 'paused');
});
