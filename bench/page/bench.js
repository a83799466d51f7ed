// The benchmark page. Each exported function measures ONE sample and returns `{ ms, ...facts }`; bench/run.mjs
// calls them in round robin. Opening, seeding and deleting databases is set-up and is never timed. Every
// timing stops when the data is durable by the measured library's own promise (for raw IndexedDB: the
// transaction's `complete` event), never when a request succeeds.
import { Outbox, ready } from 'outbox-sync';
// The multi-tab phase's page side (two tabs of one context), kept in its own module.
import * as tabs from './tabs.js';
// The cold-start phase's page side (each sample in a freshly loaded page).
import * as cold from './cold.js';
import { API, complete, doc, dropDb, now, op, openExisting, openRaw, request, timed, uniq, untimed } from './common.js';

/**
 * Resolves once every readwrite transaction created so far on the outbox's `ops` store has finished, and the
 * store is empty. A readonly transaction cannot start before earlier readwrite transactions with an
 * overlapping scope have finished (IndexedDB's scheduling rule, across connections), so its `complete` is a
 * barrier: "drained" means the ack deletes have committed, not that the last response arrived.
 */
async function opsStoreEmpty(probe) {
  for (let round = 0; round < 10_000; round++) {
    const tx = probe.transaction('ops', 'readonly');
    const count = await request(tx.objectStore('ops').count());
    await complete(tx);
    if (count === 0) return round;
    await new Promise((resolve) => setTimeout(resolve, 0));
  }
  throw new Error('the ops store never emptied');
}

/** Runs `jobs` (functions returning promises) with at most `limit` in flight, like the outbox's maxInFlight. */
async function pool(jobs, limit) {
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) await jobs[next++]();
  };
  await Promise.all(Array.from({ length: Math.min(limit, jobs.length) }, worker));
}

// ------------------------------------------------------------------------------------------------
// 1. Burst enqueue: n ops fired in one task, until all are durable
// ------------------------------------------------------------------------------------------------

export async function rawBurst({ n, durability }) {
  const name = uniq('raw-burst');
  const db = await openRaw(name);
  const tag = uniq('b');
  const t0 = now();
  const tx = db.transaction('ops', 'readwrite', { durability });
  const store = tx.objectStore('ops');
  // The same work an outbox must do at the least: an id per op and the op as a stored string.
  for (let i = 0; i < n; i++) store.put(JSON.stringify(op(i, tag)), crypto.randomUUID());
  await complete(tx);
  const ms = now() - t0;
  db.close();
  await dropDb(name);
  return { ms, transactions: 1 };
}

export async function outboxBurst({ n, durability }) {
  const name = uniq('ob-burst');
  const outbox = await Outbox.open({ name, transport: async () => [], autoDrain: false, durability });
  const tag = uniq('b');
  const tx0 = outbox.__transactionsCommitted();
  const t0 = timed();
  const pending = new Array(n);
  for (let i = 0; i < n; i++) pending[i] = outbox.enqueue(op(i, tag));
  await Promise.all(pending);
  const ms = untimed(t0);
  const transactions = outbox.__transactionsCommitted() - tx0;
  await outbox.close();
  await dropDb(name);
  return { ms, transactions };
}

// ------------------------------------------------------------------------------------------------
// 2. Single enqueue durable latency: k sequential ops, one sample each
// ------------------------------------------------------------------------------------------------

export async function rawSingle({ k, durability }) {
  const name = uniq('raw-single');
  const db = await openRaw(name);
  const tag = uniq('s');
  const ms = [];
  for (let i = 0; i < k; i++) {
    const t0 = now();
    const tx = db.transaction('ops', 'readwrite', { durability });
    tx.objectStore('ops').put(JSON.stringify(op(i, tag)), crypto.randomUUID());
    await complete(tx);
    ms.push(now() - t0);
  }
  db.close();
  await dropDb(name);
  return { ms };
}

export async function outboxSingle({ k, durability }) {
  const name = uniq('ob-single');
  const outbox = await Outbox.open({ name, transport: async () => [], autoDrain: false, durability });
  const tag = uniq('s');
  const ms = [];
  for (let i = 0; i < k; i++) {
    const t0 = now();
    await outbox.enqueue(op(i, tag));
    ms.push(now() - t0);
  }
  await outbox.close();
  await dropDb(name);
  return { ms };
}

