// The demo page, served by the reference server, imports the built package by name and loads the wasm
// module in headless Chromium.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { useServerAndBrowser } from './support/env.mjs';

const pkgVersion = JSON.parse(readFileSync(new URL('../../pkg/package.json', import.meta.url))).version;

const env = useServerAndBrowser();

test('the demo page loads the wasm module and shows the package version', async () => {
  const page = await env.browser.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(e));
  await page.goto(env.server.url);
  const status = page.locator('#status[data-state]');
  await status.waitFor({ timeout: 15_000 });
  assert.equal(await status.getAttribute('data-state'), 'loaded', await status.textContent());
  // The npm package and the crate must agree on the version, or the release would ship a mismatch.
  assert.equal(await status.getAttribute('data-version'), pkgVersion);
  assert.deepEqual(errors, []);
});
