// Compiled with `tsc --strict --noEmit` by `make test`: the package's types as a user meets them. Each
// `@ts-expect-error` line is misuse that must NOT compile; if it ever compiles, tsc fails the build.
import {
  Outbox,
  SyncError,
  ready,
  version,
  type DrainReport,
  type EnqueueResult,
  type JsonValue,
  type OpOutcome,
  type OpSnapshot,
  type OutboxOptions,
  type SyncErrorCode,
  type SyncEvent,
  type SyncEventType,
  type SyncStatus,
  type TransportResult,
} from "../../pkg/index.js";
import {
  SyncStatusElement,
  describeSyncStatus,
  syncStatusState,
  type SyncStatusActionDetail,
  type SyncStatusDisplayState,
} from "../../pkg/sync-status.js";

export async function useTheWholeApi(): Promise<void> {
  await ready();
  const v: string = version();

  const options: OutboxOptions = {
    name: "notes",
    endpoint: "/api",
    clientId: "device-42", // optional: by default a UUID kept in IndexedDB
    batch: true,
    durability: "strict",
    retry: { baseMs: 500, capMs: 30_000, maxAttempts: 10 },
    auth: async ({ refresh }) => ({ Authorization: refresh ? "Bearer new" : "Bearer old" }),
    route: (op) => ({ method: "PUT", url: `/api/${op.collection}/${op.key}` }),
  };
  const outbox: Outbox = await Outbox.open(options);

  const custom = await Outbox.open({
    name: "rpc",
    transport: async (batch): Promise<TransportResult[]> =>
      batch.ops.map((op) => ({ id: op.id, status: 200, headers: { ETag: `"${op.attempt}"` } })),
  });

  const put: EnqueueResult = await outbox.enqueue({ collection: "notes", key: "1", op: "put", value: { title: "a" } });
  await outbox.enqueue({ collection: "notes", key: "1", op: "patch", value: { done: true }, baseVersion: "3" });
  await outbox.enqueue({ collection: "notes", key: "1", op: "delete" });
  await custom.enqueue({ collection: "notes", key: "1", op: "custom", name: "archive", value: null });

  const report: DrainReport = await outbox.drain();
  const remaining: number = report.remaining + report.acked + report.retried + report.failed + report.conflicts;

  const status: SyncStatus = outbox.status();
  switch (status.state) {
    case "restoring": // only `options.onStatus` hears it, before `open` resolves
    case "idle":
    case "syncing":
    case "offline":
    case "paused":
    case "error":
      break;
    case "blocked": {
      const until: number | null = status.blockedUntil;
      void until;
      break;
    }
    case "stalled": {
      const why: string | undefined = status.storageError?.message;
      void why;
      break;
    }
    case "retrying": {
      const next: number | null = status.nextAttemptAt;
      const left: number | null = status.progress && status.progress.total - status.progress.current;
      void next;
      void left;
      break;
    }
    default: {
      const exhaustive: never = status.state;
      void exhaustive;
    }
  }

  const off = outbox.subscribe((s: SyncStatus) => void s.pending); // called at once, then on every change
  const { acked } = await outbox.enqueue({ collection: "notes", key: "2", op: "delete" });
  const outcome: OpOutcome = await acked;
  const again: OpOutcome = await outbox.settled(put.id);
  if (outcome.state === "acked" && again.state === "conflict") {
    const doc: JsonValue | undefined = outcome.doc;
    const server: JsonValue | undefined = again.serverDoc;
    void doc;
    void server;
  }
  const stopFailed = outbox.watchFailed((ops: OpSnapshot[]) => void ops.length);
  const stopConflicts = outbox.watchConflicts((ops: OpSnapshot[]) => void ops.length);
  stopFailed();
  stopConflicts();
  // Events are typed by their name; a name known only at run time gets the whole union.
  const offFailed = outbox.on("failed", (event) => console.warn(event.id, event.error.message));
  const offAcked = outbox.on("acked", (event: SyncEvent) => void event.type);
  const name: SyncEventType | "*" = Math.random() > 0.5 ? "*" : "drained";
  const offAny = outbox.on(name, (event) => void event.type);
  offFailed();
  offAcked();
  offAny();
  const offEvents = outbox.on("*", (event: SyncEvent) => {
    // Events are a discriminated union: narrowing on `type` gives the right fields.
    if (event.type === "acked") {
      const version: string | null = event.version;
      void version;
    } else if (event.type === "retry_scheduled") {
      const at: number = event.at;
      void at;
    } else if (event.type === "unknown") {
      const current: JsonValue = event.serverDoc;
      void current;
    }
  });
  off();
  offEvents();

  const snapshots: OpSnapshot[] = [
    ...(await outbox.pending()),
    ...(await outbox.failed()),
    ...(await outbox.conflicts()),
    ...(await outbox.unknown()),
  ];
  for (const op of snapshots) {
    if (op.state === "failed" && op.maybeApplied) await outbox.retry(op.id);
    if (op.state === "conflict") await outbox.discard(op.id);
    if (op.state === "unknown") await outbox.resolve(op.id, { use: "server" });
  }
  await outbox.retryAll();
  outbox.pause();
  outbox.resume();
  await outbox.close();

  try {
    await outbox.enqueue({ collection: "notes", key: "2", op: "put", value: 1 });
  } catch (error) {
    if (error instanceof SyncError) {
      const code: SyncErrorCode = error.code;
      if (code === "QUOTA_EXCEEDED" || code === "INVALID_OP") {
        console.warn(error.message, error.cause);
      }
    }
  }
  void v;
  void put.idempotencyKey;
  void remaining;
}

