#!/usr/bin/env node
// The benchmark runner. Loads bench/page/ in headless Chromium with a persistent profile (IndexedDB
// on disk), measures outbox-sync against raw IndexedDB, raw fetch and two peer libraries in the same run,
// prints the table and writes bench/results/latest.json and latest.md.
//
//   make bench                     # builds the package and the release server, then runs this
//   node bench/run.mjs             # the full suite (needs `make build` and target/release/outbox-server)
//   node bench/run.mjs --smoke     # tiny N, checks only that every metric is produced (part of `make test`)
//   node bench/run.mjs --only tabs # one phase (an experiment): see --only below
//
// Options: --samples N (measured rounds, default 20), --warmup N (default 2), --out DIR.
// Variants run interleaved: every round runs each variant once, in an order that rotates round by round, so
// a slow spell on the machine hits all of them alike. Warm-up rounds are discarded.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { chromium } from 'playwright-core';
import { entriesMarkdown, measurePackage } from '../scripts/size.mjs';
import { breakdownMarkdown, sizeBreakdown } from './size-breakdown.mjs';
import { checkCold, coldRows, runCold, summarizeCold } from './cold.mjs';
import { meets, quantile, stats } from './stats.mjs';
import { f1, f2, goalText, kb, mark, ms } from './format.mjs';
import { checkTabs, runTabs, summarizeTabs, tabsRows } from './tabs.mjs';
import { CHROMIUM_ARGS } from '../tests/e2e/support/browser.mjs';
import { startServer } from '../tests/e2e/support/server.mjs';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: cli } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    samples: { type: 'string' },
    warmup: { type: 'string' },
    out: { type: 'string' },
    // Another build of the npm package to measure (e.g. a candidate patch), instead of dist/ (the package as
    // published, from scripts/dist.mjs).
    pkg: { type: 'string' },
    // Run only some phases (comma-separated: burst,single,visibility,drain,cold,diagnostics,tabs); for
    // experiments. Writes no latest.*: medians go to stderr, and a run with the tabs phase writes its own
    // table to tabs-latest.json/.md (it is summarized on its own, needing no other phase).
    only: { type: 'string' },
  },
});
const PKG = cli.pkg ?? join(repoRoot, 'dist');
const PHASES = new Set((cli.only ?? 'burst,single,visibility,drain,cold,diagnostics,tabs').split(','));

const SIZES = cli.smoke
  ? { burst: 20, single: 2, view: 2, drainSingle: 10, drainPush: 20, batchOps: 10, peerDrain: 10, cold: 50, coldLarge: 500, coldLargeSamples: 2, count: 10, tabs: 2 }
  : { burst: 1000, single: 25, view: 25, drainSingle: 200, drainPush: 1000, batchOps: 100, peerDrain: 200, cold: 10_000, coldLarge: 100_000, coldLargeSamples: 5, count: 200, tabs: 25 };
const SAMPLES = Number(cli.samples ?? (cli.smoke ? 2 : 20));
const WARMUP = Number(cli.warmup ?? 1 + (cli.smoke ? 0 : 1));
const DURABILITIES = ['relaxed', 'strict'];
// The outbox's defaults: 4 single-op requests in flight, or 2 pushes. The raw baseline uses the same.
const CONCURRENCY = { single: 4, push: 2 };

const GOALS = {
  burst: { op: '>=', value: 0.7 },
  single: { op: '<=', value: 1.3 },
  visibility: { op: '<=', value: 0.05 },
  drain: { op: '>=', value: 0.8 },
  cold: { op: '<=', value: 1.3 },
  sizeBrotliKB: { op: '<=', value: 75 },
  peers: { op: '>=', value: 10 },
  // Multi-tab (bench/tabs.mjs): another tab's watcher sees an enqueue within 2 raw BroadcastChannel round
  // trips (p50), and a follower's enqueue is durable about as fast as the leader's.
  tabsVisibility: { op: '<=', value: 2 },
  followerEnqueue: { op: '<=', value: 1.2 },
};

const log = (...args) => console.error('bench:', ...args);
const started = Date.now();

// ------------------------------------------------------------------------------------------------
// Statistics
// ------------------------------------------------------------------------------------------------

// quantile, stats and meets: bench/stats.mjs (the phase modules use them too).

