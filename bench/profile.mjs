#!/usr/bin/env node
// Where the time of a missed benchmark goal goes: runs one scenario of bench/page/ under the V8 sampling
// profiler (Chrome DevTools Protocol) and prints the functions with the most self time. The page loads a copy
// of the package whose wasm keeps its function names (the shipped build strips them), so Rust functions
// show by name. Needs `make build`, twiggy is not needed.
//
//   node bench/profile.mjs burst|cold|visibility|drain-single|drain-push|raw-drain-single|raw-drain-push [--durability relaxed|strict] [--reps N]
//     [--under enqueue,get]   also: the time spent inside calls of these functions (their own and their callees'),
//                             split by callee (e.g. what an enqueue costs before it returns, apart from its commit)
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';
import { CHROMIUM_ARGS } from '../tests/e2e/support/browser.mjs';
import { startServer } from '../tests/e2e/support/server.mjs';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: cli, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    durability: { type: 'string', default: 'relaxed' },
    reps: { type: 'string', default: '10' },
    top: { type: 'string', default: '30' },
    under: { type: 'string', default: '' },
  },
});
const scenario = positionals[0] ?? 'burst';
const reps = Number(cli.reps);

const www = mkdtempSync(join(tmpdir(), 'outbox-profile-www-'));
cpSync(join(repoRoot, 'bench/page'), www, { recursive: true });
const vendor = join(www, 'vendor/outbox-sync');
mkdirSync(vendor, { recursive: true });
// pkg/, not dist/: its scripts are not minified, so a profile names their functions.
for (const f of ['package.json', 'index.js', 'index.d.ts', 'tabs.js', 'wasm']) cpSync(join(repoRoot, 'pkg', f), join(vendor, f), { recursive: true });
// The same wasm-bindgen + wasm-opt -Oz as scripts/build.sh, but keeping the name section.
const tmp = mkdtempSync(join(tmpdir(), 'outbox-profile-wasm-'));
execFileSync('wasm-bindgen', ['--keep-debug', '--target', 'web', '--out-dir', tmp, '--out-name', 'outbox_sync', join(repoRoot, 'target/wasm32-unknown-unknown/wasm-release/outbox_sync.wasm')]);
execFileSync(join(repoRoot, 'node_modules/.bin/wasm-opt'), ['-Oz', '-g', join(tmp, 'outbox_sync_bg.wasm'), '-o', join(vendor, 'wasm/outbox_sync_bg.wasm')]);
cpSync(join(tmp, 'outbox_sync.js'), join(vendor, 'wasm/outbox_sync.js'));