export function useTheElement(outbox: Outbox): void {
  // The tag name maps to the class, so no cast is needed.
  const el: SyncStatusElement = document.createElement("sync-status");
  el.outbox = outbox;
  el.inline = true;
  el.outbox = null;
  const found: SyncStatusElement | null = document.querySelector("sync-status");
  const shown: SyncStatus | null = found?.status ?? null;
  if (shown) {
    const text: string = describeSyncStatus(shown, (ms) => new Date(ms).toISOString());
    const state: SyncStatusDisplayState = syncStatusState(shown);
    void text;
    void state;
  }
  el.addEventListener("sync-status-action", (event) => {
    const detail: SyncStatusActionDetail = event.detail;
    if (detail.action === "discard") void detail.id;
  });
  customElements.define("my-status", class extends SyncStatusElement {});
}

export async function showTheRestore(): Promise<void> {
  // The indicator shows the restore of a large queue before `open` resolves, then the outbox itself.
  const el: SyncStatusElement = document.createElement("sync-status");
  const outbox = await Outbox.open({
    name: "notes",
    endpoint: "/api",
    onStatus: (status: SyncStatus) => {
      el.status = status;
      if (status.state === "restoring") void status.progress?.total;
    },
  });
  el.outbox = outbox;
}

export function elementMisuseDoesNotCompile(el: SyncStatusElement, status: SyncStatus): void {
  // @ts-expect-error: `outbox` takes an Outbox, not options
  el.outbox = { name: "notes" };
  // @ts-expect-error: `status` shows a status; it cannot be cleared (set `outbox` to null instead)
  el.status = null;
  // @ts-expect-error: not a display state
  const state: SyncStatusDisplayState = "idle";
  // @ts-expect-error: the formatter gets epoch ms, not a Date
  describeSyncStatus(status, (d: Date) => d.toISOString());
  void state;
}

export async function misuseDoesNotCompile(outbox: Outbox): Promise<void> {
  // @ts-expect-error: `name` is required
  await Outbox.open({ endpoint: "/api" });
  // @ts-expect-error: durability is "relaxed" | "strict"
  await Outbox.open({ name: "x", endpoint: "/api", durability: "fast" });
  // @ts-expect-error: an unknown op kind
  await outbox.enqueue({ collection: "notes", key: "1", op: "upsert", value: 1 });
  // @ts-expect-error: a put needs a value
  await outbox.enqueue({ collection: "notes", key: "1", op: "put" });
  // @ts-expect-error: a custom op needs a name
  await outbox.enqueue({ collection: "notes", key: "1", op: "custom", value: 1 });
  // @ts-expect-error: an unknown event name
  outbox.on("finished", () => {});
  // @ts-expect-error: an ack has no error (events are typed by their name)
  outbox.on("acked", (event) => event.error);
  // @ts-expect-error: not an option (did you mean retry.maxAttempts?)
  await Outbox.open({ name: "x", endpoint: "/api", maxAttempts: 3 });
  // @ts-expect-error: status() is synchronous, not a promise
  await outbox.status().then(() => {});
  const code: SyncErrorCode = "INVALID_OP";
  // @ts-expect-error: not a SyncErrorCode
  const wrong: SyncErrorCode = "NOPE";
  void code;
  void wrong;
}