// ------------------------------------------------------------------------------------------------
// Staging: the page, the built package and the peers, served by the reference server
// ------------------------------------------------------------------------------------------------

async function stage() {
  const wasm = join(PKG, 'wasm/outbox_sync_bg.wasm');
  if (!existsSync(wasm)) throw new Error(`${wasm} is missing: run \`make build\` first`);
  const dir = mkdtempSync(join(tmpdir(), 'outbox-bench-www-'));
  cpSync(join(repoRoot, 'bench/page'), dir, { recursive: true });
  const vendor = join(dir, 'vendor/outbox-sync');
  mkdirSync(vendor, { recursive: true });
  for (const f of ['package.json', 'index.js', 'index.d.ts', 'tabs.js', 'wasm']) {
    cpSync(join(PKG, f), join(vendor, f), { recursive: true });
  }
  for (const peer of ['tanstack', 'workbox']) {
    await build({
      entryPoints: [join(repoRoot, `bench/peers/${peer}.js`)],
      outfile: join(dir, `vendor/peers/${peer}.js`),
      bundle: true,
      format: 'esm',
      minify: true,
      platform: 'browser',
      target: 'es2022',
      define: { 'process.env.NODE_ENV': '"production"' },
      logLevel: 'warning',
    });
  }
  return dir;
}

function serverBinary() {
  if (process.env.OUTBOX_SERVER_BIN) return process.env.OUTBOX_SERVER_BIN;
  const release = join(repoRoot, 'target/release/outbox-server');
  if (existsSync(release)) return release;
  const debug = join(repoRoot, 'target/debug/outbox-server');
  if (cli.smoke && existsSync(debug)) return debug;
  throw new Error('target/release/outbox-server is missing: run `cargo build --release -p outbox-server` (make bench does)');
}

function peerVersions() {
  const read = (name) => JSON.parse(readFileSync(join(repoRoot, 'node_modules', name, 'package.json'), 'utf8')).version;
  return {
    '@tanstack/offline-transactions': read('@tanstack/offline-transactions'),
    '@tanstack/db': read('@tanstack/db'),
    'workbox-background-sync': read('workbox-background-sync'),
  };
}

function gitCommit() {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'src', 'core', 'pkg', 'Cargo.toml'], { cwd: repoRoot, encoding: 'utf8' }).trim();
    return dirty ? `${head}+dirty` : head;
  } catch {
    return 'unknown';
  }
}

// ------------------------------------------------------------------------------------------------
// The run
// ------------------------------------------------------------------------------------------------

/** Runs `rounds` rounds of every variant, rotating the order each round; keeps samples after the warm-up. */
async function roundRobin(label, variants, measure, fresh, { samples: kept = SAMPLES, warmup = WARMUP } = {}) {
  // Each phase starts on a freshly loaded page, so no phase inherits another's garbage or leaked state.
  if (fresh) await fresh();
  const samples = Object.fromEntries(variants.map((v) => [v.id, []]));
  const facts = Object.fromEntries(variants.map((v) => [v.id, []]));
  const rounds = warmup + kept;
  const wall = Object.fromEntries(variants.map((v) => [v.id, 0]));
  for (let round = 0; round < rounds; round++) {
    const order = variants.map((_, i) => variants[(i + round) % variants.length]);
    for (const variant of order) {
      const t0 = Date.now();
      const result = await measure(variant);
      wall[variant.id] += Date.now() - t0;
      if (round < warmup) continue;
      const { ms, ...rest } = result;
      if (Array.isArray(ms)) samples[variant.id].push(...ms);
      else samples[variant.id].push(ms);
      facts[variant.id].push(rest);
    }
    log(`${label}: round ${round + 1}/${rounds}${round < warmup ? ' (warm-up)' : ''}`);
  }
  // Wall time per variant, set-up included: where the runner's own minutes go.
  log(`${label}: wall s per variant: ${Object.entries(wall).map(([id, t]) => `${id} ${(t / 1000).toFixed(1)}`).join(', ')}`);
  return { samples, facts };
}

