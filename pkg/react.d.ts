// outbox-sync/react: React hooks over an Outbox (React 18 or later). Each returns a snapshot that keeps its
// identity until the outbox reports a change, accepts `null` / `undefined` while the outbox is opening, and
// keeps its last snapshot once the outbox is closed. Documents are typed by the outbox's schema
// (`Outbox.open<{ notes: Note }>(…)`); an untyped outbox gives `JsonValue`.
import type { CollectionName, OpSnapshot, Outbox, OutboxSchema, SyncStatus, ViewItem } from "./index.js";

/** The outbox's status, updated on every change; `null` without an outbox. */
export function useSyncStatus(outbox: Outbox<any> | null | undefined): SyncStatus | null;

/** One document as the user sees it (`outbox.get`); `undefined` when it does not exist or without an outbox. */
export function useDoc<S extends OutboxSchema, C extends CollectionName<S>>(
  outbox: Outbox<S> | null | undefined,
  collection: C,
  key: string,
): S[C] | undefined;

/** A collection as the user sees it (`outbox.list`), ordered by key; `[]` without an outbox. */
export function useList<S extends OutboxSchema, C extends CollectionName<S>>(
  outbox: Outbox<S> | null | undefined,
  collection: C,
): readonly ViewItem<S[C]>[];

/** The ops the server refused for good (`outbox.failed()`); `[]` until the first snapshot is read. */
export function useFailed(outbox: Outbox<any> | null | undefined): readonly OpSnapshot[];

/** The ops held in conflict (`outbox.conflicts()`); `[]` until the first snapshot is read. */
export function useConflicts(outbox: Outbox<any> | null | undefined): readonly OpSnapshot[];
