#!/usr/bin/env node
// A quick page timing of enqueue against raw IndexedDB, in the same headless Chromium run, with a
// persistent profile so IndexedDB is on disk. Not the benchmark runner (that is bench's own issue): just the
// two figures the runtime needs. Run after `make build` and a build of the server:
//
//   node bench/quick-enqueue.mjs [rounds]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { CHROMIUM_ARGS } from '../tests/e2e/support/browser.mjs';
import { startServer } from '../tests/e2e/support/server.mjs';

const rounds = Number(process.argv[2] ?? 7);
const profile = mkdtempSync(join(tmpdir(), 'outbox-bench-'));
const server = await startServer();
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
  args: CHROMIUM_ARGS,
});
try {
  const page = await context.newPage();
  await page.goto(server.url);
  const results = await page.evaluate(async (rounds) => {
    const { Outbox, ready } = await import('outbox-sync');
    await ready();
    const openRaw = (name) =>
      new Promise((resolve, reject) => {
        const req = indexedDB.open(name, 1);
        req.onupgradeneeded = () => req.result.createObjectStore('ops');
        req.onsuccess = () => resolve(req.result);
        req.onerror = () => reject(req.error);
      });
    const rawPut = (db, items, durability) =>
      new Promise((resolve, reject) => {
        const tx = db.transaction('ops', 'readwrite', { durability });
        for (const [k, v] of items) tx.objectStore('ops').put(v, k);
        tx.oncomplete = resolve;
        tx.onerror = () => reject(tx.error);
      });
    const value = (i) => ({ collection: 'notes', key: `k${i}`, op: 'put', value: { title: `note ${i}`, n: i } });
    const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const out = {};
    for (const durability of ['relaxed', 'strict']) {
      const t = { rawBurst: [], outboxBurst: [], rawOneByOne: [], outboxOneByOne: [] };
      for (let r = 0; r < rounds; r++) {
        const db = await openRaw(`raw-${durability}-${r}-${Math.random()}`);
        let t0 = performance.now();
        await rawPut(db, Array.from({ length: 1000 }, (_, i) => [`k${i}`, JSON.stringify(value(i))]), durability);
        t.rawBurst.push(performance.now() - t0);
        t0 = performance.now();
        for (let i = 0; i < 100; i++) await rawPut(db, [[`one${i}`, JSON.stringify(value(i))]], durability);
        t.rawOneByOne.push(performance.now() - t0);
        db.close();

        const outbox = await Outbox.open({
          name: `outbox-${durability}-${r}-${Math.random()}`,
          transport: async () => [],
          autoDrain: false,
          durability,
        });
        t0 = performance.now();
        await Promise.all(Array.from({ length: 1000 }, (_, i) => outbox.enqueue(value(i))));
        t.outboxBurst.push(performance.now() - t0);
        t0 = performance.now();
        for (let i = 0; i < 100; i++) await outbox.enqueue(value(1000 + i));
        t.outboxOneByOne.push(performance.now() - t0);
        await outbox.close();
      }
      out[durability] = Object.fromEntries(Object.entries(t).map(([k, xs]) => [k, median(xs)]));
    }
    return out;
  }, rounds);
  console.log(`median of ${rounds} rounds, ms (ratio = raw / outbox: above 1 means outbox-sync is faster)`);
  for (const [durability, t] of Object.entries(results)) {
    const f = (x) => x.toFixed(1).padStart(7);
    console.log(
      `${durability.padEnd(8)} 1,000 in one task: raw ${f(t.rawBurst)}  outbox ${f(t.outboxBurst)}  ratio ${(t.rawBurst / t.outboxBurst).toFixed(2)}`,
    );
    console.log(
      `${''.padEnd(8)} 100 one by one:    raw ${f(t.rawOneByOne)}  outbox ${f(t.outboxOneByOne)}  ratio ${(t.rawOneByOne / t.outboxOneByOne).toFixed(2)}`,
    );
  }
} finally {
  await context.close();
  await server.close();
  rmSync(profile, { recursive: true, force: true });
}
