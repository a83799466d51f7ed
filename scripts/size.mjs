#!/usr/bin/env node
// Prints the size of the built wasm module and its JS glue: raw, gzip and brotli (maximum quality, as a CDN
// would serve them). `--json` prints the same figures as JSON for the benchmark runner; other scripts can
// import `measureBuild()` directly.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
export const BUILD_FILES = {
  wasm: 'pkg/wasm/outbox_sync_bg.wasm',
  glue: 'pkg/wasm/outbox_sync.js',
};

export function measureFile(path) {
  const bytes = readFileSync(path);
  return {
    raw: bytes.length,
    gzip: gzipSync(bytes, { level: 9 }).length,
    brotli: brotliCompressSync(bytes, {
      params: { [constants.BROTLI_PARAM_QUALITY]: constants.BROTLI_MAX_QUALITY },
    }).length,
  };
}

export function measureBuild(root = repoRoot) {
  const files = Object.fromEntries(
    Object.entries(BUILD_FILES).map(([name, rel]) => [name, { path: rel, ...measureFile(join(root, rel)) }]),
  );
  const total = { raw: 0, gzip: 0, brotli: 0 };
  for (const f of Object.values(files)) for (const k of Object.keys(total)) total[k] += f[k];
  return { ...files, total };
}

const kb = (n) => `${(n / 1024).toFixed(1)} KB`;

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  let sizes;
  try {
    sizes = measureBuild();
  } catch (e) {
    console.error(`size: ${e.message}\nsize: run the build first (make build)`);
    process.exit(1);
  }
  if (process.argv.includes('--json')) {
    console.log(JSON.stringify(sizes, null, 2));
  } else {
    for (const [name, s] of Object.entries(sizes)) {
      console.log(
        `size ${name.padEnd(5)} raw ${kb(s.raw).padStart(9)}  gzip ${kb(s.gzip).padStart(9)}  brotli ${kb(s.brotli).padStart(9)}`,
      );
    }
  }
}