async function main() {
  const load = { start: loadavg() };
  const www = await stage();
  process.env.OUTBOX_SERVER_BIN = serverBinary();
  const server = await startServer({ www });
  const profile = mkdtempSync(join(tmpdir(), 'outbox-bench-profile-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: CHROMIUM_ARGS,
  });
  try {
    const page = await context.newPage();
    page.on('pageerror', (e) => log('page error:', e.message));
    const open = async (query = '') => {
      await page.goto(`${server.url}index.html${query}`);
      await page.waitForFunction(() => window.bench !== undefined);
    };
    // Single-op latencies are a fraction of a millisecond, and a page that is not cross-origin isolated
    // reads performance.now() in 100 µs steps. The latency phases load the page with COOP + COEP added to
    // its HTML response (5 µs steps); other phases do not route at all, since routing intercepts every request.
    const loadIsolated = async (p) => {
      const pattern = `${server.url}index.html*`;
      const isolate = async (route) => {
        const response = await route.fetch();
        await route.fulfill({
          response,
          headers: { ...response.headers(), 'cross-origin-opener-policy': 'same-origin', 'cross-origin-embedder-policy': 'require-corp' },
        });
      };
      await p.route(pattern, isolate);
      try {
        await p.goto(`${server.url}index.html`);
        await p.waitForFunction(() => window.bench !== undefined);
      } finally {
        await p.unroute(pattern, isolate);
      }
      if (!(await p.evaluate(() => self.crossOriginIsolated))) throw new Error('the latency page is not cross-origin isolated');
    };
    const openIsolated = () => loadIsolated(page);
    const call = (fn, arg) => page.evaluate(([fn, arg]) => window.bench[fn](arg), [fn, arg]);
    await open();
    const userAgent = await page.evaluate(() => navigator.userAgent);
    const hasView = await call('hasOptimisticView');

    const raw = {};

    // 1 + 7. Burst enqueue: outbox and raw at both durabilities, and the peers, in one rotation.
    if (PHASES.has('burst')) {
      const variants = [
        ...DURABILITIES.flatMap((d) => [
          { id: `raw.${d}`, fn: 'rawBurst', arg: { n: SIZES.burst, durability: d } },
          { id: `outbox.${d}`, fn: 'outboxBurst', arg: { n: SIZES.burst, durability: d } },
        ]),
        { id: 'tanstack', fn: 'tanstackBurst', arg: { n: SIZES.burst } },
        { id: 'workbox', fn: 'workboxBurst', arg: { n: SIZES.burst } },
      ];
      raw.burst = await roundRobin('burst enqueue', variants, (v) => call(v.fn, v.arg), open);
    }

    // 2. Single enqueue durable latency.
    if (PHASES.has('single')) {
      const variants = DURABILITIES.flatMap((d) => [
        { id: `raw.${d}`, fn: 'rawSingle', arg: { k: SIZES.single, durability: d } },
        { id: `outbox.${d}`, fn: 'outboxSingle', arg: { k: SIZES.single, durability: d } },
      ]);
      raw.single = await roundRobin('single enqueue', variants, (v) => call(v.fn, v.arg), openIsolated);
    }

    // 3. Optimistic visibility, once the view exists.
    if (hasView && PHASES.has('visibility')) {
      const variants = DURABILITIES.map((d) => ({ id: `outbox.${d}`, fn: 'outboxVisibility', arg: { k: SIZES.view, durability: d } }));
      const visible = Object.fromEntries(variants.map((v) => [v.id, []]));
      const durable = Object.fromEntries(variants.map((v) => [v.id, []]));
      const missing = Object.fromEntries(variants.map((v) => [v.id, 0]));
      await roundRobin('optimistic visibility', variants, async (v) => {
        const r = await call(v.fn, v.arg);
        visible[v.id].push(...r.visible);
        durable[v.id].push(...r.durable);
        missing[v.id] += r.missing;
        return { ms: 0 };
      }, openIsolated);
      raw.visibility = { visible, durable, missing };
    }

    // 4 + 7. Drain throughput: single-op requests and 100-op pushes, and the peers' own drains.
    if (PHASES.has('drain')) {
      const variants = [
        ...DURABILITIES.flatMap((d) => [
          { id: `raw.single.${d}`, fn: 'rawDrain', arg: { n: SIZES.drainSingle, batch: false, concurrency: CONCURRENCY.single, durability: d } },
          { id: `outbox.single.${d}`, fn: 'outboxDrain', arg: { n: SIZES.drainSingle, batch: false, durability: d } },
          { id: `raw.push.${d}`, fn: 'rawDrain', arg: { n: SIZES.drainPush, batch: true, batchOps: SIZES.batchOps, concurrency: CONCURRENCY.push, durability: d } },
          { id: `outbox.push.${d}`, fn: 'outboxDrain', arg: { n: SIZES.drainPush, batch: true, batchOps: SIZES.batchOps, durability: d } },
        ]),
        { id: 'tanstack', fn: 'tanstackDrain', arg: { n: SIZES.peerDrain } },
        { id: 'workbox', fn: 'workboxDrain', arg: { n: SIZES.peerDrain } },
      ];
      raw.drain = await roundRobin('drain', variants, async (v) => {
        const r = await call(v.fn, v.arg);
        if (r.failed) throw new Error(`${v.id}: ${r.failed} ops failed on the server`);
        return { ...r, ms: r.ms, n: v.arg.n };
      }, open);
    }

    // 5. Cold start with pending ops (bench/cold.mjs): every sample in a freshly loaded page.
    if (PHASES.has('cold')) {
      const sizes = [{ n: SIZES.cold }, { n: SIZES.coldLarge, samples: SIZES.coldLargeSamples, warmup: 1 }];
      raw.cold = await runCold({ open, call, roundRobin, sizes, durabilities: DURABILITIES, log });
    }

    // 8 + 9. Two tabs of one outbox: cross-tab visibility, and a follower's enqueue against the leader's.
    if (PHASES.has('tabs')) {
      raw.tabs = await runTabs({ context, page, loadIsolated, roundRobin, k: SIZES.tabs, durabilities: DURABILITIES, log });
    }

    // Diagnostics: boundary crossings and transactions per op (a separate page load with counting wrappers).
    const diagnostics = {};
    for (const d of PHASES.has('diagnostics') ? DURABILITIES : []) {
      await open('?count');
      diagnostics[d] = await call('countCrossings', { n: SIZES.count, durability: d });
    }

    load.end = loadavg();
    if (cli.only) {
      // A partial run (an experiment): medians per variant, nothing written.
      for (const [phase, { samples, facts }] of Object.entries(raw)) {
        if (!samples) continue;
        // Sub-millisecond medians (single enqueues) get two decimals: one would hide any change.
        const ms = (x) => (x < 10 ? f2(x) : f1(x));
        for (const [id, xs] of Object.entries(samples)) {
          const busy = meanInFlight(facts?.[id]);
          const inFlight = busy === null ? '' : `, ${f2(busy)} requests in flight on average`;
          log(`${phase} ${id}: median ${ms(stats(xs).median)} ms, p95 ${ms(stats(xs).p95)} ms (n=${xs.length})${inFlight}`);
        }
      }
      for (const [id, xs] of Object.entries(raw.visibility?.visible ?? {})) {
        const [v, d] = [stats(xs).median, stats(raw.visibility.durable[id]).median];
        // In microseconds: at 0.05 ms, two decimals of a millisecond hide any change an experiment makes.
        // The browser's clock ticks in 5 µs steps, so the median moves by whole steps; the mean of the
        // samples below the 90th percentile (no GC pauses) shows a change of a few µs.
        const p90 = quantile(xs, 0.9);
        const calm = xs.filter((x) => x <= p90);
        const mean = calm.reduce((a, b) => a + b, 0) / calm.length;
        log(`visibility ${id}: readable p50 ${(v * 1000).toFixed(1)} µs (mean below p90 ${(mean * 1000).toFixed(1)} µs), durable p50 ${f2(d)} ms, ratio ${(v / d).toFixed(3)}×`);
      }
      if (raw.cold) for (const d of DURABILITIES) log(`\n${coldRows(summarizeCold(raw.cold, d, GOALS.cold), d).join('\n')}`);
      if (PHASES.has('diagnostics')) log(JSON.stringify(diagnostics));
      if (!raw.tabs) return null;
      // The tabs phase summarizes on its own: its ratios are within the phase (see tabs-latest.md).
      const metrics = Object.fromEntries(DURABILITIES.map((d) => [d, { tabs: summarizeTabs(raw.tabs, d, GOALS) }]));
      return { partial: 'tabs', env: environment(userAgent, load), metrics };
    }
    const results = summarize(raw, { hasView, diagnostics, env: environment(userAgent, load) });
    return results;
  } finally {
    await context.close();
    await server.close();
    rmSync(profile, { recursive: true, force: true });
    rmSync(www, { recursive: true, force: true });
  }
}

