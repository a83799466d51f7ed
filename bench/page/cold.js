// The page side of the cold-start phase (bench/cold.mjs drives it): every sample runs in a freshly loaded
// page, so a sample pays for a new wasm instance, as an app's first page load does.
//
// Besides the time, each outbox sample reports the size of the wasm linear memory once `status()` has
// answered: the memory a page really holds for the restored queue (it only grows, in 64 KiB pages, and its
// peak during the restore is what stays). An empty outbox opened the same way gives the base to subtract.
import init from './vendor/outbox-sync/wasm/outbox_sync.js';
import { Outbox } from 'outbox-sync';
import { WASM_URL, now, op, openExisting, request, timed, uniq, untimed, dropDb } from './common.js';

/** How many ops one seeding burst enqueues: big enough to batch, small enough not to hold 100k promises. */
const SEED_CHUNK = 5_000;

/** Writes `n` pending ops into the outbox database `name` (through the outbox, so the records are real). */
export async function seedCold({ name, n, durability }) {
  const outbox = await Outbox.open({ name, transport: async () => [], autoDrain: false, durability });
  const tag = uniq('c');
  for (let from = 0; from < n; from += SEED_CHUNK) {
    const to = Math.min(n, from + SEED_CHUNK);
    await Promise.all(Array.from({ length: to - from }, (_, i) => outbox.enqueue(op(from + i, tag))));
  }
  const pending = outbox.status().pending;
  await outbox.close();
  return { pending };
}

/** The wasm instance's linear memory in bytes. `init()` hands back the exports of the instance the package
 * already made (it instantiates once per page). */
const wasmMemoryBytes = async () => (await init()).memory.buffer.byteLength;

/** Open → status(), and when the first status came through `onStatus` (the restore's, before `open`
 * resolves) and what it said: its state and how many records had been read then. */
export async function outboxCold({ name, durability }) {
  let first = null;
  const t0 = timed();
  const onStatus = (status) => {
    first ??= { firstMs: now() - t0, firstState: status.state, firstRead: status.progress?.current ?? null };
  };
  const outbox = await Outbox.open({ name, transport: async () => [], autoDrain: false, durability, onStatus });
  const status = outbox.status();
  const ms = untimed(t0);
  const transactions = outbox.__transactionsCommitted();
  const memoryBytes = await wasmMemoryBytes();
  await outbox.close();
  return { ms, pending: status.pending, transactions, memoryBytes, ...first };
}

/** The base of the memory figure: an outbox with nothing stored, opened in a fresh page like the samples. */
export async function outboxEmpty({ durability }) {
  const name = uniq('cold-empty');
  const outbox = await Outbox.open({ name, transport: async () => [], autoDrain: false, durability });
  const pending = outbox.status().pending;
  const memoryBytes = await wasmMemoryBytes();
  await outbox.close();
  await dropDb(name);
  return { pending, memoryBytes };
}

/** The baseline: compile and instantiate the same .wasm (imports stubbed: instantiation calls none of them),
 * open the same database and getAll its op records. */
export async function rawCold({ name }) {
  const t0 = now();
  const module = await WebAssembly.compileStreaming(fetch(WASM_URL));
  const imports = {};
  for (const imp of WebAssembly.Module.imports(module)) {
    if (imp.kind !== 'function') throw new Error(`unexpected ${imp.kind} import ${imp.module}.${imp.name}`);
    (imports[imp.module] ??= {})[imp.name] = () => {
      throw new Error('stub');
    };
  }
  await WebAssembly.instantiate(module, imports);
  const db = await openExisting(name);
  const records = await request(db.transaction('ops', 'readonly').objectStore('ops').getAll());
  const ms = now() - t0;
  db.close();
  return { ms, pending: records.length };
}

export const dropDatabase = ({ name }) => dropDb(name);
