// The demo app (www/) end to end: the notes UI, the <sync-status> indicator and its failed-ops popover, the
// offline switch and the fault switch, against a fresh reference server per test. Screenshots land in
// target/e2e-artifacts/.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchChromium } from './support/browser.mjs';
import { addNoteViaForm, indicatorText, notes, openDemo, screenshot, waitForIndicator, waitForReady, waitUntil } from './support/demo.mjs';
import { startServer } from './support/server.mjs';

let browser;
before(async () => {
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
});

/** Runs `fn({ server, context })` with a fresh server and a fresh browser profile (empty IndexedDB). */
async function withDemo(fn, serverOptions) {
  const server = await startServer(serverOptions);
  const context = await browser.newContext({ viewport: { width: 900, height: 720 } });
  try {
    await fn({ server, context });
  } finally {
    await context.close();
    await server.close();
  }
}

const json = (body) => ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

/** The ledger entries of this page's client, as { idempotencyKey: count }. */
async function ledgerOf(server, clientId) {
  const ledger = await server.admin('ledger');
  return Object.fromEntries(
    Object.entries(ledger)
      .filter(([k]) => k.startsWith(`${clientId}/`))
      .map(([k, n]) => [k.slice(clientId.length + 1), n]),
  );
}

test('offline durability: 20 notes made offline survive two reloads and are applied exactly once', async () => {
  await withDemo(async ({ server, context }) => {
    const page = await openDemo(context, server);
    await waitForIndicator(page, 'Synced');
    await page.locator('#offline').check();
    await waitForIndicator(page, 'Paused');

    for (let i = 1; i <= 20; i++) await addNoteViaForm(page, `Offline note ${i}`);
    await waitForIndicator(page, 'Paused · 20 pending');
    const { clientId, keys } = await page.evaluate(async () => ({
      clientId: globalThis.demo.clientId,
      keys: (await globalThis.demo.outbox.pending()).map((op) => op.idempotencyKey),
    }));
    assert.equal(new Set(keys).size, 20);
    await waitUntil(() => notes(page), (n) => n.length === 20, { what: '20 notes in the list' });
    await screenshot(page, 'demo-offline-pending.png');

    for (const round of [1, 2]) {
      await page.reload();
      await waitForReady(page);
      assert.equal(await page.locator('#offline').isChecked(), true, `the offline switch is remembered (reload ${round})`);
      await waitForIndicator(page, 'Paused · 20 pending');
      const listed = await notes(page);
      assert.equal(listed.length, 20, `the queued notes are listed after reload ${round}`);
      assert.ok(listed.every((n) => n.state === 'pending'), JSON.stringify(listed));
      assert.deepEqual(await ledgerOf(server, clientId), {}, `nothing reached the server while offline (reload ${round})`);
    }

    await page.locator('#offline').uncheck();
    await waitForIndicator(page, 'Synced', { timeout: 20_000 });
    const ledger = await ledgerOf(server, clientId);
    assert.deepEqual(Object.keys(ledger).sort(), [...keys].sort(), 'exactly the 20 queued keys were applied');
    assert.ok(Object.values(ledger).every((n) => n === 1), `each applied once: ${JSON.stringify(ledger)}`);
    await waitUntil(() => notes(page), (n) => n.length === 20 && n.every((x) => x.state === 'synced'), { what: '20 synced notes' });
    assert.equal(await page.locator('#empty').isVisible(), false);
    await screenshot(page, 'demo-synced.png');

    // Deleting a note is one more op through the same outbox.
    await page.locator('#notes .note', { hasText: /^Offline note 1Synced/ }).getByRole('button', { name: /^Delete/ }).click();
    await waitUntil(() => notes(page), (n) => n.length === 19, { what: 'the deleted note to disappear' });
    await waitForIndicator(page, 'Synced');
    const deleted = await waitUntil(
      async () => Object.keys(await ledgerOf(server, clientId)).length,
      (n) => n === 21,
      { what: 'the delete to reach the server' },
    );
    assert.equal(deleted, 21);
    assert.deepEqual(page.errors, []);
  });
});

