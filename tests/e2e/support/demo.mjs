// Helpers for driving the demo app (www/) in headless Chromium.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const repoRoot = new URL('../../../', import.meta.url).pathname;

/** Screenshots and other artifacts of the e2e run (gitignored under target/). */
export const ARTIFACTS = process.env.E2E_ARTIFACTS ?? join(repoRoot, 'target/e2e-artifacts');

/** Opens the demo in a new page of `context` and waits until it has loaded its notes. */
export async function openDemo(context, server) {
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (error) => page.errors.push(error));
  await page.goto(server.url);
  await waitForReady(page);
  return page;
}

export async function waitForReady(page) {
  await page.locator('body[data-ready="true"]').waitFor({ timeout: 15_000 });
}

/** The indicator's text (the <sync-status> element in the header; Playwright's CSS pierces shadow roots). */
export function indicatorText(page) {
  return page.locator('#sync [part~="label"]').textContent();
}

/** Polls `read()` until `check(value)` holds; fails with the last value seen. */
export async function waitUntil(read, check, { timeout = 15_000, interval = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let value;
  for (;;) {
    value = await read();
    if (check(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}; last value: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

/** Waits until the indicator reads exactly `text` (a string) or matches it (a RegExp). */
export function waitForIndicator(page, text, options = {}) {
  const check = typeof text === 'string' ? (t) => t === text : (t) => text.test(t);
  return waitUntil(() => indicatorText(page), check, { what: `the indicator to read ${text}`, ...options });
}

/** Adds a note through the form, as a user would, and waits until it is stored. */
export async function addNoteViaForm(page, title) {
  await page.fill('#title', title);
  await page.press('#title', 'Enter');
  // The form clears the field once `enqueue` has resolved, i.e. once the note is durable in IndexedDB.
  await page.waitForFunction(() => document.getElementById('title').value === '');
}

/** The notes list as [{ title, state }]. */
export function notes(page) {
  return page.$$eval('#notes .note', (items) =>
    items.map((li) => ({ title: li.querySelector('.note-title').textContent, state: li.dataset.state })),
  );
}

export async function screenshot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, name);
  await page.screenshot({ path, fullPage: true });
  return path;
}
