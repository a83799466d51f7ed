// Conflict strategies end to end: two outboxes (two databases, as two devices would have) edit the same
// document on the reference server. Device A edits from a stale version and meets B's newer one.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useServerAndBrowser } from './support/env.mjs';

let page;
const env = useServerAndBrowser(async ({ browser, server }) => {
  page = await browser.newPage();
  await page.goto(server.url);
});

/**
 * Runs the two-device scenario in the page with `conflict` as A's strategy for collection `coll`, then
 * `finish(a, events)` (serialised source) to settle it. Returns what both devices and the server see.
 */
async function scenario(coll, conflict, finish) {
  return page.evaluate(
    async ({ coll, conflict, finish }) => {
      const { Outbox } = await import('outbox-sync');
      const strategy = conflict.startsWith('(') ? new Function(`return ${conflict}`)() : conflict;
      const tag = Math.random();
      const a = await Outbox.open({ name: `a-${tag}`, endpoint: '/api', clientId: `a-${tag}`, collections: { [coll]: { conflict: strategy } } });
      const b = await Outbox.open({ name: `b-${tag}`, endpoint: '/api', clientId: `b-${tag}` });
      const events = [];
      a.on('conflict', (e) => events.push(e));
      // A creates the doc; both devices learn version 1.
      await a.enqueue({ collection: coll, key: 'doc', op: 'put', value: { title: 'draft', body: 'v1' } });
      await a.drain();
      await b.pull();
      // B edits first (version 2 on the server)...
      await b.enqueue({ collection: coll, key: 'doc', op: 'patch', value: { title: 'from B' } });
      await b.drain();
      // ...then A, still at version 1.
      await a.enqueue({ collection: coll, key: 'doc', op: 'patch', value: { body: 'from A' } });
      await a.drain();
      await new Function(`return ${finish}`)()(a, events);
      await a.drain();
      const server = await (await fetch(`/api/docs/${coll}/doc`)).json();
      const result = { events, server, a: a.get(coll, 'doc'), conflicts: await a.conflicts(), status: a.status() };
      await a.close();
      await b.close();
      return result;
    },
    { coll, conflict: typeof conflict === 'function' ? conflict.toString() : conflict, finish: finish.toString() },
  );
}

test('server-wins drops the local edit and shows the server document', async () => {
  const r = await scenario('sw', 'server-wins', async () => {});
  assert.equal(r.events.length, 1);
  assert.equal(r.events[0].resolution, 'server-wins');
  assert.equal(r.events[0].serverVersion, '2');
  assert.deepEqual(r.server, { title: 'from B', body: 'v1' }, 'the server kept B');
  assert.deepEqual(r.a, r.server, 'A now shows the server document');
  assert.deepEqual(r.conflicts, []);
  assert.equal(r.status.pending, 0);
});

test('client-wins rebases the local edit on the server version and resends it', async () => {
  const r = await scenario('cw', 'client-wins', async () => {});
  assert.equal(r.events[0].resolution, 'client-wins');
  assert.deepEqual(r.server, { title: 'from B', body: 'from A' }, "A's patch applied on top of B's version");
  assert.deepEqual(r.a, r.server);
  assert.equal(r.status.pending, 0);
});

test('manual holds both versions until resolve()', async () => {
  const r = await scenario('mn', 'manual', async (a) => {
    const [held] = await a.conflicts();
    if (!held) throw new Error('no held conflict');
    await a.resolve(held.id, { use: 'merged', value: { title: `${held.serverDoc.title} + A`, body: held.value.body } });
  });
  assert.equal(r.events[0].resolution, 'held');
  assert.deepEqual(r.server, { title: 'from B + A', body: 'from A' }, 'the merge reached the server');
  assert.deepEqual(r.conflicts, []);
  assert.deepEqual(r.a, r.server);
});

test('a resolver function decides, and its answer is applied', async () => {
  const r = await scenario(
    'fn',
    (local, server) => ({ use: 'merged', value: { ...server, ...local, resolvedBy: 'fn' } }),
    async () => {
      // The resolver runs on its own; give its resend a moment.
      await new Promise((resolve) => setTimeout(resolve, 100));
    },
  );
  // The conflict is told once the resolver answered, with what its answer did.
  assert.equal(r.events.length, 1);
  assert.equal(r.events[0].resolution, 'merged');
  assert.deepEqual(r.server, { title: 'from B', body: 'from A', resolvedBy: 'fn' });
  assert.deepEqual(r.conflicts, []);
});
