#!/usr/bin/env node
// Where the bytes of the wasm module go, grouped by crate. Rebuilds the shipped module with its names kept
// (wasm-bindgen --keep-debug, then the same `wasm-opt -Oz --converge` as scripts/build.sh but with -g), lists every item
// with `twiggy top`, drops the name sections (the shipped module strips them) and groups the rest by the
// crate each function's path starts with. Needs `twiggy` (cargo install twiggy) and the wasm-release build
// (make build). bench/run.mjs adds the result to the benchmark table; run it alone with
//
//   node bench/size-breakdown.mjs
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const INPUT = join(repoRoot, 'target/wasm32-unknown-unknown/wasm-release/outbox_sync.wasm');
const STD = new Set(['core', 'alloc', 'std']);

/** Splits `a::b<c::d>::e` at top-level `::` (not inside `<…>`). */
function segments(path) {
  const out = [];
  let depth = 0;
  let cur = '';
  for (let i = 0; i < path.length; i++) {
    const c = path[i];
    if (c === '<') depth++;
    if (c === '>') depth--;
    if (depth === 0 && c === ':' && path[i + 1] === ':') {
      out.push(cur);
      cur = '';
      i++;
      continue;
    }
    cur += c;
  }
  out.push(cur);
  return out;
}

const crateOfPath = (path) => segments(path.replace(/^(&mut |&|\*const |\*mut |dyn )+/, '').trim())[0].replace(/\[[0-9a-f]+\]$/, '').replace(/<.*$/, '');

/** The crate an item's code belongs to. `<T as Trait>::f` counts for T's crate, or Trait's when T is a std type. */
export function crateOf(name) {
  if (name.startsWith('data segment')) return '(data: string literals, panic and format messages, tables)';
  if (/^code\[\d+\]$|^import /.test(name)) return '(unnamed)';
  if (/^__wbg_|^__wbindgen|^__externref|^__wbg/.test(name)) return 'wasm-bindgen (generated shims)';
  if (name.startsWith('<')) {
    // <A as B>::rest — find the top-level " as " inside the first <…>.
    let depth = 0;
    for (let i = 0; i < name.length; i++) {
      if (name[i] === '<') depth++;
      else if (name[i] === '>') {
        depth--;
        if (depth === 0) {
          const inner = name.slice(1, i);
          const asAt = (() => {
            let d = 0;
            for (let j = 0; j < inner.length; j++) {
              if (inner[j] === '<') d++;
              else if (inner[j] === '>') d--;
              else if (d === 0 && inner.startsWith(' as ', j)) return j;
            }
            return -1;
          })();
          const self = asAt < 0 ? inner : inner.slice(0, asAt);
          const trait = asAt < 0 ? '' : inner.slice(asAt + 4);
          const a = crateOfPath(self);
          const b = trait ? crateOfPath(trait) : '';
          if ((STD.has(a) || /^[A-Z]$/.test(a)) && b && !STD.has(b)) return b;
          if (/^[A-Z]$/.test(a)) return b || 'core';
          if (/^(f32|f64|u8|u16|u32|u64|usize|i8|i16|i32|i64|isize|str|bool|char|\[|\()/.test(a)) return b && !STD.has(b) ? b : 'core';
          return a;
        }
      }
    }
  }
  return crateOfPath(name.replace(/::h[0-9a-f]{16}$/, ''));
}

export function sizeBreakdown() {
  if (!existsSync(INPUT)) throw new Error(`${INPUT} is missing: run make build`);
  const dir = mkdtempSync(join(tmpdir(), 'outbox-size-'));
  try {
    execFileSync('wasm-bindgen', ['--keep-debug', '--target', 'web', '--out-dir', dir, '--out-name', 'outbox_sync', INPUT]);
    const named = join(dir, 'named.wasm');
    execFileSync(join(repoRoot, 'node_modules/.bin/wasm-opt'), ['-Oz', '--converge', '-g', '--strip-producers', join(dir, 'outbox_sync_bg.wasm'), '-o', named]);
    const csv = execFileSync('twiggy', ['top', '-n', '1000000', '-f', 'csv', named], { encoding: 'utf8', maxBuffer: 64 << 20 });
    const rows = parseCsv(csv).slice(1);
    const byCrate = new Map();
    const crossCutting = { serde: 0, formatting: 0, panics: 0, dropGlue: 0, asyncStateMachines: 0 };
    let total = 0;
    for (const [name, shallow] of rows) {
      const bytes = Number(shallow);
      if (!Number.isFinite(bytes) || /subsection|custom section|^Σ|more\.$/.test(name)) continue;
      total += bytes;
      const crate = crateOf(name);
      byCrate.set(crate, (byCrate.get(crate) ?? 0) + bytes);
      if (/serde/.test(name)) crossCutting.serde += bytes;
      if (/core(\[[0-9a-f]+\])?::fmt|as core(\[[0-9a-f]+\])?::fmt::|Display>::fmt|Debug>::fmt/.test(name)) crossCutting.formatting += bytes;
      if (/panic/.test(name)) crossCutting.panics += bytes;
      if (/drop_in_place/.test(name)) crossCutting.dropGlue += bytes;
      if (/\{\{closure\}\}/.test(name)) crossCutting.asyncStateMachines += bytes;
    }
    const shipped = readFileSync(join(repoRoot, 'pkg/wasm/outbox_sync_bg.wasm')).length;
    const crates = [...byCrate.entries()].sort((a, b) => b[1] - a[1]).map(([crate, bytes]) => ({ crate, bytes, share: bytes / total }));
    const top = rows
      .filter(([name, s]) => Number.isFinite(Number(s)) && !/subsection|custom section|^Σ|more\.$/.test(name))
      .slice(0, 15)
      .map(([name, s]) => ({ name: name.replace(/::h[0-9a-f]{16}$/, '').replace(/\[[0-9a-f]{16}\]/g, ''), bytes: Number(s) }));
    return { measuredBytes: total, shippedWasmBytes: shipped, crates, crossCutting, top };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function parseCsv(text) {
  const rows = [];
  let row = [];
  let cell = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else cell += c;
    } else if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\n') {
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
    } else cell += c;
  }
  if (cell || row.length) rows.push([...row, cell]);
  return rows;
}

export function breakdownMarkdown(b) {
  const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
  const lines = [
    `Code and data of the -Oz module by crate (${kb(b.measuredBytes)} measured with names kept; shipped wasm ${kb(b.shippedWasmBytes)} raw). Shares of raw bytes; brotli compresses them roughly alike.`,
    '',
    '| Crate | Raw bytes | Share |',
    '|---|---|---|',
    ...b.crates.filter((c) => c.share >= 0.005).map((c) => `| ${c.crate} | ${kb(c.bytes)} | ${(c.share * 100).toFixed(1)}% |`),
    `| (crates under 0.5% each) | ${kb(b.crates.filter((c) => c.share < 0.005).reduce((a, c) => a + c.bytes, 0))} | |`,
    '',
    `Across crates: serde-named code ${kb(b.crossCutting.serde)}, core::fmt formatting ${kb(b.crossCutting.formatting)}, panic paths ${kb(b.crossCutting.panics)}, drop glue ${kb(b.crossCutting.dropGlue)}, closures/async state machines ${kb(b.crossCutting.asyncStateMachines)} (overlapping tallies).`,
    '',
    'Largest items:',
    '',
    ...b.top.map((t) => `- ${kb(t.bytes)} \`${t.name}\``),
  ];
  return lines.join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  console.log(breakdownMarkdown(sizeBreakdown()));
}
