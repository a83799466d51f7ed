// Helpers shared by the benchmark page's modules (bench.js and the phase modules next to it).

export const API = `${location.origin}/api`;
export const WASM_URL = new URL('./vendor/outbox-sync/wasm/outbox_sync_bg.wasm', location.href);
export const now = () => performance.now();
// bench/profile.mjs loads the page with ?profile: each timed region becomes a console.profile() recording.
const PROFILE = new URLSearchParams(location.search).has('profile');
export const timed = () => {
  if (PROFILE) console.profile('timed');
  return performance.now();
};
export const untimed = (t0) => {
  const ms = performance.now() - t0;
  if (PROFILE) console.profileEnd('timed');
  return ms;
};

let counter = 0;
export const uniq = (prefix) => `${prefix}-${Date.now().toString(36)}-${(counter++).toString(36)}-${Math.random().toString(36).slice(2, 8)}`;

/** The op every variant writes: the same document, so every variant stores the same bytes of payload. */
export const doc = (i) => ({ title: `note ${i}`, body: 'lorem ipsum dolor sit amet, consectetur adipiscing elit', n: i, done: false });
export const op = (i, tag) => ({ collection: 'notes', key: `${tag}-${i}`, op: 'put', value: doc(i) });

// ------------------------------------------------------------------------------------------------
// Raw IndexedDB helpers (the baselines)
// ------------------------------------------------------------------------------------------------

export const request = (req) =>
  new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });

export const complete = (tx) =>
  new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error('transaction aborted'));
  });

export function openRaw(name) {
  const req = indexedDB.open(name, 1);
  req.onupgradeneeded = () => req.result.createObjectStore('ops');
  return request(req);
}

/** Opens an existing database at whatever version it has (no upgrade). */
export const openExisting = (name) => request(indexedDB.open(name));

export function dropDb(name) {
  return new Promise((resolve) => {
    const req = indexedDB.deleteDatabase(name);
    req.onsuccess = req.onerror = () => resolve();
  });
}