function environment(userAgent, load) {
  return {
    date: new Date().toISOString(),
    mode: `${cli.smoke ? 'smoke' : 'full'}${cli.only ? ` (--only ${cli.only})` : ''}`,
    commit: gitCommit(),
    node: process.version,
    userAgent,
    cpus: cpus().length,
    loadavg: { start: load.start.map((x) => +x.toFixed(2)), end: load.end.map((x) => +x.toFixed(2)) },
    server: process.env.OUTBOX_SERVER_BIN.replace(`${repoRoot}/`, ''),
    samples: SAMPLES,
    warmup: WARMUP,
    sizes: SIZES,
    concurrency: CONCURRENCY,
    peers: peerVersions(),
    seconds: Math.round((Date.now() - started) / 1000),
  };
}

// ------------------------------------------------------------------------------------------------
// Summary: ratios, goals, table
// ------------------------------------------------------------------------------------------------

/** The mean of the drains' requests in flight on average (`inFlight`, from the page), or null if none says. */
function meanInFlight(facts = []) {
  const xs = facts.map((f) => f.inFlight).filter((x) => x !== undefined);
  return xs.length ? +(xs.reduce((a, x) => a + x, 0) / xs.length).toFixed(2) : null;
}

function summarize(raw, { hasView, diagnostics, env }) {
  const per = {};
  const txPerOp = (facts, n) => (facts.length ? +(facts.reduce((a, f) => a + (f.transactions ?? 0), 0) / facts.length / n).toFixed(3) : null);
  for (const d of DURABILITIES) {
    const m = {};
    // Burst: throughput ratio = raw time / outbox time.
    {
      const o = stats(raw.burst.samples[`outbox.${d}`]);
      const r = stats(raw.burst.samples[`raw.${d}`]);
      const ratio = r.median / o.median;
      m.burst = {
        outboxMs: o, rawMs: r, ratio, goal: GOALS.burst, met: meets(GOALS.burst, ratio),
        outboxTransactionsPerOp: txPerOp(raw.burst.facts[`outbox.${d}`], SIZES.burst),
      };
    }
    // Single: latency ratio = outbox / raw, at p50 and p95 of every individual enqueue.
    {
      const o = stats(raw.single.samples[`outbox.${d}`]);
      const r = stats(raw.single.samples[`raw.${d}`]);
      m.single = {
        outboxMs: o, rawMs: r,
        p50: { ratio: o.median / r.median, goal: GOALS.single, met: meets(GOALS.single, o.median / r.median) },
        p95: { ratio: o.p95 / r.p95, goal: GOALS.single, met: meets(GOALS.single, o.p95 / r.p95) },
      };
    }
    // Visibility: p50 time-to-readable as a fraction of p50 durable latency.
    if (hasView) {
      const v = stats(raw.visibility.visible[`outbox.${d}`]);
      const dur = stats(raw.visibility.durable[`outbox.${d}`]);
      const ratio = v.median / dur.median;
      m.visibility = { visibleMs: v, durableMs: dur, missing: raw.visibility.missing[`outbox.${d}`], ratio, goal: GOALS.visibility, met: meets(GOALS.visibility, ratio) && raw.visibility.missing[`outbox.${d}`] === 0 };
    } else {
      m.visibility = { status: 'n/a until the view lands (Outbox.prototype.get does not exist in this build)', goal: GOALS.visibility };
    }
    // Drain: throughput ratio = raw time / outbox time (same ops, same requests).
    for (const mode of ['single', 'push']) {
      const n = mode === 'single' ? SIZES.drainSingle : SIZES.drainPush;
      const o = stats(raw.drain.samples[`outbox.${mode}.${d}`]);
      const r = stats(raw.drain.samples[`raw.${mode}.${d}`]);
      const ratio = r.median / o.median;
      m[`drain_${mode}`] = {
        n, outboxMs: o, rawMs: r,
        outboxOpsPerSec: (n / o.median) * 1000, rawOpsPerSec: (n / r.median) * 1000,
        ratio, goal: GOALS.drain, met: meets(GOALS.drain, ratio),
        outboxTransactionsPerOp: txPerOp(raw.drain.facts[`outbox.${mode}.${d}`], n),
        // Requests in flight on average (Resource Timing): how busy each keeps its concurrency.
        outboxInFlight: meanInFlight(raw.drain.facts[`outbox.${mode}.${d}`]),
        rawInFlight: meanInFlight(raw.drain.facts[`raw.${mode}.${d}`]),
      };
    }
    m.cold = summarizeCold(raw.cold, d, GOALS.cold);
    // Peers: outbox burst throughput against the faster peer's.
    {
      const o = m.burst.outboxMs.median;
      const t = stats(raw.burst.samples.tanstack);
      const w = stats(raw.burst.samples.workbox);
      const faster = t.median <= w.median ? 'tanstack' : 'workbox';
      const ratio = Math.min(t.median, w.median) / o;
      m.peers = {
        burst: { tanstackMs: t, workboxMs: w, vsTanstack: t.median / o, vsWorkbox: w.median / o, faster, ratio, goal: GOALS.peers, met: meets(GOALS.peers, ratio) },
      };
      const ds = stats(raw.drain.samples.tanstack);
      const dw = stats(raw.drain.samples.workbox);
      const ourSingle = m.drain_single.outboxOpsPerSec;
      m.peers.drain = {
        n: SIZES.peerDrain,
        tanstackMs: ds, workboxMs: dw,
        tanstackOpsPerSec: (SIZES.peerDrain / ds.median) * 1000,
        workboxOpsPerSec: (SIZES.peerDrain / dw.median) * 1000,
        outboxSingleOpsPerSec: ourSingle,
        vsTanstack: ourSingle / ((SIZES.peerDrain / ds.median) * 1000),
        vsWorkbox: ourSingle / ((SIZES.peerDrain / dw.median) * 1000),
      };
    }
    m.tabs = summarizeTabs(raw.tabs, d, GOALS);
    per[d] = m;
  }
  // The headline size is everything the package ships (all its JS and the wasm), from the package measured.
  const size = measurePackage(PKG);
  const brotliKB = size.shipped.brotli / 1024;
  let breakdown = null;
  if (!cli.smoke) {
    try {
      breakdown = sizeBreakdown();
    } catch (e) {
      log(`size breakdown skipped (${e.message.split('\n')[0]}); install twiggy with: cargo install twiggy`);
    }
  }
  return {
    env,
    metrics: per,
    size: { ...size, brotliKB, goal: GOALS.sizeBrotliKB, met: meets(GOALS.sizeBrotliKB, brotliKB), breakdown },
    diagnostics,
  };
}


