#!/usr/bin/env node
// Assembles dist/: the npm package as it is published, from its readable source in pkg/.
//
//   node scripts/dist.mjs      # scripts/build.sh runs it after the wasm build
//
// dist/ holds exactly what `npm pack` of pkg/ would ship (the same `files`, the same layout, so every
// relative import, `exports` entry and .d.ts path is unchanged), with each .js file minified by esbuild and
// given a source map (`<file>.js.map`) that carries its readable source. Each file is minified on its own,
// not bundled, so the module graph a browser loads, and the one SyncError class every entry shares, stay as
// they are in pkg/. The benchmark runner, the size guard, the demo and the packaging tests all take the
// package from dist/; pkg/ stays a working unminified copy, which is what the profiler loads.
//
// Publishing is `npm publish dist/`.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
export const SOURCE_DIR = join(repoRoot, 'pkg');
export const DIST_DIR = join(repoRoot, 'dist');

/** Copies pkg/'s shipped files into dist/ by packing and unpacking them, so `files` alone decides the set. */
function copyShippedFiles() {
  const tmp = mkdtempSync(join(tmpdir(), 'outbox-dist-'));
  try {
    const out = execFileSync('npm', ['pack', '--json', '--loglevel=error', '--pack-destination', tmp], { cwd: SOURCE_DIR, encoding: 'utf8' });
    const { filename } = JSON.parse(out.slice(out.indexOf('[')))[0];
    rmSync(DIST_DIR, { recursive: true, force: true });
    mkdirSync(DIST_DIR, { recursive: true });
    execFileSync('tar', ['-xzf', join(tmp, filename), '-C', DIST_DIR, '--strip-components=1']);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Replaces each shipped .js file in dist/ with its minified form, built from the same file in pkg/. */
async function minifyScripts() {
  const scripts = readdirSync(DIST_DIR, { recursive: true }).filter((f) => f.endsWith('.js'));
  await build({
    entryPoints: scripts.map((f) => join(SOURCE_DIR, f)),
    outbase: SOURCE_DIR,
    outdir: DIST_DIR,
    allowOverwrite: true,
    bundle: false,
    format: 'esm',
    minify: true,
    // Names are not kept (`keepNames` costs 1.8 KB brotli): SyncError sets its `name` itself, and the source
    // maps give a debugger the rest.
    sourcemap: 'linked',
    sourcesContent: true,
    legalComments: 'none',
    logLevel: 'warning',
    // wasm-bindgen's glue names one snippet module twice in its imports object, for two imports of the same
    // module namespace; the duplicate key is harmless and not ours to fix.
    logOverride: { 'duplicate-object-key': 'silent' },
  });
  return scripts;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  copyShippedFiles();
  const scripts = await minifyScripts();
  console.log(`dist: ${scripts.length} scripts minified, each with a source map, in ${DIST_DIR.slice(repoRoot.length + 1)}/`);
}
