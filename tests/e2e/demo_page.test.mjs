// The demo page, served by the reference server, imports the built package by name and loads the wasm
// module in headless Chromium.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { launchChromium } from './support/browser.mjs';
import { startServer } from './support/server.mjs';

const pkgVersion = JSON.parse(readFileSync(new URL('../../pkg/package.json', import.meta.url))).version;

let server;
let browser;
before(async () => {
  server = await startServer();
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await server?.close();
});

test('the demo page loads the wasm module and shows the package version', async () => {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  await page.goto(server.url);
  const status = page.locator('#status[data-state]');
  await status.waitFor({ timeout: 15_000 });
  assert.equal(await status.getAttribute('data-state'), 'loaded', await status.textContent());
  // The npm package and the crate must agree on the version, or the release would ship a mismatch.
  assert.equal(await status.getAttribute('data-version'), pkgVersion);
  assert.deepEqual(errors, []);
});
