// Exactly-once at the edge of the server's memory, end to end: the reference server keeps idempotency
// keys for 3 s (and says so in Idempotency-Retention). An op whose answer is lost, and which is not
// retried before the key expires, must never be applied a second time: it becomes `unknown`, with the
// server's current document, and the server's ledger shows one application.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchChromium } from './support/browser.mjs';
import { startServer } from './support/server.mjs';

let server;
let browser;
let page;

before(async () => {
  server = await startServer({ args: ['--idempotency-ttl', '3s'] });
  browser = await launchChromium();
  page = await browser.newPage();
  await page.goto(server.url);
});

after(async () => {
  await browser?.close();
  await server?.close();
});

/** In the page: learn the server's retention, lose the answer of one op, wait past the retention. */
async function loseAnAnswerAndWait(collection, versioned) {
  return page.evaluate(
    async ({ collection, versioned }) => {
      const { Outbox } = await import('outbox-sync');
      const tag = Math.random().toString(36).slice(2);
      const outbox = await Outbox.open({
        name: `eo-${tag}`,
        endpoint: '/api',
        clientId: `eo-${tag}`,
        autoDrain: false,
        retry: { baseMs: 60000, capMs: 60000 },
        collections: { [collection]: { versioned, conflict: 'server-wins' } },
      });
      const events = [];
      outbox.on('*', (e) => events.push(e.type));
      // A first op teaches the client the server's 3 s retention.
      await outbox.enqueue({ collection, key: 'doc', op: 'put', value: { step: 1 } });
      await outbox.drain();
      // The next op is applied, and its answer lost on the way back. (Twice: Chromium resends a request
      // whose reused connection closed without an answer, under the same key, which the server replays.)
      await fetch('/_admin/faults', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ sequence: Array(8).fill('lostAck') }),
      });
      const { id, idempotencyKey } = await outbox.enqueue({ collection, key: 'doc', op: 'patch', value: { step: 2 } });
      await outbox.drain();
      outbox.pause();
      await fetch('/_admin/faults', { method: 'DELETE' });
      await new Promise((r) => setTimeout(r, 3500));
      // Back, the app asks for the retry at once (skipping the backoff), then resumes. Asked after the
      // resume, the retry raced the backoff: full jitter up to 60 s ends within the 3.5 s wait about one
      // time in 17, the resume then sent the op at once, and the retry failed with OP_IN_FLIGHT.
      await outbox.retry(id);
      outbox.resume();
      await outbox.drain();
      await new Promise((r) => setTimeout(r, 300));
      const unknown = await outbox.unknown();
      const status = outbox.status();
      const ledger = await (await fetch('/_admin/ledger')).json();
      const applied = ledger[`eo-${tag}/${idempotencyKey}`];
      // The app decides: the server's document stands.
      if (unknown.length === 1) await outbox.resolve(unknown[0].id, { use: 'server' });
      const after = outbox.status();
      const server = await (await fetch(`/api/docs/${collection}/doc`)).json();
      await outbox.close();
      return { unknown, status, applied, after, server, events };
    },
    { collection, versioned },
  );
}

test('an unconditional op past the server retention is shown as unknown and never resent', async () => {
  const r = await loseAnAnswerAndWait('plain', false);
  assert.equal(r.applied, 1, 'applied once, never a second time');
  assert.equal(r.unknown.length, 1, `one unknown op: ${JSON.stringify({ ...r, unknown: undefined })}`);
  assert.equal(r.unknown[0].state, 'unknown');
  assert.equal(r.unknown[0].maybeApplied, true);
  assert.deepEqual(r.unknown[0].serverDoc, { step: 2 }, "the server's current document, fetched for the app");
  assert.equal(r.status.state, 'error');
  assert.equal(r.status.unknown, 1);
  assert.ok(r.events.includes('unknown'));
  assert.equal(r.after.unknown, 0);
  assert.equal(r.after.state, 'idle');
  assert.deepEqual(r.server, { step: 2 });
});

test('a conditional op past the retention is resent, and the 412 against its own write means unknown', async () => {
  const r = await loseAnAnswerAndWait('versioned', true);
  assert.equal(r.applied, 1, 'If-Match kept the resend from applying it again');
  assert.equal(r.unknown.length, 1, 'neither dropped by server-wins nor reported as a conflict');
  assert.deepEqual(r.unknown[0].serverDoc, { step: 2 });
  assert.ok(!r.events.includes('conflict'));
  assert.deepEqual(r.server, { step: 2 });
});