function table(results) {
  const { env, metrics, size, diagnostics } = results;
  const rows = [...TABLE_HEAD];
  const row = (...cells) => rows.push(`| ${cells.join(' | ')} |`);
  for (const d of DURABILITIES) {
    const m = metrics[d];
    row(`1. Burst enqueue, ${SIZES.burst} ops in one task (raw time / ours)`, d, ms(m.burst.outboxMs), `raw IDB, 1 tx: ${ms(m.burst.rawMs)}`, `${f2(m.burst.ratio)}×`, goalText(GOALS.burst), mark(m.burst.met));
    row('2. Single enqueue durable latency p50 (ours / raw)', d, `${f2(m.single.outboxMs.median)} ms`, `raw put, own tx: ${f2(m.single.rawMs.median)} ms`, `${f2(m.single.p50.ratio)}×`, goalText(GOALS.single), mark(m.single.p50.met));
    row('2. Single enqueue durable latency p95 (ours / raw)', d, `${f2(m.single.outboxMs.p95)} ms`, `${f2(m.single.rawMs.p95)} ms`, `${f2(m.single.p95.ratio)}×`, goalText(GOALS.single), mark(m.single.p95.met));
    if (m.visibility.status) row('3. Optimistic visibility (readable / durable)', d, m.visibility.status, '—', 'n/a', goalText(GOALS.visibility), 'n/a');
    else row('3. Optimistic visibility (readable / durable, p50)', d, `${f2(m.visibility.visibleMs.median)} ms`, `durable: ${f2(m.visibility.durableMs.median)} ms`, `${f2(m.visibility.ratio)}×`, goalText(GOALS.visibility), mark(m.visibility.met));
    for (const mode of ['single', 'push']) {
      const x = m[`drain_${mode}`];
      const what = mode === 'single' ? `${x.n} single-op requests` : `${x.n} ops in ${SIZES.batchOps}-op pushes`;
      const limit = mode === 'single' ? CONCURRENCY.single : CONCURRENCY.push;
      const busy = (n) => (n === null || n === undefined ? '' : `; ${f2(n)} requests in flight on average (at most ${limit})`);
      row(`4. Drain, ${what} (ours / raw throughput)`, d, `${Math.round(x.outboxOpsPerSec)} ops/s, ${ms(x.outboxMs)}${busy(x.outboxInFlight)}`, `raw fetch + 1 delete tx: ${Math.round(x.rawOpsPerSec)} ops/s${busy(x.rawInFlight)}`, `${f2(x.ratio)}×`, goalText(GOALS.drain), mark(x.met));
    }
    rows.push(...coldRows(m.cold, d));
    const p = m.peers.burst;
    row(`7. Peers, burst (peer time / ours; faster peer: ${p.faster})`, d, `${f1(m.burst.outboxMs.median)} ms`, `TanStack ${f1(p.tanstackMs.median)} ms (${f1(p.vsTanstack)}×), workbox ${f1(p.workboxMs.median)} ms (${f1(p.vsWorkbox)}×)`, `${f1(p.ratio)}×`, goalText(GOALS.peers), mark(p.met));
    const q = m.peers.drain;
    row(`7. Peers, drain ${q.n} ops one request each (ours / peer throughput)`, d, `${Math.round(q.outboxSingleOpsPerSec)} ops/s`, `TanStack ${Math.round(q.tanstackOpsPerSec)} ops/s, workbox ${Math.round(q.workboxOpsPerSec)} ops/s`, `${f2(q.vsTanstack)}× / ${f2(q.vsWorkbox)}×`, 'none', '—');
    rows.push(...tabsRows(m.tabs, d));
  }
  const shipped = size.shipped;
  row('6. Size, all shipped JS + wasm, brotli (per entry point below)', 'both', `${kb(shipped.brotli)} (raw ${kb(shipped.raw)}, gzip ${kb(shipped.gzip)})`, `${shipped.files.length} files: wasm ${kb(size.wasm.brotli)} + JS ${kb(shipped.brotli - size.wasm.brotli)} brotli`, `${f1(size.brotliKB)} KB`, `≤ ${GOALS.sizeBrotliKB.value} KB`, mark(size.met));
  // What an app pays for what it imports: each entry point's own module graph (scripts/size.mjs).
  const entries = ['', entriesMarkdown(size)];

  const diag = ['', '| Per op (diagnostics run, counting wrappers on) | Durability | JS→wasm calls | wasm→JS calls | IndexedDB readwrite tx |', '|---|---|---|---|---|'];
  for (const d of DURABILITIES) {
    for (const [label, x] of Object.entries(diagnostics[d])) {
      if (label === 'status') continue;
      diag.push(`| ${label} | ${d} | ${x.jsToWasmPerOp} | ${x.wasmToJsPerOp} | ${x.transactionsPerOp} |`);
    }
  }
  const bytes = size.breakdown ? ['', '### Where the wasm bytes go', '', breakdownMarkdown(size.breakdown)] : [];
  return [...heading(env), ...rows, ...entries, ...diag, ...bytes].join('\n');
}