// ------------------------------------------------------------------------------------------------
// 3. Optimistic visibility: enqueue → readable through `get`, against durable latency
// ------------------------------------------------------------------------------------------------

export async function hasOptimisticView() {
  await ready();
  return typeof Outbox.prototype.get === 'function';
}

export async function outboxVisibility({ k, durability }) {
  const name = uniq('ob-view');
  const outbox = await Outbox.open({ name, transport: async () => [], autoDrain: false, durability });
  const tag = uniq('v');
  const visible = [];
  const durable = [];
  let missing = 0;
  // One recording of the whole loop under bench/profile.mjs (its time is not used).
  const all = timed();
  for (let i = 0; i < k; i++) {
    const input = op(i, tag);
    const t0 = now();
    const done = outbox.enqueue(input);
    // `get(collection, key)` may answer synchronously or with a promise; both are timed to the value.
    let value = outbox.get(input.collection, input.key);
    if (value && typeof value.then === 'function') value = await value;
    visible.push(now() - t0);
    if (value === undefined || value === null) missing++;
    await done;
    durable.push(now() - t0);
  }
  untimed(all);
  await outbox.close();
  await dropDb(name);
  return { visible, durable, missing };
}

// ------------------------------------------------------------------------------------------------
// 4. Drain throughput to the reference server
// ------------------------------------------------------------------------------------------------

function putRequest(key, idempotencyKey, body) {
  return fetch(`${API}/docs/notes/${encodeURIComponent(key)}`, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/json', 'Idempotency-Key': `"${idempotencyKey}"` },
    body: JSON.stringify(body),
  });
}

// Resource Timing keeps 250 entries unless told otherwise; a drain makes up to 200 requests, the peers more.
performance.setResourceTimingBufferSize(10_000);

/**
 * Requests to the API in flight on average from `t0` for `ms` (Resource Timing, each request from its start
 * to its body's end): how busy a drain keeps its `maxInFlight` requests. Call `performance.clearResourceTimings()`
 * before the drain.
 */
function requestsInFlight(t0, ms) {
  const end = t0 + ms;
  const requests = performance.getEntriesByType('resource').filter((e) => e.name.startsWith(API) && e.startTime >= t0);
  const busy = requests.reduce((sum, e) => sum + Math.max(0, Math.min(e.responseEnd, end) - e.startTime), 0);
  return +(busy / ms).toFixed(2);
}

/**
 * The baseline: the very requests the outbox sends (one PUT per op, or one POST /push per 100 ops), with the
 * same concurrency as the outbox's maxInFlight, each response body read, then ONE transaction deleting all
 * the ops, timed to its `complete`.
 */
export async function rawDrain({ n, batch, batchOps, concurrency, durability }) {
  const name = uniq('raw-drain');
  const db = await openRaw(name);
  const tag = uniq('d');
  const ops = Array.from({ length: n }, (_, i) => ({ id: crypto.randomUUID(), idempotencyKey: crypto.randomUUID(), ...op(i, tag) }));
  const seed = db.transaction('ops', 'readwrite', { durability });
  for (const o of ops) seed.objectStore('ops').put(JSON.stringify(o), o.id);
  await complete(seed);

  performance.clearResourceTimings();
  const t0 = timed();
  let failed = 0;
  const jobs = [];
  if (batch) {
    for (let i = 0; i < n; i += batchOps) {
      const chunk = ops.slice(i, i + batchOps);
      jobs.push(async () => {
        const res = await fetch(`${API}/push`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: JSON.stringify({
            ops: chunk.map((o) => ({ id: o.id, method: 'PUT', collection: o.collection, key: o.key, idempotencyKey: o.idempotencyKey, body: o.value })),
          }),
        });
        const body = await res.json();
        failed += body.results.filter((r) => r.status >= 300).length;
      });
    }
  } else {
    for (const o of ops) {
      jobs.push(async () => {
        const res = await putRequest(o.key, o.idempotencyKey, o.value);
        await res.json();
        if (!res.ok) failed++;
      });
    }
  }
  await pool(jobs, concurrency);
  const tx = db.transaction('ops', 'readwrite', { durability });
  for (const o of ops) tx.objectStore('ops').delete(o.id);
  await complete(tx);
  const ms = untimed(t0);
  db.close();
  await dropDb(name);
  return { ms, failed, transactions: 1, inFlight: requestsInFlight(t0, ms) };
}

