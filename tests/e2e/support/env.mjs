// The usual setting of an end-to-end test file: one reference server and one headless Chromium, started
// before its tests and closed after them.
import { after, before } from 'node:test';
import { launchChromium } from './browser.mjs';
import { startServer } from './server.mjs';

/**
 * Registers the hooks; `env.server` and `env.browser` are set once the file's tests run. `setup(env)`, when
 * given, runs in the same hook right after both started (e.g. to open a shared page).
 */
export function useServerAndBrowser(setup) {
  const env = {};
  before(async () => {
    env.server = await startServer();
    env.browser = await launchChromium();
    await setup?.(env);
  });
  after(async () => {
    await env.browser?.close();
    await env.server?.close();
  });
  return env;
}