test('flaky server: 200 notes through 503s with Retry-After and lost acks are applied exactly once', async () => {
  await withDemo(async ({ server, context }) => {
    const page = await openDemo(context, server);
    // The demo's fault switch sets the server's fault injection through the loopback admin API.
    await page.locator('#flaky').check();
    const set = await waitUntil(() => server.admin('faults'), (f) => f.config?.error503Percent === 30, { what: 'the fault switch' });
    assert.equal(set.config.lostAckPercent, 10);
    assert.equal(set.config.retryAfter503Secs, 1);
    // The same mix, made reproducible: a fixed seed, and a sequence that makes sure both faults happen early.
    await server.admin('faults', json({ ...set.config, seed: 7, sequence: ['error503', 'lostAck', 'none', 'lostAck', 'error503'] }));

    const started = Date.now();
    const { clientId, keys, events } = await page.evaluate(async () => {
      const { outbox, addNote, clientId } = globalThis.demo;
      const events = { blocked: 0, retry_scheduled: 0, sent: 0 };
      for (const type of Object.keys(events)) outbox.on(type, () => events[type]++);
      const keys = [];
      for (let i = 0; i < 200; i += 20) {
        const burst = await Promise.all(Array.from({ length: 20 }, (_, j) => addNote(`Flaky note ${i + j + 1}`)));
        keys.push(...burst.map((r) => r.idempotencyKey));
      }
      await new Promise((resolve) => {
        const check = () => {
          const s = outbox.status();
          if (s.pending + s.inFlight === 0) resolve();
          else setTimeout(check, 50);
        };
        check();
      });
      return { clientId, keys, events };
    });
    const elapsed = Date.now() - started;

    await waitForIndicator(page, 'Synced');
    const ledger = await ledgerOf(server, clientId);
    assert.equal(Object.keys(ledger).length, 200, 'every note reached the server');
    assert.deepEqual(Object.keys(ledger).sort(), [...keys].sort());
    const twice = Object.entries(ledger).filter(([, n]) => n !== 1);
    assert.deepEqual(twice, [], 'no key was applied more than once');
    const faults = await server.admin('faults');
    assert.ok(faults.injected.error503 >= 2, `503s injected: ${JSON.stringify(faults.injected)}`);
    assert.ok(faults.injected.lostAck >= 2, `lost acks injected: ${JSON.stringify(faults.injected)}`);
    assert.ok(events.blocked >= 1, `a 503 with Retry-After blocked sending: ${JSON.stringify(events)}`);
    assert.ok(events.retry_scheduled >= 1, `lost acks were retried: ${JSON.stringify(events)}`);
    const listed = await waitUntil(() => notes(page), (n) => n.length === 200 && n.every((x) => x.state === 'synced'), { what: '200 synced notes' });
    assert.equal(listed.length, 200);
    assert.deepEqual(page.errors, []);
    console.log(`# flaky: 200 ops in ${elapsed} ms, ${events.sent} sends, injected ${JSON.stringify(faults.injected)}`);

    await page.locator('#flaky').uncheck();
    await waitUntil(() => server.admin('faults'), (f) => !f.config?.error503Percent, { what: 'the fault switch to turn off' });
  });
});

test('permanent failure: a 422 shows "1 failed"; Discard and Retry work from the popover; other notes drain', async () => {
  // A 422 the reference server really sends: `idempotency-key-reused`, for an op whose key was first used for a
  // different request. A short key TTL lets the same op succeed when retried a few seconds later.
  const ttlMs = 2000;
  await withDemo(
    async ({ server, context }) => {
      const page = await openDemo(context, server);
      const clientId = await page.evaluate(() => globalThis.demo.clientId);

      /** Queues a note offline whose key the server has already seen on another document. */
      async function refusedNote(title) {
        await page.locator('#offline').check();
        const { key, idempotencyKey } = await page.evaluate((title) => globalThis.demo.addNote(title), title);
        const decoy = await fetch(new URL(`api/docs/notes/decoy-${key}`, server.url), {
          method: 'PUT',
          headers: { 'content-type': 'application/json', 'idempotency-key': `"${idempotencyKey}"`, 'outbox-client-id': clientId },
          body: JSON.stringify({ title: 'decoy' }),
        });
        assert.ok(decoy.ok, `the decoy write: ${decoy.status}`);
        return { key, seededAt: Date.now() };
      }
      const docStatus = async (key) => (await fetch(new URL(`api/docs/notes/${key}`, server.url))).status;
      const popoverItems = () => page.locator('#sync [part~="panel"] [part~="item"]');

      // 1. One refused note among good ones: "1 failed", and the good ones still reach the server.
      const first = await refusedNote('Refused note');
      await addNoteViaForm(page, 'Good note A');
      await addNoteViaForm(page, 'Good note B');
      await page.locator('#offline').uncheck();
      await waitForIndicator(page, '1 failed');
      const good = (await notes(page)).filter((n) => n.title.startsWith('Good note'));
      await waitUntil(() => notes(page), (n) => n.filter((x) => x.state === 'synced' && x.title.startsWith('Good')).length === 2, { what: 'the good notes to sync' });
      assert.equal(good.length, 2);
      assert.equal(await docStatus(first.key), 404, 'the refused note was not applied');
      assert.equal((await notes(page)).find((n) => n.title === 'Refused note')?.state, 'failed');

      // The failed-ops panel in the page and the popover list it, with the server's reason.
      assert.equal(await page.locator('#failed').isVisible(), true);
      await page.locator('#sync [part~="details-button"]').click();
      await waitUntil(() => popoverItems().count(), (n) => n === 1, { what: 'one item in the popover' });
      assert.equal(await page.locator('#sync [part~="panel"]').isVisible(), true, 'the popover is open');
      const reason = await popoverItems().first().textContent();
      assert.match(reason, /422 idempotency-key-reused/);
      assert.match(reason, new RegExp(`put notes/${first.key}`));
      await screenshot(page, 'demo-failed.png');

      // 2. Discard: the op is gone for good; nothing is sent.
      await popoverItems().first().getByRole('button', { name: /^Discard/ }).click();
      await waitForIndicator(page, 'Synced');
      await waitUntil(() => notes(page), (n) => !n.some((x) => x.title === 'Refused note'), { what: 'the discarded note to disappear' });
      assert.equal(await page.evaluate(async () => (await globalThis.demo.outbox.failed()).length), 0);
      assert.equal(await docStatus(first.key), 404, 'a discarded op is never applied');
      assert.equal(await page.locator('#failed').isVisible(), false, 'the failed panel hides when nothing failed');

      // 3. Retry: once the server has forgotten the reused key, the same op goes through.
      const second = await refusedNote('Retried note');
      await page.locator('#offline').uncheck();
      await waitForIndicator(page, '1 failed');
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, second.seededAt + ttlMs + 300 - Date.now())));
      if (!(await page.locator('#sync [part~="panel"]').isVisible())) await page.locator('#sync [part~="details-button"]').click();
      await waitUntil(() => popoverItems().count(), (n) => n === 1, { what: 'one item in the popover' });
      await popoverItems().first().getByRole('button', { name: /^Retry/ }).click();
      await waitForIndicator(page, 'Synced');
      assert.equal(await docStatus(second.key), 200, 'the retried op was applied');
      await waitUntil(() => notes(page), (n) => n.find((x) => x.title === 'Retried note')?.state === 'synced', { what: 'the retried note to sync' });
      assert.deepEqual(page.errors, []);
    },
    { args: ['--idempotency-ttl', `${ttlMs / 1000}s`] },
  );
});