process.env.OUTBOX_SERVER_BIN ??= join(repoRoot, 'target/release/outbox-server');
const server = await startServer({ www });
const profileDir = mkdtempSync(join(tmpdir(), 'outbox-profile-profile-'));
const context = await chromium.launchPersistentContext(profileDir, { executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium', args: CHROMIUM_ARGS });
try {
  const page = await context.newPage();
  const open = async () => {
    await page.goto(`${server.url}index.html?profile`);
    await page.waitForFunction(() => window.bench !== undefined);
  };
  const call = (fn, arg) => page.evaluate(([fn, arg]) => window.bench[fn](arg), [fn, arg]);
  await open();
  const durability = cli.durability;
  const run = {
    burst: () => call('outboxBurst', { n: 1000, durability }),
    visibility: async () => {
      const { durable } = await call('outboxVisibility', { k: 200, durability });
      return { ms: durable.reduce((a, b) => a + b, 0) };
    },
    'drain-single': () => call('outboxDrain', { n: 200, batch: false, durability }),
    'drain-push': () => call('outboxDrain', { n: 1000, batch: true, batchOps: 100, durability }),
    'raw-drain-single': () => call('rawDrain', { n: 200, batch: false, concurrency: 4, durability }),
    'raw-drain-push': () => call('rawDrain', { n: 1000, batch: true, batchOps: 100, concurrency: 2, durability }),
    cold: async () => {
      await open();
      return call('outboxCold', { name: coldName, durability });
    },
  }[scenario];
  if (!run) throw new Error(`unknown scenario ${scenario}`);
  const coldName = `profile-cold-${Date.now()}`;
  if (scenario === 'cold') await call('seedCold', { name: coldName, n: 10_000, durability });
  // The page wraps each timed region in console.profile()/profileEnd(): only those regions are recorded.
  const profiles = [];
  let cdp;
  const attach = async () => {
    cdp = await context.newCDPSession(page);
    cdp.on('Profiler.consoleProfileFinished', (e) => profiles.push(e.profile));
    await cdp.send('Profiler.enable');
    await cdp.send('Profiler.setSamplingInterval', { interval: 100 });
  };
  await run(); // warm-up
  const times = [];
  for (let i = 0; i < reps; i++) {
    if (scenario === 'cold') {
      await open();
      await attach(); // a new document: attach before the timed open
      times.push((await call('outboxCold', { name: coldName, durability })).ms);
    } else {
      if (!cdp) await attach();
      times.push((await run()).ms);
    }
  }
  await new Promise((resolve) => setTimeout(resolve, 200));

  // Self time per function, from the sample streams; with --under, also the samples inside each named call.
  const self = new Map();
  const underNames = new Set(cli.under.split(',').filter(Boolean));
  const under = new Map(); // `${name}\t${key}` → time, and `${name}` → the calls' whole time
  let total = 0;
  for (const profile of profiles) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map(profile.nodes.flatMap((n) => (n.children ?? []).map((c) => [c, n])));
  for (let i = 0; i < profile.samples.length; i++) {
    const node = byId.get(profile.samples[i]);
    const dt = profile.timeDeltas[i + 1] ?? 0;
    const { functionName, url } = node.callFrame;
    const where = url.endsWith('.wasm') || url.startsWith('wasm://') ? 'wasm' : url.includes('outbox_sync.js') ? 'glue' : url.includes('/bench.js') ? 'page' : url ? 'js' : 'native';
    const key = `${where}\t${(functionName || '(anonymous)').replace(/::h[0-9a-f]{16}$/, '').replace(/\[[0-9a-f]{16}\]/g, '')}`;
    self.set(key, (self.get(key) ?? 0) + dt);
    total += dt;
    // The outermost named call on the sample's stack owns it.
    let owner = null;
    for (let n = node; n; n = parent.get(n.id)) if (underNames.has(n.callFrame.functionName)) owner = n.callFrame.functionName;
    if (owner) {
      under.set(owner, (under.get(owner) ?? 0) + dt);
      under.set(`${owner}\t${key}`, (under.get(`${owner}\t${key}`) ?? 0) + dt);
    }
  }
  }
  const busy = [...self.entries()].filter(([k]) => !/\t\((idle|program)\)$/.test(k));
  const busyTotal = busy.reduce((a, [, t]) => a + t, 0);
  const byWhere = new Map();
  for (const [k, t] of busy) byWhere.set(k.split('\t')[0], (byWhere.get(k.split('\t')[0]) ?? 0) + t);
  console.log(`${scenario} (${durability}), ${reps} runs (${profiles.length} recorded), median ${times.sort((a, b) => a - b)[Math.floor(times.length / 2)].toFixed(1)} ms under the profiler`);
  console.log(`busy ${(busyTotal / 1000).toFixed(0)} ms of ${(total / 1000).toFixed(0)} ms sampled; by kind: ${[...byWhere.entries()].sort((a, b) => b[1] - a[1]).map(([w, t]) => `${w} ${((t / busyTotal) * 100).toFixed(0)}%`).join(', ')}`);
  for (const [k, t] of busy.sort((a, b) => b[1] - a[1]).slice(0, Number(cli.top))) {
    const [where, name] = k.split('\t');
    console.log(`${((t / busyTotal) * 100).toFixed(1).padStart(5)}%  ${where.padEnd(6)} ${name.slice(0, 150)}`);
  }
  for (const name of underNames) {
    const inside = under.get(name) ?? 0;
    console.log(`\ninside ${name}(): ${(inside / 1000).toFixed(1)} ms in all (${((inside / busyTotal) * 100).toFixed(1)}% of busy)`);
    const rows = [...under.entries()].filter(([k]) => k.startsWith(`${name}\t`)).sort((a, b) => b[1] - a[1]);
    for (const [k, t] of rows.slice(0, Number(cli.top))) {
      const [, where, fn] = k.split('\t');
      console.log(`${((t / inside) * 100).toFixed(1).padStart(5)}%  ${where.padEnd(6)} ${fn.slice(0, 150)}`);
    }
  }
} finally {
  await context.close();
  await server.close();
  for (const d of [www, tmp, profileDir]) rmSync(d, { recursive: true, force: true });
}
