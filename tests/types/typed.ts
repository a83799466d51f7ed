// A typed outbox (`Outbox.open<Schema>()`) as a user meets it, compiled with `tsc --strict --noEmit` by
// `make test`. Each `@ts-expect-error` line is misuse that must not compile.
import {
  Outbox,
  type CollectionOptions,
  type EnqueueResult,
  type JsonValue,
  type MergePatch,
  type OpInput,
  type OpOutcome,
  type OpSnapshot,
  type OutboxOptions,
  type StandardSchemaV1,
  type SyncEvent,
  type SyncEventOf,
  type ViewItem,
} from "../../pkg/index.js";
import type { SyncStatusElement } from "../../pkg/sync-status.js";

// An interface (no index signature) and a type alias both work as document types.
interface Todo {
  title: string;
  done: boolean;
  tags?: string[];
  due?: { date: string; remind: boolean };
  assignee: string | null;
}
type Note = { text: string };
interface Schema {
  todos: Todo;
  notes: Note;
}

/** A Standard Schema as zod, valibot and arktype expose it (the shape, without the library). */
declare const noteSchema: StandardSchemaV1<Note>;
/** A schema whose output differs from its input (a transform): only the input has to be the document. */
declare const todoSchema: StandardSchemaV1<Todo, { title: string; done: boolean; createdAt: Date }>;

export async function useATypedOutbox(): Promise<void> {
  const outbox: Outbox<Schema> = await Outbox.open<Schema>({
    name: "app",
    endpoint: "/api",
    collections: {
      todos: {
        conflict: (local, server, op) => {
          // `local` is what the op carries: for a patch, the patch.
          if (op.op !== "patch" || server === null) return { use: "server" };
          const patch = local as MergePatch<Todo>;
          return { use: "merged", value: { ...server, title: patch.title ?? server.title } };
        },
        validate: (todo) => todo.title.trim() !== "",
      },
      notes: { conflict: "manual", validate: noteSchema },
    },
  });

  const put: EnqueueResult<Todo> = await outbox.enqueue({
    collection: "todos",
    key: "t1",
    op: "put",
    value: { title: "Milk", done: false, assignee: null },
  });
  // A merge patch: members optional, nested objects partial, `null` removes an optional member.
  await outbox.enqueue({ collection: "todos", key: "t1", op: "patch", value: { done: true, tags: null } });
  await outbox.enqueue({ collection: "todos", key: "t1", op: "patch", value: { due: { remind: false } } });
  await outbox.enqueue({ collection: "notes", key: "n1", op: "delete" });
  await outbox.enqueue({ collection: "notes", key: "n1", op: "custom", name: "archive", value: { at: 1 } });
  // Versions are opaque strings; a quoted one compiles and is refused at run time (INVALID_OP).
  await outbox.enqueue({ collection: "notes", key: "n1", op: "put", value: { text: "x" }, baseVersion: '"3"' });
  await outbox.enqueue({ collection: "notes", key: "n1", op: "put", value: { text: "x" }, baseVersion: "3" });

  const outcome: OpOutcome<Todo> = await put.acked;
  if (outcome.state === "acked") {
    const title: string | undefined = outcome.doc?.title;
    const version: string | null | undefined = outcome.version;
    void title;
    void version;
  } else if (outcome.state === "failed") {
    void outcome.error.message;
  } else if (outcome.state === "conflict") {
    void outcome.serverDoc?.done;
  }
  const later = await outbox.settled<"notes">(put.id);
  if (later.state === "acked") void later.doc?.text;
  const any = await outbox.settled(put.id);
  if (any.state === "done" || any.state === "unknown" || any.state === "discarded") void any.state;

  const todo: Todo | undefined = outbox.get("todos", "t1");
  const notes: ViewItem<Note>[] = outbox.list("notes");
  const stop = outbox.watch("todos", (items) => items.map((item) => item.value.title));
  const stopDoc = outbox.watchDoc("notes", "n1", (note) => void note?.text);
  await outbox.ingest("todos", [{ key: "t2", version: 4, value: { title: "Eggs", done: true, assignee: "ann" } }]);
  await outbox.resolve<"todos">("1", { use: "merged", value: { title: "Both", done: true, assignee: null } });
  await outbox.resolve("1", { use: "local" });
  stop();
  stopDoc();

  outbox.on("acked", (event) => {
    // Narrowing on the collection types the server's document.
    if (event.collection === "todos") void event.doc?.done;
    else void event.doc?.text;
  });
  outbox.on("failed", (event) => console.warn(event.key, event.error.message));
  outbox.on("conflict", (event) => void event.resolution);
  outbox.on("*", (event: SyncEvent<Schema>) => {
    if (event.type === "unknown" && event.collection === "notes") void event.serverDoc?.text;
  });
  const onFailed = (event: SyncEventOf<"failed", Schema>): void => void event.error.code;
  outbox.on("failed", onFailed);

  const stopFailed = outbox.watchFailed((ops: OpSnapshot[]) => void ops.length);
  const stopConflicts = outbox.watchConflicts((ops) => ops.map((op) => op.serverVersion));
  stopFailed();
  stopConflicts();

  // Options typed ahead of time carry the schema.
  const options: OutboxOptions<Schema> = { name: "app", transport: async () => [], collections: { notes: {} } };
  const fromOptions: Outbox<Schema> = await Outbox.open(options);
  void fromOptions;

  // An op built ahead of time, and the patch type on its own.
  const op: OpInput<Schema> = { collection: "notes", key: "n2", op: "put", value: { text: "y" } };
  await outbox.enqueue(op);
  const patch: MergePatch<Todo> = { due: { date: "2025-01-01" }, assignee: "bob" };
  const settings: CollectionOptions<Todo> = { validate: todoSchema, versioned: false };

  // A typed outbox goes wherever any outbox does (`Outbox<any>`), the element included.
  const el: SyncStatusElement = document.createElement("sync-status");
  el.outbox = outbox;
  const anyOutbox: Outbox<any> = outbox;
  void anyOutbox;
  void todo;
  void notes;
  void patch;
  void settings;
}

