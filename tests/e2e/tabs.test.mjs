// Many tabs, one outbox: one leader sends, every tab enqueues durably and sees the same view and status,
// a follower's commands act on the shared queue, and the lock passes on when the leader goes. Real pages of
// one browser context (shared IndexedDB, Web Locks, BroadcastChannel) against the reference server.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useServerAndBrowser } from './support/env.mjs';
import { countSends, eventually, inTab, openOutbox, openTab } from './support/tabs.mjs';

const env = useServerAndBrowser();

let n = 0;
const fresh = () => `tabs-${process.pid}-${++n}`;

test('opening a name twice in one page fails with ALREADY_OPEN, and works again after close', async () => {
  const context = await env.browser.newContext();
  const page = await openTab(context, env.server);
  const result = await inTab(page, async ({ Outbox, SyncError }, name) => {
    const first = await Outbox.open({ name, endpoint: '/api' });
    let error;
    try {
      await Outbox.open({ name, endpoint: '/api' });
    } catch (e) {
      error = { code: e.code, isSyncError: e instanceof SyncError, message: e.message };
    }
    const role = first.status().role;
    await first.close();
    const again = await Outbox.open({ name, endpoint: '/api' });
    const roleAgain = again.status().role;
    await again.close();
    return { error, role, roleAgain };
  }, fresh());
  assert.equal(result.error.code, 'ALREADY_OPEN');
  assert.ok(result.error.isSyncError);
  assert.match(result.error.message, /already open/);
  assert.equal(result.role, 'leader', 'a lone tab leads at once');
  assert.equal(result.roleAgain, 'leader', 'the lock was released by close');
  await context.close();
});

test('a follower enqueues durably, the leader sends it once, and both tabs show the same', async () => {
  const context = await env.browser.newContext();
  const sends = countSends(context);
  const name = fresh();
  const [a, b] = [await openTab(context, env.server), await openTab(context, env.server)];
  assert.equal(await openOutbox(a, { name, endpoint: '/api', clientId: 'tabs' }), 'leader');
  assert.equal(await openOutbox(b, { name, endpoint: '/api', clientId: 'tabs' }), 'follower');
  // A watches; B enqueues: the latency from B's enqueue to A's watch callback.
  await inTab(a, () => {
    window.seen = [];
    window.outbox.watchDoc('notes', 'n1', (value) => window.seen.push({ value, at: performance.timeOrigin + performance.now() }));
  });
  const enqueued = await inTab(b, async () => {
    const t0 = performance.timeOrigin + performance.now();
    const result = await window.outbox.enqueue({ collection: 'notes', key: 'n1', op: 'put', value: { from: 'b' } });
    const outcome = await result.acked;
    return { t0, key: result.idempotencyKey, id: result.id, outcome };
  });
  assert.equal(enqueued.outcome.state, 'acked', "the follower's settled() hears the leader's ack");
  const seen = await eventually(() => inTab(a, () => window.seen.find((s) => s.value?.from === 'b')), { what: "B's op in A's watch" });
  console.log(`cross-tab visibility (B enqueue -> A watchDoc): ${(seen.at - enqueued.t0).toFixed(1)} ms`);
  const ledger = await env.server.admin('ledger');
  assert.equal(ledger[`tabs/${enqueued.key}`], 1, 'applied once');
  assert.equal(sends.get(enqueued.key), 1, 'sent once, by the leader alone');
  const views = await Promise.all(
    [a, b].map((page) =>
      eventually(
        () =>
          inTab(page, () => {
            const s = window.outbox.status();
            return s.pending === 0 && s.inFlight === 0 ? { doc: window.outbox.get('notes', 'n1'), role: s.role, state: s.state } : null;
          }),
        { what: 'both tabs settled' },
      ),
    ),
  );
  assert.deepEqual(views[0], { doc: { from: 'b' }, role: 'leader', state: 'idle' });
  assert.deepEqual(views[1], { doc: { from: 'b' }, role: 'follower', state: 'idle' });
  await context.close();
});

