// The package entry point. The WebAssembly module loads on first use, so `Outbox.open` is the first call
// an app makes: there is no separate init step to forget.
import init, { Outbox, coreVersion, version } from './wasm/outbox_sync.js';
import { SyncError } from './wasm/sync-error.js';
import { FORWARDED, forward, openInTabs, releaseTab, setLocalMethods, tabOf } from './tabs.js';

// The very class Rust constructs its errors from, so `error instanceof SyncError` holds.
export { SyncError };

let loading;

/**
 * Loads and instantiates the wasm module once; every later call returns the same promise. `Outbox.open`
 * calls it for you. Await it yourself only before calling `version()` or `coreVersion()` first.
 */
export function ready() {
  // The loader finds the .wasm next to itself through new URL(..., import.meta.url).
  loading ??= init().then(() => undefined);
  return loading;
}

Outbox.open = async function open(options) {
  await ready();
  // One leader per outbox name sends; every other context follows it (tabs.js).
  return openInTabs((opts, role) => Outbox.__openAs(opts, role), options);
};

// ---------------------------------------------------------------------------------------------------------
// The convenience layer: watchFailed, watchConflicts, settled, and `acked` on enqueue's result. Plain JS on
// the public API (on, failed, conflicts, unknown, pending), so it cannot disagree with what the app sees.

/** The events after which an op may have reached an outcome (what `settled` waits for). */
const OUTCOME_EVENTS = ['acked', 'failed', 'conflict', 'unknown', 'discarded'];

/**
 * The layer's state for one outbox, beside the wasm object rather than on it. `closed` is set the moment
 * `close()` is called, before the wasm side has finished closing, so nothing of this layer calls back after it.
 */
const layers = new WeakMap();
function layerOf(outbox) {
  let layer = layers.get(outbox);
  if (!layer) {
    layer = {
      closed: false,
      /** Functions to run on close(): each stops one watcher or rejects one waiter. */
      onClose: new Set(),
      /** op id → the resolve functions of the `settled` promises waiting for it. */
      waiters: new Map(),
      /** Enqueues not yet durable: their ids are unknown until then, so outcomes are kept for them. */
      enqueuing: 0,
      /** op id → outcome, seen while an enqueue was not yet durable (see `enqueue` below). */
      early: new Map(),
      /** Unsubscribe functions of the shared outcome listeners, while anything waits. */
      listening: null,
    };
    layers.set(outbox, layer);
  }
  return layer;
}

function closedError() {
  return new SyncError('CLOSED', 'the outbox was closed');
}

/** Surfaces an error thrown by an app callback without breaking the outbox (as its own listeners do). */
function report(error) {
  if (typeof globalThis.reportError === 'function') globalThis.reportError(error);
  else queueMicrotask(() => { throw error; });
}

/** The outcome an event means for its op, or undefined when the op goes on (e.g. a client-wins rebase). */
function outcomeOf(event) {
  switch (event.type) {
    case 'acked':
      return { state: 'acked', version: event.version ?? null, doc: event.doc ?? null };
    case 'failed':
      return { state: 'failed', error: event.error };
    case 'conflict':
      // A client-wins conflict rebases the op and sends it again, and a resolver's merge is sent as a new
      // write: it has not settled yet.
      if (event.resolution === 'client-wins' || event.resolution === 'merged') return undefined;
      return { state: 'conflict', serverDoc: event.serverDoc ?? null, serverVersion: event.serverVersion ?? null };
    case 'unknown':
      return { state: 'unknown', serverDoc: event.serverDoc ?? null, serverVersion: event.serverVersion ?? null };
    case 'discarded':
      return { state: 'discarded' };
    default:
      return undefined;
  }
}

/** One listener set per outbox (not one per waiting op), registered only while something waits. */
function listenForOutcomes(outbox, layer) {
  if (layer.listening) return;
  const onEvent = (event) => {
    const outcome = outcomeOf(event);
    if (!outcome) return;
    if (layer.enqueuing > 0) layer.early.set(event.id, outcome);
    const waiting = layer.waiters.get(event.id);
    if (!waiting) return;
    layer.waiters.delete(event.id);
    for (const resolve of waiting) resolve(outcome);
    stopListeningIfIdle(layer);
  };
  const stops = [];
  try {
    for (const type of OUTCOME_EVENTS) stops.push(outbox.on(type, onEvent));
  } catch (error) {
    for (const stop of stops) stop();
    throw error;
  }
  layer.listening = stops;
}

