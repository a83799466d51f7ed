// Several tabs of one origin: pages of one browser context share IndexedDB, Web Locks and
// BroadcastChannel, as the tabs of one browser profile do.

/** A tab on the server's origin with the package loaded as `window.pkg` (no demo app running in it). */
export async function openTab(context, server) {
  const page = await context.newPage();
  // A plain document of the origin: the demo app would open an outbox of its own.
  await page.goto(new URL('style.css', server.url).href);
  await page.evaluate(async () => {
    window.pkg = await import('/vendor/outbox-sync/index.js');
  });
  return page;
}

/** Runs `fn(pkg, arg)` in the tab (`fn` is sent as source: it sees only its arguments and globals). */
export function inTab(page, fn, arg) {
  return page.evaluate(
    async ({ source, arg }) => new Function(`return (${source})`)()(window.pkg, arg),
    { source: fn.toString(), arg },
  );
}

/** Opens the outbox `name` in the tab as `window.outbox`; resolves with its role. */
export function openOutbox(page, options) {
  return inTab(
    page,
    async ({ Outbox }, options) => {
      window.outbox = await Outbox.open(options);
      return window.outbox.status().role;
    },
    options,
  );
}

/** Polls `check()` until it returns a truthy value (returned), or fails after `timeoutMs`. */
export async function eventually(check, { timeoutMs = 15_000, intervalMs = 50, what = 'the condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await check();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`${what} did not hold within ${timeoutMs} ms (last: ${JSON.stringify(last)})`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * Counts, per idempotency key, the ops the context sends: single requests by their header, pushes by the
 * keys in their body. Requests a fault made the client repeat are counted too; the caller subtracts what
 * it injected. Counts go into `sends`, which may outlive the context (a killed browser).
 */
export function countSends(context, sends = new Map()) {
  context.on('request', (request) => {
    const url = request.url();
    if (!url.includes('/api/')) return;
    if (url.includes('/api/push')) {
      let body;
      try {
        body = request.postDataJSON();
      } catch {
        return;
      }
      for (const op of body?.ops ?? []) sends.set(op.idempotencyKey, (sends.get(op.idempotencyKey) ?? 0) + 1);
      return;
    }
    const header = request.headers()['idempotency-key'];
    if (header) {
      const key = header.replace(/^"|"$/g, '');
      sends.set(key, (sends.get(key) ?? 0) + 1);
    }
  });
  return sends;
}
