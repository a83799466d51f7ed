// A tab alone: the leader posts nothing to other tabs until one speaks (structured-cloning every event and
// commit for nobody cost an eighth of a lone tab's drain), and a tab that opens later still sees everything.
// Real pages of one browser context against the reference server; a spy BroadcastChannel on the outbox's
// channel hears what the leader posts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useServerAndBrowser } from './support/env.mjs';
import { eventually, inTab, openOutbox, openTab } from './support/tabs.mjs';

const env = useServerAndBrowser();

let n = 0;
const fresh = () => `lone-${process.pid}-${++n}`;

test('a lone leader posts nothing until another tab speaks, then tells the others to re-read the store', async () => {
  const context = await env.browser.newContext();
  const page = await openTab(context, env.server);
  const heard = await inTab(page, async ({ Outbox }, name) => {
    const pause = () => new Promise((r) => setTimeout(r, 150));
    // Another BroadcastChannel object of the same name hears every message the outbox's own posts.
    const spy = new BroadcastChannel(`outbox-sync:${name}`);
    const messages = [];
    spy.onmessage = (e) => messages.push(e.data);
    const outbox = await Outbox.open({ name, endpoint: '/api', clientId: name });
    for (let i = 0; i < 10; i++) await outbox.enqueue({ collection: 'notes', key: `n${i}`, op: 'put', value: { i } });
    await outbox.drain();
    await pause();
    const alone = messages.map((m) => m.type);
    messages.length = 0;
    spy.postMessage({ type: 'hello' });
    await pause();
    const afterHello = messages.map((m) => (m.type === 'commit' ? `commit changed=${m.changed}` : m.type));
    messages.length = 0;
    await outbox.enqueue({ collection: 'notes', key: 'later', op: 'put', value: {} });
    await outbox.drain();
    await pause();
    const later = messages.map((m) => m.type);
    const role = outbox.status().role;
    await outbox.close();
    spy.close();
    return { alone, afterHello, later, role };
  }, fresh());
  assert.equal(heard.role, 'leader');
  assert.deepEqual(heard.alone, [], 'alone, the leader posted nothing: 10 enqueues and a drain');
  assert.ok(heard.afterHello.includes('commit changed=true'), `told to re-read: ${heard.afterHello}`);
  assert.ok(heard.afterHello.includes('status'), `the hello was answered with the status: ${heard.afterHello}`);
  assert.ok(heard.later.includes('commit') && heard.later.includes('event'), `connected, it posts: ${heard.later}`);
  await context.close();
});

test('a tab that opens after a lone leader worked shows all of it, and hears what follows', async () => {
  const context = await env.browser.newContext();
  const name = fresh();
  const a = await openTab(context, env.server);
  assert.equal(await openOutbox(a, { name, endpoint: '/api', clientId: name }), 'leader');
  await inTab(a, async () => {
    for (let i = 0; i < 5; i++) await window.outbox.enqueue({ collection: 'notes', key: `n${i}`, op: 'put', value: { i } });
    await window.outbox.drain();
    // Still pending when B opens: autoDrain would send it at once, so pause first.
    window.outbox.pause();
    await window.outbox.enqueue({ collection: 'notes', key: 'pending', op: 'put', value: { p: 1 } });
  });
  const b = await openTab(context, env.server);
  assert.equal(await openOutbox(b, { name, endpoint: '/api', clientId: name }), 'follower');
  // `pending`: how many ops of the document wait.
  const keys = await inTab(b, () => window.outbox.list('notes').map((item) => `${item.key}:${item.pending}`));
  assert.deepEqual(keys.sort(), ['n0:0', 'n1:0', 'n2:0', 'n3:0', 'n4:0', 'pending:1']);
  // What the leader does next reaches B: its resume sends the pending op, B sees it confirmed.
  await inTab(a, async () => {
    window.outbox.resume();
    await window.outbox.drain();
    await window.outbox.enqueue({ collection: 'notes', key: 'after', op: 'put', value: { a: 1 } });
  });
  await eventually(
    () => inTab(b, () => window.outbox.get('notes', 'after')?.a === 1 && window.outbox.list('notes').every((i) => !i.pending || i.key === 'after')),
    { what: "the leader's later work in B" },
  );
  await context.close();
});