function stopListeningIfIdle(layer) {
  if (!layer.listening || layer.waiters.size > 0 || layer.enqueuing > 0) return;
  for (const stop of layer.listening) stop();
  layer.listening = null;
}

/** Where an op stands in the lists right now: an outcome, 'waiting' (pending or in flight), or 'done'. */
async function currentOutcome(outbox, id) {
  const [failed, conflicts, unknown, pending] = await Promise.all([
    outbox.failed(),
    outbox.conflicts(),
    outbox.unknown(),
    outbox.pending(),
  ]);
  const find = (ops) => ops.find((op) => op.id === id);
  let op;
  if ((op = find(failed))) return { state: 'failed', error: op.lastError ?? null };
  if ((op = find(conflicts))) return { state: 'conflict', serverDoc: op.serverDoc ?? null, serverVersion: op.serverVersion ?? null };
  if ((op = find(unknown))) return { state: 'unknown', serverDoc: op.serverDoc ?? null, serverVersion: op.serverVersion ?? null };
  if (find(pending)) return 'waiting';
  // No longer in the outbox: acked or discarded before we looked (after a reload, say).
  return { state: 'done' };
}

/**
 * The promise behind `settled(id)`. The listeners are registered before the lists are read, so an outcome
 * arriving in between is not missed. `fromEnqueue` holds what `enqueue` knows: the outcome already seen for
 * the op, if any; without one the op is pending (the listeners ran since before it was enqueued), so the
 * lists need no reading, which keeps a burst of enqueues linear.
 */
function settledPromise(outbox, id, fromEnqueue) {
  const layer = layerOf(outbox);
  if (layer.closed) return Promise.reject(closedError());
  return new Promise((resolve, reject) => {
    let done = false;
    const settle = (deliver, value) => {
      if (done) return;
      done = true;
      const waiting = layer.waiters.get(id);
      waiting?.delete(finish);
      if (waiting?.size === 0) layer.waiters.delete(id);
      layer.onClose.delete(fail);
      stopListeningIfIdle(layer);
      deliver(value);
    };
    const finish = (outcome) => settle(resolve, outcome);
    const fail = (error = closedError()) => settle(reject, error);
    if (fromEnqueue?.outcome) return finish(fromEnqueue.outcome);
    try {
      listenForOutcomes(outbox, layer);
    } catch (error) {
      return fail(error); // closed (or broken) on the wasm side already
    }
    if (!layer.waiters.has(id)) layer.waiters.set(id, new Set());
    layer.waiters.get(id).add(finish);
    layer.onClose.add(fail);
    if (fromEnqueue) return;
    currentOutcome(outbox, id).then((outcome) => {
      if (outcome !== 'waiting') finish(outcome);
    }, fail);
  });
}

/**
 * Calls `callback(ops)` with `read()`'s snapshot at once and then whenever one of `types` may have changed
 * it. Reads run one at a time (a burst of events costs one more read, not one each), so an older snapshot
 * never follows a newer one; an identical snapshot is not delivered again.
 */
function watchOps(outbox, read, types, callback) {
  if (typeof callback !== 'function') throw new SyncError('INVALID_CONFIG', 'the callback must be a function');
  const layer = layerOf(outbox);
  if (layer.closed) throw closedError();
  let active = true;
  let dirty = false;
  let reading = false;
  let last;
  const stops = [];
  const stop = () => {
    if (!active) return;
    active = false;
    layer.onClose.delete(stop);
    for (const unsubscribe of stops.splice(0)) unsubscribe();
  };
  const pump = async () => {
    reading = true;
    try {
      while (active && dirty) {
        dirty = false;
        let ops;
        try {
          ops = await read.call(outbox);
        } catch (error) {
          // Closed meanwhile (or the module stopped after a panic, which reports itself): nothing to show.
          if (!(error instanceof SyncError && (error.code === 'CLOSED' || error.code === 'INTERNAL'))) report(error);
          stop();
          return;
        }
        if (!active) return;
        const text = JSON.stringify(ops);
        if (text === last) continue;
        last = text;
        try {
          callback(ops);
        } catch (error) {
          report(error);
        }
      }
    } finally {
      reading = false;
    }
  };
  const refresh = () => {
    if (!active) return;
    dirty = true;
    if (!reading) pump();
  };
  try {
    for (const type of types) stops.push(outbox.on(type, refresh));
  } catch (error) {
    stop();
    throw error;
  }
  layer.onClose.add(stop);
  refresh();
  return stop;
}