export async function outboxDrain({ n, batch, batchOps, durability }) {
  const name = uniq('ob-drain');
  const options = { name, endpoint: API, autoDrain: false, durability, batch };
  if (batch) options.maxBatchOps = batchOps;
  const outbox = await Outbox.open(options);
  const tag = uniq('d');
  await Promise.all(Array.from({ length: n }, (_, i) => outbox.enqueue(op(i, tag))));
  const probe = await openExisting(name);
  const tx0 = outbox.__transactionsCommitted();
  performance.clearResourceTimings();
  const t0 = timed();
  const report = await outbox.drain();
  const barrierRounds = await opsStoreEmpty(probe);
  const ms = untimed(t0);
  const inFlight = requestsInFlight(t0, ms);
  const transactions = outbox.__transactionsCommitted() - tx0;
  probe.close();
  await outbox.close();
  await dropDb(name);
  if (report.acked !== n) throw new Error(`outbox drain acked ${report.acked} of ${n}: ${JSON.stringify(report)}`);
  return { ms, transactions, barrierRounds, failed: report.failed, inFlight };
}

// ------------------------------------------------------------------------------------------------
// 7. Peers: @tanstack/offline-transactions and workbox-background-sync's Queue
// ------------------------------------------------------------------------------------------------

let tanstackLib;
let workboxLib;

/** An online detector the benchmark switches: offline while enqueueing, online to drain. */
class SwitchedOnline {
  online = false;
  listeners = new Set();
  subscribe(callback) {
    this.listeners.add(callback);
    return () => this.listeners.delete(callback);
  }
  notifyOnline() {
    for (const callback of this.listeners) callback();
  }
  isOnline() {
    return this.online;
  }
  dispose() {
    this.listeners.clear();
  }
  goOnline() {
    this.online = true;
    this.notifyOnline();
  }
}

/** Each sample has its own executor and database; Web Locks leader election would make them queue up. */
const soloLeader = {
  requestLeadership: async () => true,
  releaseLeadership() {},
  isLeader: () => true,
  onLeadershipChange: () => () => {},
};

/**
 * A TanStack offline executor over its own IndexedDBAdapter, offline, with n transactions created in one task
 * (one insert each). Resolves when all n are persisted: the adapter's `set` promise is TanStack's durability
 * point (it resolves on the put request's success; the library does not wait for the transaction's
 * `complete`, which flatters it slightly).
 */
async function tanstackFill(n, send) {
  tanstackLib ??= await import('./vendor/peers/tanstack.js');
  const T = tanstackLib;
  const dbName = uniq('tanstack');
  const storage = new T.IndexedDBAdapter(dbName, 'transactions');
  let persisted = 0;
  let onPersisted = () => {};
  const set = storage.set.bind(storage);
  storage.set = async (key, value) => {
    await set(key, value);
    persisted++;
    onPersisted();
  };
  const notes = T.createCollection(T.localOnlyCollectionOptions({ id: uniq('notes'), getKey: (item) => item.id }));
  const online = new SwitchedOnline();
  const executor = T.startOfflineExecutor({
    collections: { notes },
    storage,
    leaderElection: soloLeader,
    onlineDetector: online,
    jitter: false,
    mutationFns: {
      sync: async ({ transaction, idempotencyKey }) => {
        if (!send) throw new Error('this executor never sends');
        for (const m of transaction.mutations) {
          const res = await putRequest(m.key, idempotencyKey, m.modified);
          await res.json();
          if (!res.ok) throw new T.NonRetriableError(`HTTP ${res.status}`);
        }
      },
    },
  });
  await executor.waitForInit();
  const allPersisted = new Promise((resolve) => {
    onPersisted = () => persisted >= n && resolve();
  });
  const tag = uniq('t');
  const t0 = now();
  const commits = new Array(n);
  const transactions = new Array(n);
  for (let i = 0; i < n; i++) {
    const tx = executor.createOfflineTransaction({ mutationFnName: 'sync', autoCommit: false });
    tx.mutate(() => notes.insert({ id: `${tag}-${i}`, ...doc(i) }));
    commits[i] = tx.commit();
    commits[i].catch(() => {});
    transactions[i] = tx;
  }
  await allPersisted;
  const ms = now() - t0;
  const cleanup = async () => {
    executor.dispose();
    (await storage.openDB?.())?.close();
    await dropDb(dbName);
  };
  return { ms, executor, online, commits, transactions, cleanup };
}

