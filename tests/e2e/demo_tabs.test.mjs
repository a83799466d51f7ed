// The demo in two tabs, as a person would use it: one tab sends for both and each says which it is; a note
// added in either shows in both; closing the sending tab hands the sending to the other. Screenshots of
// both tabs go to target/e2e-artifacts/.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { addNoteViaForm, notes, openDemo, screenshot, waitUntil } from './support/demo.mjs';
import { useServerAndBrowser } from './support/env.mjs';

const env = useServerAndBrowser();

const roleText = (page) => page.locator('#tab-role').textContent();

test('two demo tabs: one sends, both show every note, and the other takes over', async () => {
  const context = await env.browser.newContext({ viewport: { width: 900, height: 700 } });
  const a = await openDemo(context, env.server);
  const b = await openDemo(context, env.server);
  assert.equal(await roleText(a), 'This tab sends for every open tab');
  assert.equal(await roleText(b), 'Another tab is sending');
  assert.equal(await b.locator('#sync').getAttribute('tab-role'), 'follower');

  await addNoteViaForm(b, 'written in tab B');
  await addNoteViaForm(a, 'written in tab A');
  for (const page of [a, b]) {
    await waitUntil(
      () => notes(page),
      (list) => ['written in tab A', 'written in tab B'].every((t) => list.some((n) => n.title === t && n.state === 'synced')),
      { what: 'both notes synced in both tabs' },
    );
  }
  await screenshot(a, 'demo-tabs-leader.png');
  await screenshot(b, 'demo-tabs-follower.png');

  await a.close({ runBeforeUnload: false });
  await waitUntil(() => roleText(b), (t) => t === 'This tab sends for every open tab', { what: 'B to take over' });
  await addNoteViaForm(b, 'after the handover');
  await waitUntil(
    () => notes(b),
    (list) => list.some((n) => n.title === 'after the handover' && n.state === 'synced'),
    { what: 'B sends on its own' },
  );
  await screenshot(b, 'demo-tabs-after-handover.png');
  assert.deepEqual(b.errors, []);
  await context.close();
});
