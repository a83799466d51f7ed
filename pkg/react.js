// outbox-sync/react: React hooks over an Outbox, built on useSyncExternalStore.
//
//   import { useSyncStatus, useList } from 'outbox-sync/react';
//
// Each hook keeps a cached snapshot that changes only when the outbox reports a change (React requires
// getSnapshot to return the same value until then), takes `null` / `undefined` for an outbox still opening,
// and keeps showing its last snapshot once the outbox is closed instead of throwing in render.
import { useMemo, useSyncExternalStore } from 'react';
import { SyncError } from './wasm/sync-error.js';

/** The one empty list every list hook returns while there is nothing (the same reference every time). */
const EMPTY = Object.freeze([]);
const UNSET = Symbol('unset');

/**
 * Errors that mean "the outbox cannot be read any more" rather than a mistake in the app: closed, or stopped
 * after an internal error (which reports itself). The hooks keep their last snapshot then; anything else is
 * thrown, so a wrong argument still shows up.
 */
function isGone(error) {
  return error instanceof SyncError && (error.code === 'CLOSED' || error.code === 'INTERNAL');
}

/**
 * A store for useSyncExternalStore. `read()` is the synchronous current value (absent for data only known
 * through the callback), `watch(onChange)` registers and returns an unsubscribe function, `fallback` is the
 * value before anything was read. Values are JSON, so an equal value keeps the previous reference: a
 * watcher that calls back at registration, or one that reports a change that changed nothing, costs no
 * render.
 */
function createStore({ read, watch, fallback }) {
  let value = UNSET;
  let text;
  const set = (next) => {
    if (Array.isArray(next) && next.length === 0) next = EMPTY;
    const nextText = JSON.stringify(next);
    if (value !== UNSET && nextText === text) return false;
    value = next;
    text = nextText;
    return true;
  };
  const tryRead = () => {
    if (!read) return false;
    try {
      return set(read());
    } catch (error) {
      if (isGone(error)) return false;
      throw error;
    }
  };
  return {
    getSnapshot() {
      if (value === UNSET) {
        tryRead();
        if (value === UNSET) set(fallback);
      }
      return value;
    },
    getServerSnapshot: () => fallback,
    subscribe(notify) {
      if (!watch) return () => {};
      let active = true;
      let stop;
      try {
        stop = watch((next) => {
          if (active && set(next)) notify();
        });
      } catch (error) {
        if (!isGone(error)) throw error;
        return () => {};
      }
      // Something may have changed between the render that read the snapshot and this subscription (which
      // React makes in an effect); whether or not the watcher called back at registration, read once more.
      if (tryRead()) notify();
      return () => {
        active = false;
        stop();
      };
    },
  };
}

function useStore(store) {
  return useSyncExternalStore(store.subscribe, store.getSnapshot, store.getServerSnapshot);
}

/** The outbox's status (`outbox.status()`), re-rendering on every change; `null` without an outbox. */
export function useSyncStatus(outbox) {
  const store = useMemo(
    () =>
      createStore(
        outbox
          ? { read: () => outbox.status(), watch: (onChange) => outbox.subscribe(onChange), fallback: null }
          : { fallback: null },
      ),
    [outbox],
  );
  return useStore(store);
}

/** One document as the user sees it (`outbox.get(collection, key)`); `undefined` when absent or without an outbox. */
export function useDoc(outbox, collection, key) {
  const store = useMemo(
    () =>
      createStore(
        outbox
          ? {
              read: () => outbox.get(collection, key),
              watch: (onChange) => outbox.watchDoc(collection, key, onChange),
              fallback: undefined,
            }
          : { fallback: undefined },
      ),
    [outbox, collection, key],
  );
  return useStore(store);
}

/** A collection as the user sees it (`outbox.list(collection)`): `[{ key, value, version, pending }]`. */
export function useList(outbox, collection) {
  const store = useMemo(
    () =>
      createStore(
        outbox
          ? { read: () => outbox.list(collection), watch: (onChange) => outbox.watch(collection, onChange), fallback: EMPTY }
          : { fallback: EMPTY },
      ),
    [outbox, collection],
  );
  return useStore(store);
}

/** The ops the server refused for good (`outbox.failed()`); `[]` until the first snapshot is read. */
export function useFailed(outbox) {
  const store = useMemo(
    () => createStore(outbox ? { watch: (onChange) => outbox.watchFailed(onChange), fallback: EMPTY } : { fallback: EMPTY }),
    [outbox],
  );
  return useStore(store);
}

/** The ops held in conflict (`outbox.conflicts()`); `[]` until the first snapshot is read. */
export function useConflicts(outbox) {
  const store = useMemo(
    () => createStore(outbox ? { watch: (onChange) => outbox.watchConflicts(onChange), fallback: EMPTY } : { fallback: EMPTY }),
    [outbox],
  );
  return useStore(store);
}