export async function typedMisuseDoesNotCompile(outbox: Outbox<Schema>): Promise<void> {
  // @ts-expect-error: a todo's title is a string
  await outbox.enqueue({ collection: "todos", key: "t1", op: "put", value: { title: 1, done: false, assignee: null } });
  // @ts-expect-error: a put is the whole document (`done` is missing)
  await outbox.enqueue({ collection: "todos", key: "t1", op: "put", value: { title: "a", assignee: null } });
  // @ts-expect-error: a member no todo has
  await outbox.enqueue({ collection: "todos", key: "t1", op: "patch", value: { colour: "red" } });
  // @ts-expect-error: `null` would remove a required member
  await outbox.enqueue({ collection: "todos", key: "t1", op: "patch", value: { title: null } });
  // @ts-expect-error: a delete has no value
  await outbox.enqueue({ collection: "todos", key: "t1", op: "delete", value: null });
  // @ts-expect-error: not a collection of the schema
  await outbox.enqueue({ collection: "todo", key: "t1", op: "delete" });
  // @ts-expect-error: not a collection of the schema
  outbox.get("tasks", "t1");
  // @ts-expect-error: a note is not a todo
  const wrong: Todo | undefined = outbox.get("notes", "n1");
  // @ts-expect-error: an ack has no error
  outbox.on("acked", (event) => event.error);
  // @ts-expect-error: ingested documents are typed too
  await outbox.ingest("notes", [{ key: "n1", version: 1, value: { title: "x" } }]);
  // @ts-expect-error: the merged document is typed by the collection named
  await outbox.resolve<"notes">("1", { use: "merged", value: { title: "x" } });
  void wrong;
}

export async function optionMisuseDoesNotCompile(): Promise<void> {
  // @ts-expect-error: not an option (the retry policy is `retry: { maxAttempts }`)
  await Outbox.open({ name: "x", endpoint: "/api", retries: 3 });
  // @ts-expect-error: not a retry option
  await Outbox.open({ name: "x", endpoint: "/api", retry: { maxAttempt: 3 } });
  // @ts-expect-error: not a pull option
  await Outbox.open({ name: "x", endpoint: "/api", pull: { interval: 20_000 } });
  // @ts-expect-error: not a collection option
  await Outbox.open({ name: "x", endpoint: "/api", collections: { notes: { strategy: "manual" } } });
  // @ts-expect-error: endpoint and transport are exclusive
  await Outbox.open({ name: "x", endpoint: "/api", transport: async () => [] });
  // @ts-expect-error: a custom transport does not use the fetch transport's options
  await Outbox.open({ name: "x", transport: async () => [], timeoutMs: 1000 });
  // @ts-expect-error: an unknown collection in a typed outbox's settings
  await Outbox.open<Schema>({ name: "x", endpoint: "/api", collections: { tasks: { conflict: "manual" } } });
  await Outbox.open<Schema>({
    name: "x",
    endpoint: "/api",
    // @ts-expect-error: the validator gets a todo
    collections: { todos: { validate: (todo: Note) => todo.text !== "" } },
  });
  // @ts-expect-error: a schema of notes cannot validate todos
  await Outbox.open<Schema>({ name: "x", endpoint: "/api", collections: { todos: { validate: noteSchema } } });
  // Without a schema, collection settings take any name and options stay as they were.
  const plain = await Outbox.open({ name: "x", endpoint: "/api", collections: { anything: { versioned: false } } });
  const doc: JsonValue | undefined = plain.get("whatever", "k");
  await plain.enqueue({ collection: "whatever", key: "k", op: "put", value: { any: ["json", 1] } });
  void doc;
}