test("ops two paused tabs stored are all sent by the next tab (colliding seqs hide none)", async () => {
  const context = await env.browser.newContext();
  const name = fresh();
  const [a, b] = [await openTab(context, env.server), await openTab(context, env.server)];
  for (const [page, tab] of [[a, 'a'], [b, 'b']]) {
    await openOutbox(page, { name, endpoint: '/api', paused: true });
    await inTab(page, async (_, tab) => {
      await window.outbox.enqueue({ collection: 'seq', key: `${tab}1`, op: 'put', value: { tab, i: 1 } });
      await window.outbox.enqueue({ collection: 'seq', key: `${tab}2`, op: 'put', value: { tab, i: 2 } });
      await window.outbox.close();
    }, tab);
  }
  const c = await openTab(context, env.server);
  await openOutbox(c, { name, endpoint: '/api' });
  const status = await eventually(
    () => inTab(c, () => { const s = window.outbox.status(); return s.pending === 0 && s.inFlight === 0 ? s : null; }),
    { what: 'the third tab sent everything' },
  );
  assert.equal(status.state, 'idle');
  for (const key of ['a1', 'a2', 'b1', 'b2']) {
    const response = await fetch(new URL(`api/docs/seq/${key}`, env.server.url));
    assert.equal(response.status, 200, `${key} reached the server`);
  }
  await context.close();
});

test("a follower's drain, retry and discard act on the shared queue", async () => {
  const context = await env.browser.newContext();
  const name = fresh();
  const [a, b] = [await openTab(context, env.server), await openTab(context, env.server)];
  const options = { name, endpoint: '/api', collections: { cmd: { conflict: 'manual' } } };
  await openOutbox(a, options);
  await openOutbox(b, options);
  const result = await inTab(b, async () => {
    const outbox = window.outbox;
    await outbox.enqueue({ collection: 'cmd', key: 'k1', op: 'put', value: { n: 1 } });
    await outbox.enqueue({ collection: 'cmd', key: 'k2', op: 'put', value: { n: 2 } });
    const report = await outbox.drain();
    const status = outbox.status();
    return { report, status };
  });
  assert.equal(result.status.role, 'follower');
  assert.equal(result.report.acked >= 0, true, 'drain resolves with the leader report');
  await eventually(() => inTab(b, () => window.outbox.status().pending === 0), { what: 'drained' });
  for (const key of ['k1', 'k2']) {
    assert.equal((await fetch(new URL(`api/docs/cmd/${key}`, env.server.url))).status, 200);
  }
  // An op made on a version the server never had: 412, held as a conflict in both tabs; B retries it (the
  // leader sends it again: a conflict again) and then discards it.
  const held = await inTab(b, async () => {
    const outbox = window.outbox;
    const heldIds = async () => [...(await outbox.failed()), ...(await outbox.conflicts())].map((op) => op.id);
    const { id, acked } = await outbox.enqueue({ collection: 'cmd', key: 'stale', op: 'put', value: {}, baseVersion: '999' });
    const outcome = await acked;
    const heldHere = await heldIds();
    await outbox.retry(id);
    const again = await outbox.settled(id);
    await outbox.discard(id);
    return { id, outcome: outcome.state, heldHere, again: again.state, afterDiscard: await heldIds() };
  });
  assert.ok(['conflict', 'failed'].includes(held.outcome), held.outcome);
  assert.deepEqual(held.heldHere, [held.id], "the follower's lists show the leader's outcome");
  assert.equal(held.again, held.outcome, 'the retry was sent and answered the same');
  assert.deepEqual(held.afterDiscard, [], 'discarded through the leader');
  await eventually(() => inTab(a, async () => (await window.outbox.conflicts()).length + (await window.outbox.failed()).length === 0), {
    what: 'the leader discarded it',
  });
  await context.close();
});

test('when the leader closes, the follower takes over and sends what was in flight under the same keys', async () => {
  const context = await env.browser.newContext();
  const sends = countSends(context);
  const name = fresh();
  const [a, b] = [await openTab(context, env.server), await openTab(context, env.server)];
  await openOutbox(a, { name, endpoint: '/api', clientId: 'handover' });
  await openOutbox(b, { name, endpoint: '/api', clientId: 'handover' });
  // Every answer is lost: A's sends are applied but A never hears; then A goes away abruptly.
  await env.server.admin('faults', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ seed: 2, lostAckPercent: 100 }),
  });
  const keys = await inTab(b, async () => {
    const keys = [];
    for (let i = 0; i < 20; i++) {
      keys.push((await window.outbox.enqueue({ collection: 'handover', key: `h${i}`, op: 'put', value: { i } })).idempotencyKey);
    }
    return keys;
  });
  await eventually(() => keys.every((key) => sends.has(key)), { what: 'the leader sent every op' });
  await a.close({ runBeforeUnload: false });
  await env.server.admin('faults', { method: 'DELETE' });
  const status = await eventually(
    () => inTab(b, () => { const s = window.outbox.status(); return s.role === 'leader' && s.pending === 0 && s.inFlight === 0 ? s : null; }),
    { what: 'B leads and has sent everything' },
  ).catch(async (error) => {
    throw new Error(`${error.message}: B ${JSON.stringify(await inTab(b, () => window.outbox.status()))}`);
  });
  assert.equal(status.state, 'idle');
  const ledger = await env.server.admin('ledger');
  for (const key of keys) assert.equal(ledger[`handover/${key}`], 1, 'applied once under its one key');
  await context.close();
});

