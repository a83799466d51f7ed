// The <sync-status> element on its own, over an outbox with a custom transport: the popover's "Retry all",
// the action event, styling through CSS custom properties and ::part, and a large queue's restore shown
// from its start (`onStatus` before `open` resolves).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { screenshot, waitUntil } from './support/demo.mjs';
import { useServerAndBrowser } from './support/env.mjs';

const env = useServerAndBrowser();

test('the popover lists failed ops; "Retry all" resends them; the element is styleable', async () => {
  const page = await env.browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  await page.goto(env.server.url);
  await page.evaluate(async () => {
    const { Outbox } = await import('outbox-sync');
    await import('outbox-sync/sync-status');
    const state = { refuse: true, actions: [] };
    const problem = { type: 'https://example.test/problems/too-long', title: 'Unprocessable', detail: 'the title is too long' };
    const outbox = await Outbox.open({
      name: `element-${Math.random()}`,
      transport: async (batch) =>
        batch.ops.map((op) =>
          state.refuse && op.key.startsWith('bad')
            ? { id: op.id, status: 422, headers: { 'content-type': 'application/problem+json' }, body: { ...problem, status: 422 } }
            : { id: op.id, status: 200, headers: { etag: '"1"' }, body: op.value ?? null },
        ),
    });
    const style = document.createElement('style');
    style.textContent = `#probe { --sync-status-error-color: rgb(1, 2, 3); }
      #probe::part(label) { font-weight: 700; letter-spacing: 3px; }`;
    document.head.append(style);
    const el = document.createElement('sync-status');
    el.id = 'probe';
    document.body.prepend(el);
    el.outbox = outbox;
    el.addEventListener('sync-status-action', (e) => state.actions.push(e.detail));
    globalThis.probe = { outbox, state };
    for (const key of ['bad-1', 'good-1', 'bad-2']) await outbox.enqueue({ collection: 'notes', key, op: 'put', value: { key } });
    await outbox.drain();
  });
  const label = () => page.locator('#probe [part~="label"]').textContent();
  await waitUntil(label, (t) => t === '2 failed', { what: '"2 failed"' });
  assert.equal(await page.locator('#probe').getAttribute('state'), 'failed');
  assert.equal(await page.locator('#probe [role="status"][aria-live="polite"]').textContent(), '2 failed', 'announced');

  const styles = await page.evaluate(() => {
    const root = document.getElementById('probe').shadowRoot;
    const dot = getComputedStyle(root.querySelector('[part~="dot"]'));
    const text = getComputedStyle(root.querySelector('[part~="label"]'));
    return { dot: dot.backgroundColor, weight: text.fontWeight, spacing: text.letterSpacing };
  });
  assert.deepEqual(styles, { dot: 'rgb(1, 2, 3)', weight: '700', spacing: '3px' });

  await page.locator('#probe [part~="details-button"]').click();
  const items = page.locator('#probe [part~="panel"] [part~="item"]');
  await waitUntil(() => items.count(), (n) => n === 2, { what: 'two items' });
  assert.match(await items.first().textContent(), /put notes\/bad-1.*422 too-long: the title is too long/s);
  const retryAll = page.locator('#probe [part~="retry-all"]');
  assert.equal(await retryAll.isVisible(), true);

  await page.evaluate(() => {
    globalThis.probe.state.refuse = false;
  });
  await retryAll.click();
  await waitUntil(label, (t) => t === 'Synced', { what: '"Synced" after Retry all' });
  await waitUntil(() => items.count(), (n) => n === 0, { what: 'an empty list' });
  assert.equal(await page.locator('#probe [part~="empty"]').isVisible(), true);
  assert.equal(await page.locator('#probe [part~="details-button"]').isVisible(), false);
  const actions = await page.evaluate(() => globalThis.probe.state.actions);
  assert.deepEqual(actions, [{ action: 'retry-all' }]);
  assert.deepEqual(errors, []);
  await page.close();
});

test('the restore of a large queue shows from its start ("Restoring 0 of 3008", an estimate at first)', async () => {
  const page = await env.browser.newPage({ viewport: { width: 480, height: 120 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  await page.goto(env.server.url);
  const seen = await page.evaluate(async () => {
    const { Outbox } = await import('outbox-sync');
    await import('outbox-sync/sync-status');
    const options = {
      name: `restore-${Math.random()}`,
      paused: true,
      transport: async (batch) => batch.ops.map((op) => ({ id: op.id, status: 200 })),
    };
    const first = await Outbox.open(options);
    const stored = [];
    for (let i = 0; i < 3000; i++) stored.push(first.enqueue({ collection: 'notes', key: `k${i}`, op: 'put', value: { i } }));
    await Promise.all(stored);
    await first.close();

    const el = document.createElement('sync-status');
    el.id = 'probe';
    document.body.prepend(el);
    const label = el.shadowRoot.querySelector('[part~="label"]');
    const heard = [];
    let opened = false;
    const outbox = await Outbox.open({
      ...options,
      onStatus: (status) => {
        el.status = status;
        heard.push({ opened, state: el.getAttribute('state'), text: label.textContent, status });
      },
    });
    opened = true;
    globalThis.probe = { outbox, el, heard };
    return heard.map(({ opened, state, text }) => ({ opened, state, text }));
  });
  const restoring = seen.filter((s) => s.state === 'restoring');
  // Before any record was read: how many there are is estimated from the first part of them (a sixteenth).
  assert.equal(seen[0].state, 'restoring');
  assert.equal(seen[0].opened, false);
  const [, estimate] = seen[0].text.match(/^Restoring 0 of (\d+)$/) ?? [];
  assert.ok(Number(estimate) > 1500 && Number(estimate) < 4500, `estimated near 3000: ${seen[0].text}`);
  assert.ok(
    restoring.some((s) => /^Restoring [1-9]\d* of \d+$/.test(s.text) && s.text !== 'Restoring 3000 of 3000'),
    `shown as the records are read; saw ${JSON.stringify(restoring.map((s) => s.text))}`,
  );
  assert.ok(restoring.every((s) => !s.opened), 'all of it before open resolved');
  assert.equal(restoring.at(-1).text, 'Restoring 3000 of 3000', 'exact once every part is in');
  assert.deepEqual(seen.at(-1), { opened: false, state: 'paused', text: 'Paused · 3000 pending' });

  // What a person sees halfway through, then once the outbox is attached.
  await page.evaluate(() => {
    const { el, heard } = globalThis.probe;
    el.status = heard[Math.floor(heard.length / 2)].status;
  });
  assert.match(await page.locator('#probe [part~="label"]').textContent(), /^Restoring \d+ of \d+$/);
  await screenshot(page, 'sync-status-restoring.png');
  await page.evaluate(() => {
    globalThis.probe.el.outbox = globalThis.probe.outbox;
  });
  const label = () => page.locator('#probe [part~="label"]').textContent();
  await waitUntil(label, (t) => t === 'Paused · 3000 pending', { what: 'the outbox\'s own status' });
  await screenshot(page, 'sync-status-restored.png');
  await page.evaluate(() => globalThis.probe.outbox.close());
  assert.deepEqual(errors, []);
  await page.close();
});