const TABLE_HEAD = ['| Metric | Durability | outbox-sync | Baseline | Ratio | Goal | |', '|---|---|---|---|---|---|---|'];

/** A run of the tabs phase alone (`--only`): its rows, under the same heading. */
function tabsTable(results) {
  const rows = DURABILITIES.flatMap((d) => tabsRows(results.metrics[d].tabs, d));
  return [...heading(results.env), ...TABLE_HEAD, ...rows].join('\n');
}

function heading(env) {
  return [
    `outbox-sync benchmark — ${env.date}, ${env.mode} run, commit ${env.commit}, ${env.samples} samples after ${env.warmup} warm-up round(s), interleaved round robin`,
    `Chromium: ${env.userAgent}; Node ${env.node}; ${env.cpus} CPUs; load average (1/5/15 min) ${env.loadavg.start.join(' / ')} at start, ${env.loadavg.end.join(' / ')} at end; server ${env.server}; ${env.seconds} s`,
    `Peers: ${Object.entries(env.peers).map(([k, v]) => `${k}@${v}`).join(', ')}`,
    ...(Math.max(...env.loadavg.start, ...env.loadavg.end) > env.cpus
      ? ['', `**Busy machine:** the load average exceeded the ${env.cpus} CPUs during the run, so the ratios are noisy; rerun on a quiet machine before trusting a close call.`]
      : []),
    '',
  ];
}