export async function tanstackBurst({ n }) {
  const { ms, cleanup, transactions } = await tanstackFill(n, false);
  // The n transactions never send (offline). Left pending, they would stay in TanStack DB's global
  // transaction list and slow every later sample on this page; rolling them back removes them.
  // (Their commit promises stay pending: a commit waits for a send that never comes.)
  for (const tx of transactions) tx.rollback();
  await cleanup();
  return { ms, transactions: n };
}

export async function tanstackDrain({ n }) {
  const { online, commits, cleanup } = await tanstackFill(n, true);
  const t0 = now();
  online.goOnline();
  // A commit resolves after the send and the outbox removal (TanStack's FIFO executor, one at a time).
  const results = await Promise.allSettled(commits);
  const ms = now() - t0;
  await cleanup();
  const failed = results.filter((r) => r.status === 'rejected').length;
  if (failed) throw new Error(`tanstack drain: ${failed} of ${n} failed`);
  return { ms };
}

/**
 * workbox-background-sync's Queue is made for a service worker: its constructor reads
 * `self.registration`. In a window there is none, so the page provides an empty one (no `sync` manager)
 * and the queue runs with `forceSyncFallback`, which replays only when asked: `replayRequests()`.
 */
async function workboxQueue() {
  workboxLib ??= await import('./vendor/peers/workbox.js');
  if (!('registration' in self)) Object.defineProperty(self, 'registration', { value: {}, configurable: true });
  return new workboxLib.Queue(uniq('wb'), { forceSyncFallback: true, onSync: async () => {} });
}

function workboxPush(queue, n) {
  const tag = uniq('w');
  const pushed = new Array(n);
  for (let i = 0; i < n; i++) {
    const o = op(i, tag);
    const request = new Request(`${API}/docs/notes/${encodeURIComponent(o.key)}`, {
      method: 'PUT',
      headers: { 'Content-Type': 'application/json', 'Idempotency-Key': `"${crypto.randomUUID()}"` },
      body: JSON.stringify(o.value),
    });
    pushed[i] = queue.pushRequest({ request });
  }
  return Promise.all(pushed);
}

export async function workboxBurst({ n }) {
  const queue = await workboxQueue();
  await queue.size(); // opens the queue's database outside the timing
  const t0 = now();
  await workboxPush(queue, n);
  const ms = now() - t0;
  // The entries stay in workbox's shared database (emptying it would take n more transactions per sample);
  // each queue only ever reads its own entries, through an index on the queue name.
  return { ms, transactions: n };
}

export async function workboxDrain({ n }) {
  const queue = await workboxQueue();
  await workboxPush(queue, n);
  const t0 = now();
  await queue.replayRequests(); // per request: one readwrite transaction (shift), then the fetch
  const ms = now() - t0;
  const left = await queue.size();
  if (left) throw new Error(`workbox drain left ${left} requests`);
  return { ms };
}

// ------------------------------------------------------------------------------------------------
// Diagnostics: boundary crossings and transactions per op (not timed; counting wrappers slow calls down)
// ------------------------------------------------------------------------------------------------

const crossings = { exportCalls: 0, importCalls: 0, byImport: new Map(), byExport: new Map() };

/** Wraps the wasm module's imports and exports with counters. Must run before the module is instantiated. */
export function installCrossingCounter() {
  const original = WebAssembly.instantiateStreaming;
  WebAssembly.instantiateStreaming = async (source, imports) => {
    const counted = {};
    for (const [mod, fns] of Object.entries(imports)) {
      counted[mod] = {};
      for (const [name, fn] of Object.entries(fns)) {
        counted[mod][name] =
          typeof fn === 'function'
            ? function (...args) {
                crossings.importCalls++;
                const label = name.replace(/_[0-9a-f]{16}$/, '');
                crossings.byImport.set(label, (crossings.byImport.get(label) ?? 0) + 1);
                return fn.apply(this, args);
              }
            : fn;
      }
    }
    const { instance, module } = await original.call(WebAssembly, source, counted);
    const exports = {};
    for (const [name, value] of Object.entries(instance.exports)) {
      exports[name] =
        typeof value === 'function'
          ? (...args) => {
              crossings.exportCalls++;
              crossings.byExport.set(name, (crossings.byExport.get(name) ?? 0) + 1);
              return value(...args);
            }
          : value;
    }
    return { instance: { exports }, module };
  };
}