test('one op under client-wins is rebased and applied once, by the one sender', async () => {
  const context = await env.browser.newContext();
  const name = fresh();
  // The document exists on the server; neither tab has seen it, so the op is sent as a create (412).
  const put = await fetch(new URL('api/docs/cw/doc', env.server.url), {
    method: 'PUT',
    headers: { 'content-type': 'application/json', 'idempotency-key': `"${crypto.randomUUID()}"` },
    body: JSON.stringify({ by: 'someone else' }),
  });
  assert.ok(put.ok);
  const options = { name, endpoint: '/api', clientId: 'cw', collections: { cw: { conflict: 'client-wins', versioned: true } } };
  const [a, b] = [await openTab(context, env.server), await openTab(context, env.server)];
  await openOutbox(a, options);
  await openOutbox(b, options);
  const outcome = await inTab(b, async () => {
    const { acked } = await window.outbox.enqueue({ collection: 'cw', key: 'doc', op: 'put', value: { by: 'me' } });
    return acked;
  });
  assert.equal(outcome.state, 'acked');
  const ledger = await env.server.admin('ledger');
  const applied = Object.entries(ledger).filter(([key]) => key.startsWith('cw/'));
  assert.equal(applied.length, 1, `applied under one key only: ${JSON.stringify(applied)}`);
  assert.equal(applied[0][1], 1);
  const response = await fetch(new URL('api/docs/cw/doc', env.server.url));
  assert.deepEqual(await response.json(), { by: 'me' });
  assert.equal(response.headers.get('etag'), '"2"', 'the external write, then ours: nothing more');
  await context.close();
});

test('without Web Locks every tab sends on its own, and the status says so', async () => {
  const context = await env.browser.newContext();
  await context.addInitScript(() => {
    Object.defineProperty(Navigator.prototype, 'locks', { get: () => undefined, configurable: true });
  });
  const page = await openTab(context, env.server);
  const role = await openOutbox(page, { name: fresh(), endpoint: '/api' });
  assert.equal(role, 'uncoordinated');
  const done = await inTab(page, async () => {
    const { acked } = await window.outbox.enqueue({ collection: 'solo', key: 's1', op: 'put', value: { n: 1 } });
    return (await acked).state;
  });
  assert.equal(done, 'acked', 'it still sends');
  await context.close();
});

test("a follower's pause pauses the outbox for every tab, and its resume sends what waited", async () => {
  const context = await env.browser.newContext();
  const name = fresh();
  const [a, b] = [await openTab(context, env.server), await openTab(context, env.server)];
  await openOutbox(a, { name, endpoint: '/api' });
  await openOutbox(b, { name, endpoint: '/api' });
  await inTab(b, () => window.outbox.pause());
  const paused = await eventually(
    async () => {
      const states = await Promise.all([a, b].map((page) => inTab(page, () => window.outbox.status().state)));
      return states.every((s) => s === 'paused') ? states : null;
    },
    { what: 'both tabs paused' },
  );
  assert.deepEqual(paused, ['paused', 'paused']);
  await inTab(a, () => window.outbox.enqueue({ collection: 'pause', key: 'p1', op: 'put', value: { n: 1 } }));
  await new Promise((resolve) => setTimeout(resolve, 300));
  assert.equal((await fetch(new URL('api/docs/pause/p1', env.server.url))).status, 404, 'nothing sent while paused');
  await inTab(b, () => window.outbox.resume());
  await eventually(async () => (await fetch(new URL('api/docs/pause/p1', env.server.url))).status === 200, {
    what: 'sent after the resume',
  });
  await context.close();
});