Object.defineProperties(Outbox.prototype, {
  // Failed ops change on a failure and a discard; a retry or a resolution moves one out, which changes the
  // status counts.
  watchFailed: method(function watchFailed(callback) {
    return watchOps(this, this.failed, ['failed', 'discarded', 'status_changed'], callback);
  }),
  watchConflicts: method(function watchConflicts(callback) {
    return watchOps(this, this.conflicts, ['conflict', 'discarded', 'status_changed'], callback);
  }),
  settled: method(function settled(id) {
    return settledPromise(this, String(id));
  }),
});

function method(value) {
  return { value, writable: true, configurable: true, enumerable: false };
}

const enqueueDurable = Outbox.prototype.enqueue;
Outbox.prototype.enqueue = function enqueue(op) {
  const layer = layerOf(this);
  // The op's id is known only once it is durable; an outcome for it could in principle arrive before this
  // code sees the id (a custom transport answering within the same task), so outcomes are kept meanwhile.
  let listening = false;
  if (!layer.closed) {
    try {
      listenForOutcomes(this, layer);
      layer.enqueuing++;
      listening = true;
    } catch {
      // Closed on the wasm side: the enqueue itself rejects with the reason below.
    }
  }
  const done = () => {
    if (!listening) return;
    listening = false;
    if (--layer.enqueuing === 0) layer.early.clear();
    stopListeningIfIdle(layer);
  };
  let durable;
  try {
    durable = enqueueDurable.call(this, op);
  } catch (error) {
    done();
    throw error;
  }
  return durable.then(
    (result) => {
      const acked = layer.closed
        ? Promise.reject(closedError())
        : settledPromise(this, result.id, { outcome: layer.early.get(result.id) });
      layer.early.delete(result.id);
      done();
      // An app that never looks at `acked` must not see an unhandled rejection when it closes the outbox;
      // one that awaits it still gets the CLOSED rejection.
      acked.catch(() => {});
      result.acked = acked;
      return result;
    },
    (error) => {
      done();
      throw error;
    },
  );
};

// A follower's commands act on the shared queue: the leader runs them, and the promise settles with its
// answer. `pause` and `resume` stay synchronous: the leader's status (shown here too) tells when they took.
const localMethods = {};
for (const name of FORWARDED) {
  const local = Outbox.prototype[name];
  localMethods[name] = local;
  Outbox.prototype[name] = function (...args) {
    const tab = tabOf(this);
    if (tab?.role !== 'follower' || layerOf(this).closed) return local.apply(this, args);
    const answered = forward(this, tab, name, args);
    if (name === 'pause' || name === 'resume') {
      answered.catch(report);
      return undefined;
    }
    return answered;
  };
}
setLocalMethods(localMethods);

const closeOutbox = Outbox.prototype.close;
Outbox.prototype.close = function close() {
  const tab = tabOf(this);
  tab?.close();
  const layer = layerOf(this);
  if (!layer.closed) {
    layer.closed = true;
    for (const stop of [...layer.onClose]) stop();
    layer.onClose.clear();
    layer.waiters.clear();
    layer.early.clear();
    if (layer.listening) for (const stop of layer.listening.splice(0)) stop();
    layer.listening = null;
  }
  // The lock passes on only after the store is closed: the next leader reads all this context wrote.
  return closeOutbox.call(this).finally(() => releaseTab(tab));
};

// A Rust panic traps the wasm instance. The panic hook rejects every pending promise with
// SyncError("INTERNAL") and makes later calls fail fast; a method that panics synchronously reaches JS as a
// WebAssembly.RuntimeError, which is turned into the same SyncError here.
for (const name of Object.getOwnPropertyNames(Outbox.prototype)) {
  const method = Outbox.prototype[name];
  if (name === 'constructor' || typeof method !== 'function') continue;
  Outbox.prototype[name] = function (...args) {
    try {
      return method.apply(this, args);
    } catch (error) {
      if (error instanceof WebAssembly.RuntimeError) {
        throw new SyncError('INTERNAL', `internal error: ${error.message}`, { cause: error });
      }
      throw error;
    }
  };
}

export { Outbox, coreVersion, version };