/** Smoke mode checks the runner, not the machine: every metric must exist and be a finite, positive number. */
function checkComplete(results) {
  const problems = [];
  const need = (path, x) => {
    if (!(typeof x === 'number' && Number.isFinite(x) && x > 0)) problems.push(`${path} = ${x}`);
  };
  for (const d of DURABILITIES) {
    const m = results.metrics[d];
    need(`${d}.burst.ratio`, m.burst.ratio);
    need(`${d}.single.p50.ratio`, m.single.p50.ratio);
    need(`${d}.single.p95.ratio`, m.single.p95.ratio);
    if (!m.visibility.status) need(`${d}.visibility.ratio`, m.visibility.ratio);
    need(`${d}.drain_single.ratio`, m.drain_single.ratio);
    need(`${d}.drain_push.ratio`, m.drain_push.ratio);
    checkCold(m.cold, d, need);
    need(`${d}.peers.burst.ratio`, m.peers.burst.ratio);
    need(`${d}.peers.drain.vsTanstack`, m.peers.drain.vsTanstack);
    need(`${d}.peers.drain.vsWorkbox`, m.peers.drain.vsWorkbox);
    need(`${d}.burst.outboxTransactionsPerOp`, m.burst.outboxTransactionsPerOp);
    for (const [label, x] of Object.entries(results.diagnostics[d])) need(`${d}.diagnostics.${label}.jsToWasmPerOp`, x.jsToWasmPerOp);
    checkTabs(m.tabs, d, need);
  }
  need('size.shipped.brotli', results.size.shipped.brotli);
  for (const [name, e] of Object.entries(results.size.entries)) need(`size.entries['${name}'].brotli`, e.brotli);
  return problems;
}

