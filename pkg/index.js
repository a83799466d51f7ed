// The package entry point. The WebAssembly module loads on first use, so `Outbox.open` is the first call
// an app makes: there is no separate init step to forget.
import init, { Outbox, coreVersion, version } from './wasm/outbox_sync.js';
import { SyncError } from './wasm/sync-error.js';

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

const openLoaded = Outbox.open;
Outbox.open = async function open(options) {
  await ready();
  return openLoaded.call(Outbox, options);
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
