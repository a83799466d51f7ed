// outbox-sync/worker: drains an outbox from a service worker, so changes reach the server when no tab of
// the app is open. The worker takes part in the same election as the tabs (one Web Lock per outbox name):
// while a tab leads, that tab sends and the worker has nothing to do; when none is open, the worker leads,
// sends what the store holds under the same idempotency keys, and lets go again.
//
//   // sw.js (registered with { type: 'module' })
//   import { handleSync } from 'outbox-sync/worker';
//   handleSync({ options: { name: 'my-app', endpoint: '/api', auth: async () => ({ authorization: … }) } });
//
//   // in the page, when a change could not be sent (offline, say):
//   import { requestSync } from 'outbox-sync/worker';
//   await requestSync();
import { Outbox, SyncError } from './index.js';

export { SyncError };

/** The default Background Sync tag. */
export const SYNC_TAG = 'outbox-sync';

/**
 * Opens the outbox in this context and, if it wins the election, sends what it holds, then closes it again.
 * Resolves with `{ leader, report, status }`: `leader: false` (and no report) when another context leads and
 * sends. Rejects with `SyncError('SYNC_INCOMPLETE')` when ops were left waiting (a retry later, a rate
 * limit, offline): a Background Sync event that rejects is fired again later by the browser.
 */
export async function drainOutbox(options) {
  const outbox = await Outbox.open(options);
  let result;
  try {
    const before = outbox.status();
    if (before.role === 'follower') {
      result = { leader: false, report: null, status: before };
    } else {
      // The sync event means the network works again: what waits out a backoff goes now, as when a tab
      // comes online (a wait the server asked for still holds).
      outbox.__reconnected();
      const report = await outbox.drain();
      result = { leader: true, report, status: outbox.status() };
    }
  } finally {
    await outbox.close();
  }
  const { status } = result;
  if (result.leader && status.pending + status.inFlight > 0) {
    throw new SyncError(
      'SYNC_INCOMPLETE',
      `${status.pending + status.inFlight} change(s) still wait to be sent (${status.state}); the browser retries the sync later`,
    );
  }
  return result;
}

/**
 * Registers this service worker's handlers: the Background Sync `sync` event for `tag`, and
 * `periodicsync` for the same tag where the browser has Periodic Background Sync. Each drains the outbox
 * named in `options` (the same options the app's tabs open it with, `auth` included: it is called at send
 * time here too and nothing of it is stored). Returns a function that removes the handlers.
 */
export function handleSync({ options, tag = SYNC_TAG } = {}) {
  if (typeof options !== 'object' || options === null) {
    throw new SyncError('INVALID_CONFIG', 'handleSync({ options }): options must be the outbox options');
  }
  const scope = globalThis;
  const onSync = (event) => {
    if (event.tag !== tag) return;
    event.waitUntil(drainOutbox(options));
  };
  scope.addEventListener('sync', onSync);
  scope.addEventListener('periodicsync', onSync);
  return () => {
    scope.removeEventListener('sync', onSync);
    scope.removeEventListener('periodicsync', onSync);
  };
}

/**
 * From a page: asks the browser to fire the service worker's `sync` event once it is online, even if every
 * tab is closed by then. Resolves `'registered'`, or `'unsupported'` where there is no service worker or no
 * Background Sync (Firefox, Safari): there the ops wait until a tab of the app opens again.
 */
export async function requestSync(tag = SYNC_TAG) {
  const container = globalThis.navigator?.serviceWorker;
  if (!container) return 'unsupported';
  const registration = await container.ready;
  if (!registration.sync || typeof registration.sync.register !== 'function') return 'unsupported';
  await registration.sync.register(tag);
  return 'registered';
}
