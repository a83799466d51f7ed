// The cold-start phase of bench/run.mjs (`--only cold`):
//
//   5. Cold start: open → status() on a database holding n pending ops, every sample in a freshly loaded page
//      (a new wasm instance), against instantiating the same .wasm, opening the same database and getAll of
//      its op records. Run at two sizes (10k and 100k pending in a full run); the large one with fewer
//      samples, since each sample reads the whole queue.
//   First status: when `options.onStatus` first heard the restore in the same samples, and what it said: the
//      issue's "the app's first status() is answered before every record is parsed" holds when, in every
//      sample, it came before `open` resolved, said `restoring`, and had read no record yet.
//   Memory: the wasm linear memory once status() has answered, minus that of an empty outbox opened the same
//      way, per pending op (bench/page/cold.js says what the figure includes).
import { meets, stats } from './stats.mjs';
import { f2, goalText, mark, mib, ms } from './format.mjs';

/**
 * Seeds one database per size and durability, measures, deletes them; returns the raw samples for
 * `summarizeCold`. `sizes` are `{ n, samples?, warmup? }` (samples and warm-up default to the runner's).
 */
export async function runCold({ open, call, roundRobin, sizes, durabilities, log }) {
  const out = { sizes: [], emptyBytes: {} };
  for (const size of sizes) {
    const names = {};
    for (const d of durabilities) {
      names[d] = `cold-${size.n}-${d}-${Date.now()}`;
      await open();
      const seeded = await call('seedCold', { name: names[d], n: size.n, durability: d });
      if (seeded.pending !== size.n) throw new Error(`seeded ${seeded.pending} of ${size.n} ops`);
    }
    log(`cold start: seeded ${size.n} pending ops per durability`);
    const variants = durabilities.flatMap((d) => [
      { id: `raw.${d}`, fn: 'rawCold', arg: { name: names[d] } },
      { id: `outbox.${d}`, fn: 'outboxCold', arg: { name: names[d], durability: d } },
    ]);
    const measured = await roundRobin(`cold start ${size.n}`, variants, async (v) => {
      await open();
      const r = await call(v.fn, v.arg);
      if (r.pending !== size.n) throw new Error(`${v.id}: found ${r.pending} of ${size.n} pending ops`);
      return r;
    }, undefined, size);
    out.sizes.push({ n: size.n, ...measured });
    await open();
    for (const d of durabilities) await call('dropDatabase', { name: names[d] });
  }
  for (const d of durabilities) {
    await open();
    const empty = await call('outboxEmpty', { durability: d });
    if (empty.pending !== 0) throw new Error(`an empty outbox reported ${empty.pending} pending ops`);
    out.emptyBytes[d] = empty.memoryBytes;
  }
  return out;
}

/** The phase's metrics for one durability: one entry per size, in the order run. */
export function summarizeCold(raw, d, goal) {
  return raw.sizes.map(({ n, samples, facts }) => {
    const o = stats(samples[`outbox.${d}`]);
    const r = stats(samples[`raw.${d}`]);
    const ratio = o.median / r.median;
    const ours = facts[`outbox.${d}`];
    const bytes = stats(ours.map((f) => f.memoryBytes)).median;
    const emptyBytes = raw.emptyBytes[d];
    const early = ours.filter((f, i) => f.firstState === 'restoring' && f.firstRead === 0 && f.firstMs < samples[`outbox.${d}`][i]);
    return {
      pending: n,
      outboxMs: o,
      rawMs: r,
      ratio,
      goal,
      met: meets(goal, ratio),
      firstStatus: {
        ms: stats(ours.map((f) => f.firstMs ?? NaN)),
        states: [...new Set(ours.map((f) => f.firstState ?? 'none'))],
        early: early.length,
        samples: ours.length,
        met: ours.length > 0 && early.length === ours.length,
      },
      memory: { bytes, emptyBytes, bytesPerOp: (bytes - emptyBytes) / n },
    };
  });
}


/** The phase's table rows for one durability (same columns as the runner's table). */
export function coldRows(cold, d) {
  const rows = [];
  const row = (...cells) => rows.push(`| ${cells.join(' | ')} |`);
  for (const c of cold) {
    row(`5. Cold start, ${c.pending} pending ops, open → status() (ours / raw)`, d, ms(c.outboxMs), `instantiate + open + getAll: ${ms(c.rawMs)}`, `${f2(c.ratio)}×`, goalText(c.goal), mark(c.met));
    const f = c.firstStatus;
    row(`5. Cold start, ${c.pending} pending ops, open → first status (options.onStatus)`, d, `${ms(f.ms)}, state ${f.states.join('/')}, 0 records read in ${f.early} of ${f.samples} samples`, `open → status(): ${ms(c.outboxMs)}`, `${f2(f.ms.median / c.outboxMs.median)}×`, 'before any record is read', mark(f.met));
  }
  const perOp = cold.map((c) => `${c.pending}: ${Math.round(c.memory.bytesPerOp)} B/op (${mib(c.memory.bytes)})`).join('; ');
  row('5. wasm memory per pending op after the restore (linear memory − an empty outbox\'s, / ops)', d, perOp, `empty outbox: ${mib(cold[0].memory.emptyBytes)}`, '—', 'measured', '—');
  return rows;
}

/** The numbers smoke mode requires of the phase (`need(path, x)` records a missing or invalid one). */
export function checkCold(cold, d, need) {
  for (const c of cold) {
    need(`${d}.cold[${c.pending}].ratio`, c.ratio);
    need(`${d}.cold[${c.pending}].memory.bytes`, c.memory.bytes);
    need(`${d}.cold[${c.pending}].firstStatus.ms`, c.firstStatus.ms.median);
    if (!c.firstStatus.met) need(`${d}.cold[${c.pending}].firstStatus (restoring, 0 read, before open resolved)`, NaN);
  }
}
