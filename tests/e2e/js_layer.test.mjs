// The package's JS convenience layer in headless Chromium against the reference server: `acked` on enqueue's
// result, `settled(id)` re-attached after a reopen, `watchFailed` / `watchConflicts`, and a clean close.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useServerAndBrowser } from './support/env.mjs';

let page;
const pageErrors = [];
const env = useServerAndBrowser(async ({ browser, server }) => {
  page = await browser.newPage();
  page.on('pageerror', (error) => pageErrors.push(error));
  await page.goto(server.url);
  // Every unhandled rejection of the page, whichever test caused it.
  await page.evaluate(() => {
    window.unhandled = [];
    window.addEventListener('unhandledrejection', (event) => {
      window.unhandled.push(String(event.reason?.code ?? event.reason));
    });
  });
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

/** A patch of a document the server does not have: a 404, which fails the op for good. */
const refusedOp = () => ({ collection: 'notes', key: `missing-${crypto.randomUUID()}`, op: 'patch', value: { n: 1 } });

test('enqueue(...).acked resolves with the ack once drained', async () => {
  const result = await inPage(async ({ Outbox }) => {
    const outbox = await Outbox.open({ name: `js-${Math.random()}`, endpoint: '/api' });
    const enqueued = await outbox.enqueue({ collection: 'notes', key: 'a1', op: 'put', value: { title: 'acked' } });
    const keys = Object.keys(enqueued).sort();
    await outbox.drain();
    const acked = await enqueued.acked;
    // The version as the rest of the API shows it (the view's), whatever its form.
    const viewVersion = outbox.list('notes').find((item) => item.key === 'a1').version;
    await outbox.close();
    return { keys, acked, viewVersion };
  });
  assert.deepEqual(result.keys, ['acked', 'id', 'idempotencyKey']);
  assert.equal(typeof result.viewVersion, 'string');
  assert.deepEqual(result.acked, { state: 'acked', version: result.viewVersion, doc: { title: 'acked' } });
});

test('acked settles for a burst of enqueues answered by a transport at once', async () => {
  const result = await inPage(async ({ Outbox }) => {
    const outbox = await Outbox.open({
      name: `js-${Math.random()}`,
      drainDelayMs: 0,
      transport: async (batch) => batch.ops.map((op) => ({ status: 200, headers: { ETag: '"7"' }, body: op.value })),
    });
    const results = await Promise.all([1, 2, 3].map((n) => outbox.enqueue({ collection: 'notes', key: `b${n}`, op: 'put', value: { n } })));
    const outcomes = await Promise.all(results.map((r) => r.acked));
    await outbox.close();
    return outcomes.map((o) => [o.state, o.doc]);
  });
  assert.deepEqual(result, [['acked', { n: 1 }], ['acked', { n: 2 }], ['acked', { n: 3 }]]);
});

test('settled(id) re-attaches after a reopen: failed at once, pending until acked, done when gone', async () => {
  const result = await inPage(async ({ Outbox }, refused) => {
    const name = `js-${Math.random()}`;
    let outbox = await Outbox.open({ name, endpoint: '/api' });
    const failed = await outbox.enqueue(refused);
    const acked = await outbox.enqueue({ collection: 'notes', key: 's1', op: 'put', value: { n: 1 } });
    await outbox.drain();
    // A pending op: stored while paused, never sent before the reopen. Its commit also comes after the removal
    // of the acked op, so that removal is durable too (else the reopened outbox would hold it, pending, again).
    outbox.pause();
    const pending = await outbox.enqueue({ collection: 'notes', key: 's2', op: 'put', value: { n: 2 } });
    await outbox.close();

    outbox = await Outbox.open({ name, endpoint: '/api', paused: true });
    const tooEarly = Symbol('not yet');
    const race = (promise) => Promise.race([promise, new Promise((resolve) => setTimeout(() => resolve(tooEarly), 200))]);
    const failedOutcome = await race(outbox.settled(failed.id));
    const doneOutcome = await race(outbox.settled(acked.id));
    const unknownId = await race(outbox.settled('no-such-op'));
    const waiting = outbox.settled(pending.id);
    const whilePaused = (await race(waiting)) === tooEarly;
    outbox.resume();
    const pendingOutcome = await race(waiting.then((o) => o, (e) => e.code));
    const viewVersion = outbox.list('notes').find((item) => item.key === 's2')?.version;
    await outbox.close();
    return { failedOutcome, doneOutcome, unknownId, whilePaused, pendingOutcome, viewVersion };
  }, refusedOp());
  assert.equal(result.failedOutcome.state, 'failed');
  assert.equal(result.failedOutcome.error.status, 404);
  assert.equal(result.failedOutcome.error.class, 'permanent');
  assert.deepEqual(result.doneOutcome, { state: 'done' }, 'acked before the reopen: no longer in the outbox');
  assert.deepEqual(result.unknownId, { state: 'done' });
  assert.equal(result.whilePaused, true, 'a pending op waits');
  assert.deepEqual(result.pendingOutcome, { state: 'acked', version: result.viewVersion, doc: { n: 2 } });
  assert.equal(typeof result.viewVersion, 'string');
});

test('watchFailed: [] at registration, the failed op, [] after discard; unsubscribe stops it', async () => {
  const result = await inPage(async ({ Outbox }, refused) => {
    const outbox = await Outbox.open({ name: `js-${Math.random()}`, endpoint: '/api' });
    const calls = [];
    let wake;
    const next = () => new Promise((resolve) => (wake = resolve));
    let called = next();
    const stop = outbox.watchFailed((ops) => {
      calls.push(ops.map((op) => ({ id: op.id, state: op.state, status: op.lastError?.status })));
      wake();
    });
    const synchronous = calls.length; // the first snapshot is a read: it comes after registration returns
    await called;
    called = next();
    const { id } = await outbox.enqueue(refused);
    await outbox.drain();
    await called;
    called = next();
    await outbox.discard(id);
    await called;
    // Nothing after unsubscribing, even when the failed list changes again.
    stop();
    const before = calls.length;
    const again = await outbox.enqueue({ ...refused, key: `${refused.key}-2` });
    await outbox.drain();
    const outcome = await again.acked;
    await new Promise((resolve) => setTimeout(resolve, 100));
    const failedNow = (await outbox.failed()).length;
    await outbox.close();
    return { synchronous, calls, id, before, after: calls.length, outcome: outcome.state, failedNow };
  }, refusedOp());
  assert.equal(result.synchronous, 0);
  assert.deepEqual(result.calls, [[], [{ id: result.id, state: 'failed', status: 404 }], []]);
  assert.equal(result.outcome, 'failed');
  assert.equal(result.failedNow, 1);
  assert.equal(result.after, result.before, 'no call after unsubscribe');
});

test('watchConflicts and settled(id) report a held conflict with the server document', async () => {
  const key = `taken-${crypto.randomUUID()}`;
  // Another client created the document: this client's create (If-None-Match: *) meets it.
  const seeded = await fetch(new URL(`api/docs/notes/${key}`, env.server.url), {
    method: 'PUT',
    headers: { 'content-type': 'application/json', 'idempotency-key': `"${crypto.randomUUID()}"` },
    body: JSON.stringify({ title: 'theirs' }),
  });
  assert.ok(seeded.ok, `seeding: ${seeded.status}`);
  const result = await inPage(async ({ Outbox }, key) => {
    const outbox = await Outbox.open({ name: `js-${Math.random()}`, endpoint: '/api', collections: { notes: { conflict: 'manual' } } });
    const seen = [];
    const stop = outbox.watchConflicts((ops) => seen.push(ops.map((op) => op.id)));
    const { id, acked } = await outbox.enqueue({ collection: 'notes', key, op: 'put', value: { title: 'mine' } });
    await outbox.drain();
    const outcome = await acked;
    const reattached = await outbox.settled(id);
    await outbox.resolve(id, { use: 'server' });
    await outbox.drain();
    await new Promise((resolve) => setTimeout(resolve, 100));
    stop();
    await outbox.close();
    return { id, seen, outcome, reattached };
  }, key);
  assert.equal(result.outcome.state, 'conflict');
  assert.deepEqual(result.outcome.serverDoc, { title: 'theirs' });
  assert.equal(typeof result.outcome.serverVersion, 'string');
  assert.deepEqual(result.reattached, result.outcome, 'the same outcome, read from conflicts()');
  assert.deepEqual(result.seen, [[], [result.id], []]);
});

test('close() rejects waiting promises with CLOSED, silences watchers, and leaves no unhandled rejection', async () => {
  const result = await inPage(async ({ Outbox, SyncError }) => {
    const outbox = await Outbox.open({ name: `js-${Math.random()}`, endpoint: '/api', paused: true });
    let watcherCalls = 0;
    outbox.watchFailed(() => watcherCalls++);
    outbox.watchConflicts(() => watcherCalls++);
    // An app that ignores `acked` entirely, and one that keeps it for later.
    await outbox.enqueue({ collection: 'notes', key: 'c1', op: 'put', value: 1 });
    const { acked } = await outbox.enqueue({ collection: 'notes', key: 'c2', op: 'put', value: 2 });
    const settled = outbox.settled((await outbox.pending())[0].id).then(
      () => 'resolved',
      (e) => ({ isSyncError: e instanceof SyncError, code: e.code }),
    );
    await new Promise((resolve) => setTimeout(resolve, 50));
    const callsBeforeClose = watcherCalls;
    const closing = outbox.close();
    await closing;
    const later = await acked.then(
      () => 'resolved',
      (e) => e.code,
    );
    const afterClose = await outbox.settled('x').then(
      () => 'resolved',
      (e) => e.code,
    );
    let watchAfterClose;
    try {
      outbox.watchFailed(() => {});
    } catch (e) {
      watchAfterClose = e.code;
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
    return { settled: await settled, later, afterClose, watchAfterClose, callsBeforeClose, callsAfterClose: watcherCalls, unhandled: window.unhandled };
  });
  assert.deepEqual(result.settled, { isSyncError: true, code: 'CLOSED' });
  assert.equal(result.later, 'CLOSED', 'an awaited acked still sees the rejection');
  assert.equal(result.afterClose, 'CLOSED');
  assert.equal(result.watchAfterClose, 'CLOSED');
  assert.equal(result.callsBeforeClose, 2, 'each watcher delivered its first snapshot');
  assert.equal(result.callsAfterClose, result.callsBeforeClose);
  assert.deepEqual(result.unhandled, [], 'no unhandled rejection in the page, from this test or an earlier one');
  assert.deepEqual(pageErrors, []);
});