function resetCrossings() {
  crossings.exportCalls = 0;
  crossings.importCalls = 0;
  crossings.byImport.clear();
  crossings.byExport.clear();
}

function crossingReport(n) {
  const top = (map) =>
    [...map.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 8)
      .map(([name, count]) => ({ name, perOp: +(count / n).toFixed(2) }));
  return {
    jsToWasmPerOp: +(crossings.exportCalls / n).toFixed(2),
    wasmToJsPerOp: +(crossings.importCalls / n).toFixed(2),
    topImports: top(crossings.byImport),
    topExports: top(crossings.byExport),
  };
}

/** Crossings and transactions per op for a burst, single enqueues, a single-op drain and a push drain. */
export async function countCrossings({ n, durability }) {
  await ready();
  const out = {};
  const tag = uniq('x');

  let outbox = await Outbox.open({ name: uniq('x-burst'), transport: async () => [], autoDrain: false, durability });
  resetCrossings();
  let tx0 = outbox.__transactionsCommitted();
  await Promise.all(Array.from({ length: n }, (_, i) => outbox.enqueue(op(i, tag))));
  out.burstEnqueue = { ...crossingReport(n), transactionsPerOp: +((outbox.__transactionsCommitted() - tx0) / n).toFixed(3) };
  resetCrossings();
  tx0 = outbox.__transactionsCommitted();
  const k = Math.min(n, 50);
  for (let i = 0; i < k; i++) await outbox.enqueue(op(n + i, tag));
  out.singleEnqueue = { ...crossingReport(k), transactionsPerOp: +((outbox.__transactionsCommitted() - tx0) / k).toFixed(3) };
  resetCrossings();
  outbox.status();
  out.status = crossingReport(1);
  await outbox.close();

  // Restoring n pending ops: open → status() on the database just written.
  {
    const name = uniq('x-restore');
    outbox = await Outbox.open({ name, transport: async () => [], autoDrain: false, durability });
    await Promise.all(Array.from({ length: n }, (_, i) => outbox.enqueue(op(i, `${tag}-r`))));
    await outbox.close();
    resetCrossings();
    outbox = await Outbox.open({ name, transport: async () => [], autoDrain: false, durability });
    outbox.status();
    out.coldRestore = { ...crossingReport(n), transactionsPerOp: +(outbox.__transactionsCommitted() / n).toFixed(3) };
    await outbox.close();
    await dropDb(name);
  }

  for (const [label, batch] of [['drainSingle', false], ['drainPush', true]]) {
    const name = uniq(`x-${label}`);
    outbox = await Outbox.open({ name, endpoint: API, autoDrain: false, durability, batch, ...(batch ? { maxBatchOps: 100 } : {}) });
    await Promise.all(Array.from({ length: n }, (_, i) => outbox.enqueue(op(i, `${tag}-${label}`))));
    const probe = await openExisting(name);
    resetCrossings();
    tx0 = outbox.__transactionsCommitted();
    await outbox.drain();
    await opsStoreEmpty(probe);
    out[label] = { ...crossingReport(n), transactionsPerOp: +((outbox.__transactionsCommitted() - tx0) / n).toFixed(3) };
    probe.close();
    await outbox.close();
    await dropDb(name);
  }
  return out;
}

export const ping = () => 'pong';

if (new URLSearchParams(location.search).has('count')) installCrossingCounter();
window.bench = {
  rawBurst,
  outboxBurst,
  rawSingle,
  outboxSingle,
  hasOptimisticView,
  outboxVisibility,
  rawDrain,
  outboxDrain,
  ...cold,
  tanstackBurst,
  tanstackDrain,
  workboxBurst,
  workboxDrain,
  countCrossings,
  ping,
  ...tabs,
};
document.getElementById('state').textContent = 'ready';
