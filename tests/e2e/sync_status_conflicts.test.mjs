// <sync-status> for end users: a real conflict against the reference server settled from the element's
// buttons (Keep mine, Keep the server's, Use merged), translated labels and the app's op titles, the inline
// panel's empty text, and the drain's progress ("Syncing 40 of 200").
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { screenshot, waitUntil } from './support/demo.mjs';
import { useServerAndBrowser } from './support/env.mjs';

let page;
const errors = [];
const env = useServerAndBrowser(async ({ browser, server }) => {
  page = await browser.newPage({ viewport: { width: 720, height: 560 } });
  page.on('pageerror', (e) => errors.push(e));
  await page.goto(server.url);
  // Two devices (two databases): A holds its conflicts for the user (manual), B edits the same documents first.
  await page.evaluate(async () => {
    const { Outbox } = await import('outbox-sync');
    await import('outbox-sync/sync-status');
    const tag = Math.random().toString(36).slice(2);
    const collections = { notes: { conflict: 'manual' } };
    const a = await Outbox.open({ name: `a-${tag}`, endpoint: '/api', clientId: `a-${tag}`, collections });
    const b = await Outbox.open({ name: `b-${tag}`, endpoint: '/api', clientId: `b-${tag}` });
    const el = document.createElement('sync-status');
    el.id = 'probe';
    const actions = [];
    el.addEventListener('sync-status-action', (e) => actions.push(e.detail));
    document.body.prepend(el);
    el.outbox = a;
    /** A on version 1, B saves version 2, then A patches from version 1: a held 412 on A. */
    async function makeConflict(key) {
      await a.enqueue({ collection: 'notes', key, op: 'put', value: { title: 'draft', body: 'v1' } });
      await a.drain();
      await b.pull();
      await b.enqueue({ collection: 'notes', key, op: 'patch', value: { title: 'from B' } });
      await b.drain();
      await a.enqueue({ collection: 'notes', key, op: 'patch', value: { title: 'from A' } });
      await a.drain();
      const held = (await a.conflicts()).find((op) => op.key === key);
      if (!held) throw new Error(`no held conflict for ${key}`);
      return held.id;
    }
    const serverDoc = async (key) => (await fetch(`/api/docs/notes/${key}`)).json();
    globalThis.probe = { a, b, el, actions, makeConflict, serverDoc };
  });
});

const item = () => page.locator('#probe [part~="panel"] [part~="item"]');
const label = () => page.locator('#probe [part~="label"]').textContent();
const buttons = () => item().first().locator('button').allTextContents();

async function openReview() {
  await page.locator('#probe [part~="details-button"]').click();
  await waitUntil(() => item().count(), (n) => n === 1, { what: 'one conflict listed' });
}

test('Keep mine resends the local edit on top of the server version', async () => {
  await page.evaluate(() => globalThis.probe.makeConflict('mine'));
  await waitUntil(label, (t) => t === '1 conflict', { what: '"1 conflict"' });
  await openReview();
  // Retry would resend the stale If-Match and meet the same 412: a conflict offers a choice instead.
  assert.deepEqual(await buttons(), ['Keep mine', "Keep the server's", 'Discard']);
  assert.match(await item().first().textContent(), /patch notes\/mine \(conflict\)/);
  await screenshot(page, 'sync-status-conflict.png');
  await item().first().getByRole('button', { name: /^Keep mine/ }).click();
  await waitUntil(label, (t) => t === 'Synced', { what: '"Synced" after Keep mine' });
  const r = await page.evaluate(async () => {
    const { a, serverDoc, actions } = globalThis.probe;
    await a.drain();
    return { server: await serverDoc('mine'), local: a.get('notes', 'mine'), conflicts: (await a.conflicts()).length, actions };
  });
  assert.deepEqual(r.server, { title: 'from A', body: 'v1' }, 'the server ends with the local value');
  assert.deepEqual(r.local, r.server);
  assert.equal(r.conflicts, 0);
  assert.equal(r.actions.at(-1).action, 'keep-mine');
  await waitUntil(() => item().count(), (n) => n === 0, { what: 'the list to empty' });
  assert.equal(await page.locator('#probe [part~="empty"]').textContent(), 'Nothing needs attention.');
});