test('the indicator unsubscribes when removed, and shows the outbox again when re-added', async () => {
  await withDemo(async ({ server, context }) => {
    const page = await openDemo(context, server);
    const result = await page.evaluate(async () => {
      const { outbox } = globalThis.demo;
      const el = document.createElement('sync-status');
      el.outbox = outbox;
      const label = () => el.shadowRoot.querySelector('[part~="label"]').textContent;
      const before = label(); // not connected yet: nothing subscribed
      document.body.append(el);
      const connected = label();
      el.remove();
      outbox.pause();
      await new Promise((resolve) => setTimeout(resolve, 50));
      const whileRemoved = label();
      document.body.append(el);
      const reattached = label();
      const region = el.shadowRoot.querySelector('[role="status"]');
      const live = [region.getAttribute('aria-live'), region.textContent];
      outbox.resume();
      return { before, connected, whileRemoved, reattached, live };
    });
    assert.deepEqual(result, {
      before: 'Not connected',
      connected: 'Synced',
      whileRemoved: 'Synced',
      reattached: 'Paused',
      live: ['polite', 'Paused'],
    });
    assert.equal(await indicatorText(page), 'Synced');
  });
});

test('a note changed on another device while deleted here shows both versions, and the choice sticks', async () => {
  await withDemo(async ({ server, context }) => {
    const page = await openDemo(context, server);
    await addNoteViaForm(page, 'Shared note');
    await waitForIndicator(page, 'Synced');
    const key = await page.$eval('#notes .note', (li) => li.dataset.key);
    // Another device renames it on the server (its own outbox, its own database).
    await page.evaluate(async (key) => {
      const { Outbox } = await import('outbox-sync');
      const other = await Outbox.open({ name: `other-device-${Math.random()}`, endpoint: '/api', collections: { notes: { versioned: false } } });
      await other.enqueue({ collection: 'notes', key, op: 'put', value: { title: 'Renamed elsewhere', createdAt: 1 } });
      await other.drain();
      await other.close();
    }, key);
    // Here, still at the old version, the user deletes it: the server refuses with 412 and the demo asks.
    await page.click(`#notes .note[data-key="${key}"] .delete`);
    await page.locator('#conflicts:not([hidden]) .conflict').waitFor({ timeout: 15_000 });
    const sides = await page.$$eval('#conflict-list .conflict p', (ps) => ps.map((p) => p.textContent));
    assert.deepEqual(sides, ['(deleted)', 'Renamed elsewhere'], 'mine (deleted) next to the server version');
    await screenshot(page, 'demo-conflict.png');
    await page.click('#conflict-list button[data-use="server"]');
    await page.locator('#conflicts[hidden]').waitFor({ state: 'attached', timeout: 15_000 });
    await waitUntil(() => notes(page), (list) => list.some((n) => n.title === 'Renamed elsewhere' && n.state === 'synced'), {
      what: 'the server version to show as synced',
    });
    const doc = await (await fetch(new URL(`api/docs/notes/${key}`, server.url))).json();
    assert.equal(doc.title, 'Renamed elsewhere', 'keeping the server version deleted nothing');
    assert.deepEqual(page.errors, []);
  });
});