function checkPartial(results, d) {
  const problems = [];
  checkTabs(results.metrics[d].tabs, d, (path, x) => {
    if (!(typeof x === 'number' && Number.isFinite(x) && x > 0)) problems.push(`${path} = ${x}`);
  });
  return problems;
}

const results = await main();
if (!results) process.exit(0);
const text = results.partial ? tabsTable(results) : table(results);
console.log(text);
const outDir = cli.out ?? (cli.smoke ? mkdtempSync(join(tmpdir(), 'outbox-bench-smoke-')) : join(repoRoot, 'bench/results'));
mkdirSync(outDir, { recursive: true });
// A partial run never replaces latest.* (the full table): it has a file of its own.
const base = results.partial ? `${results.partial}-latest` : 'latest';
const title = results.partial ? `Benchmark results: the ${results.partial} phase alone (a full run puts the same rows in latest.md)` : 'Benchmark results';
writeFileSync(join(outDir, `${base}.json`), `${JSON.stringify(results, null, 2)}\n`);
writeFileSync(join(outDir, `${base}.md`), `# ${title}\n\n${text}\n`);
log(`wrote ${join(outDir, `${base}.json`)} and ${base}.md in ${Math.round((Date.now() - started) / 1000)} s`);
if (cli.smoke) {
  const problems = results.partial ? DURABILITIES.flatMap((d) => checkPartial(results, d)) : checkComplete(results);
  if (problems.length) {
    console.error(`bench smoke: missing or invalid metrics:\n  ${problems.join('\n  ')}`);
    process.exit(1);
  }
  if (!cli.out) rmSync(outDir, { recursive: true, force: true });
  log('smoke: every metric was produced');
}