test("Keep the server's drops the local edit and shows the server document", async () => {
  await page.evaluate(() => globalThis.probe.makeConflict('theirs'));
  await waitUntil(label, (t) => t === '1 conflict', { what: '"1 conflict"' });
  if (!(await page.locator('#probe [part~="panel"]').isVisible())) await openReview();
  await waitUntil(() => item().count(), (n) => n === 1, { what: 'one conflict listed' });
  await item().first().getByRole('button', { name: /^Keep the server's/ }).click();
  await waitUntil(label, (t) => t === 'Synced', { what: `"Synced" after Keep the server's` });
  const r = await page.evaluate(async () => {
    const { a, serverDoc, actions } = globalThis.probe;
    return { server: await serverDoc('theirs'), local: a.get('notes', 'theirs'), action: actions.at(-1).action };
  });
  assert.deepEqual(r.server, { title: 'from B', body: 'v1' }, 'the server kept B');
  assert.deepEqual(r.local, r.server, "the local view shows the server's");
  assert.equal(r.action, 'keep-server');
});

test('a merge property offers "Use merged"; labels translate and describe names the op', async () => {
  await page.evaluate(() => {
    const { el } = globalThis.probe;
    el.merge = (op) => (op.serverDoc ? { ...op.serverDoc, title: `${op.serverDoc.title} + ${op.value.title}` } : undefined);
    el.describe = (op) => `Notiz „${op.key}“`;
    el.labels = { synced: 'Synchronisiert', conflictsOne: '{count} Konflikt', keepMine: 'Meine behalten', useMerged: 'Zusammenführen', reviewOne: 'Prüfen' };
  });
  assert.equal(await label(), 'Synchronisiert', 'a label set later applies at once');
  await page.evaluate(() => globalThis.probe.makeConflict('merged'));
  await waitUntil(label, (t) => t === '1 Konflikt', { what: '"1 Konflikt"' });
  assert.equal(await page.locator('#probe [part~="details-button"]').textContent(), 'Prüfen');
  if (!(await page.locator('#probe [part~="panel"]').isVisible())) await openReview();
  await waitUntil(() => item().count(), (n) => n === 1, { what: 'one conflict listed' });
  // Partial labels merge: the keys not given keep their English defaults.
  assert.deepEqual(await buttons(), ['Meine behalten', "Keep the server's", 'Zusammenführen', 'Discard']);
  assert.match(await item().first().locator('[part~="item-title"]').textContent(), /^Notiz „merged“ \(conflict\)$/);
  assert.equal(await item().first().getByRole('button', { name: 'Zusammenführen Notiz „merged“ (conflict)' }).count(), 0);
  assert.equal(await item().first().getByRole('button', { name: 'Zusammenführen Notiz „merged“' }).count(), 1, 'accessible name');
  const defaults = await page.evaluate(() => globalThis.probe.el.labels);
  assert.equal(defaults.keepServer, "Keep the server's");
  assert.equal(defaults.synced, 'Synchronisiert');
  await screenshot(page, 'sync-status-conflict-translated.png');
  await item().first().getByRole('button', { name: /^Zusammenführen/ }).click();
  await waitUntil(label, (t) => t === 'Synchronisiert', { what: 'synced after the merge' });
  const r = await page.evaluate(async () => {
    const { a, serverDoc, actions } = globalThis.probe;
    await a.drain();
    return { server: await serverDoc('merged'), local: a.get('notes', 'merged'), action: actions.at(-1).action };
  });
  assert.deepEqual(r.server, { title: 'from B + from A', body: 'v1' }, 'the merge reached the server');
  assert.deepEqual(r.local, r.server);
  assert.equal(r.action, 'use-merged');
  await page.evaluate(() => {
    const { el } = globalThis.probe;
    el.labels = null;
    el.describe = null;
    el.merge = null;
  });
});

test('Discard on a conflict drops the local edit', async () => {
  await page.evaluate(() => globalThis.probe.makeConflict('dropped'));
  await waitUntil(label, (t) => t === '1 conflict', { what: '"1 conflict"' });
  if (!(await page.locator('#probe [part~="panel"]').isVisible())) await openReview();
  await waitUntil(() => item().count(), (n) => n === 1, { what: 'one conflict listed' });
  await item().first().getByRole('button', { name: /^Discard/ }).click();
  await waitUntil(label, (t) => t === 'Synced', { what: '"Synced" after Discard' });
  const server = await page.evaluate(() => globalThis.probe.serverDoc('dropped'));
  assert.deepEqual(server, { title: 'from B', body: 'v1' });
});

test('the inline panel shows its empty text, translated too', async () => {
  const texts = await page.evaluate(async () => {
    const el = document.createElement('sync-status');
    el.inline = true;
    el.id = 'inline';
    document.body.append(el);
    el.outbox = globalThis.probe.a;
    const empty = () => el.shadowRoot.querySelector('[part~="empty"]');
    for (let i = 0; i < 100 && empty().hidden; i++) await new Promise((r) => setTimeout(r, 20));
    const visible = (node) => node.checkVisibility();
    const english = { text: empty().textContent, visible: visible(empty()), panel: visible(el.shadowRoot.querySelector('[part~="panel"]')) };
    el.labels = { empty: 'Alles gespeichert.' };
    const german = empty().textContent;
    el.remove();
    return { english, german };
  });
  assert.deepEqual(texts.english, { text: 'Nothing needs attention.', visible: true, panel: true });
  assert.equal(texts.german, 'Alles gespeichert.');
});

test('a bigger drain shows its progress ("Syncing 40 of 200")', async (t) => {
  const hasProgress = await page.evaluate(() => globalThis.probe.a.status().progress !== undefined);
  if (!hasProgress) {
    t.skip('status().progress is not in this runtime yet (the element falls back to "Syncing N")');
    return;
  }
  // Slow each push down, so the drain of 200 ops in batches of 5 lasts long enough to read its progress.
  await env.server.admin('faults', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ latencyMs: 40, methods: ['POST'] }),
  });
  try {
    const seen = await page.evaluate(async () => {
      const { Outbox } = await import('outbox-sync');
      const tag = Math.random().toString(36).slice(2);
      const outbox = await Outbox.open({ name: `p-${tag}`, endpoint: '/api', clientId: `p-${tag}`, batch: true, maxBatchOps: 5, paused: true });
      const el = document.createElement('sync-status');
      document.body.append(el);
      el.outbox = outbox;
      const lbl = el.shadowRoot.querySelector('[part~="label"]');
      const texts = new Set();
      new MutationObserver(() => texts.add(lbl.textContent)).observe(lbl, { childList: true, characterData: true, subtree: true });
      for (let i = 0; i < 200; i++) await outbox.enqueue({ collection: 'bulk', key: `k${i}`, op: 'put', value: { i } });
      outbox.resume();
      await outbox.drain();
      await new Promise((r) => setTimeout(r, 50));
      el.remove();
      await outbox.close();
      return [...texts];
    });
    const progress = seen.filter((text) => /^Syncing \d+ of 200$/.test(text));
    assert.ok(progress.length >= 3, `progress shown during the drain; saw ${JSON.stringify(seen.slice(0, 20))}`);
    assert.equal(seen.at(-1), 'Synced');
  } finally {
    await env.server.admin('faults', { method: 'DELETE' });
  }
});

test('no page errors', () => {
  assert.deepEqual(errors, []);
});
