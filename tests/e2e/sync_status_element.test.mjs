// The <sync-status> element on its own, over an outbox with a custom transport: the popover's "Retry all",
// the action event, and styling through CSS custom properties and ::part.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { waitUntil } from './support/demo.mjs';
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
