// The optimistic-view API as a user meets it, compiled with `tsc --strict --noEmit` by `make test`.
// Each `@ts-expect-error` line is misuse that must not compile.
import {
  Outbox,
  type ConflictResolver,
  type JsonValue,
  type PullReport,
  type Resolution,
  type ViewItem,
} from "../../pkg/index.js";

export async function useTheView(): Promise<void> {
  const merge: ConflictResolver = (local, server) => ({
    use: "merged",
    value: { ...(server as Record<string, JsonValue>), ...(local as Record<string, JsonValue>) },
  });
  const outbox = await Outbox.open({
    name: "notes",
    endpoint: "/api",
    collections: {
      notes: { conflict: "manual" },
      drafts: { conflict: merge, versioned: true },
      logs: { conflict: "client-wins", versioned: false },
    },
    pull: { intervalMs: 20_000, onFocus: true, limit: 200 },
  });

  const note: JsonValue | undefined = outbox.get("notes", "n1");
  const items: ViewItem[] = outbox.list("notes");
  const titles = items.map((item) => `${item.key}@${item.version ?? "local"} (${item.pending} pending)`);
  const stopList = outbox.watch("notes", (all: ViewItem[]) => void all.length);
  const stopDoc = outbox.watchDoc("notes", "n1", (value: JsonValue | undefined) => void value);
  stopList();
  stopDoc();

  await outbox.ingest("notes", [
    { key: "n2", version: 3, value: { title: "loaded elsewhere" } },
    { key: "n3", version: "7", deleted: true },
  ]);
  const report: PullReport = await outbox.pull();
  if (report.skipped === "offline") console.info("will pull when back online");

  for (const held of await outbox.conflicts()) {
    const choice: Resolution =
      held.serverDoc === undefined ? { use: "local" } : { use: "merged", value: held.serverDoc };
    await outbox.resolve(held.id, choice);
  }
  outbox.registerMutation("increment", (current, value) => {
    const count = typeof current === "object" && current !== null && !Array.isArray(current) ? current.count : 0;
    return { count: Number(count) + Number(value) };
  });
  void note;
  void titles;
}

export async function viewMisuseDoesNotCompile(outbox: Outbox): Promise<void> {
  // @ts-expect-error: not a strategy
  await Outbox.open({ name: "x", endpoint: "/api", collections: { notes: { conflict: "newest-wins" } } });
  // @ts-expect-error: a merged resolution needs its value
  await outbox.resolve("id", { use: "merged" });
  // @ts-expect-error: ingest needs versions
  await outbox.ingest("notes", [{ key: "a", value: 1 }]);
  // @ts-expect-error: get is synchronous
  await outbox.get("notes", "a").then(() => {});
}
