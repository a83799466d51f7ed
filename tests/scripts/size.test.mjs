// scripts/size.mjs: the module-graph walk behind the per-entry sizes and the budget check of `make test`,
// on small packages written to a temporary folder (the real package is checked by the guard itself).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { checkBudget, entriesMarkdown, measureFile, measurePackage, moduleGraph, scanModule, shippedFiles } from '../../scripts/size.mjs';

const dirs = [];
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Writes `files` (path → text) into a fresh folder and returns it. */
function fixture(files) {
  const dir = mkdtempSync(join(tmpdir(), 'outbox-size-test-'));
  dirs.push(dir);
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

test('scanModule finds every form of import, and none in comments, strings or regular expressions', () => {
  const found = scanModule(`#!/usr/bin/env node
// import './in-a-line-comment.js';
/* import x from './in-a-block-comment.js'; */
import def, { a, b as c } from './named.js';
import * as ns from "./namespace.js"
import './side-effect.js';
export { d } from './reexport.js';
export * from './star.js';
export * as star from './star-as.js';
export { local };
const quote = /['"\`]/g, tpl = \`import './in-a-template.js' \${ { x: 1 }.x } still a template\`;
const s = "import './in-a-string.js'";
const half = 10 / 2 / 1;
const lazy = () => import('./lazy.js');
const computed = (name) => import(name);
const wasm = new URL('mod_bg.wasm', import.meta.url);
const notFollowed = new URL(someString);
obj.import('./a-method.js');
`);
  assert.deepEqual(found.imports, ['./named.js', './namespace.js', './side-effect.js', './reexport.js', './star.js', './star-as.js']);
  assert.deepEqual(found.dynamic, ['./lazy.js']);
  assert.equal(found.computed, 1);
  assert.deepEqual(found.urls, ['mod_bg.wasm']);
});

test('scanModule says where a literal never ends, rather than guessing', () => {
  assert.throws(() => scanModule('const s = "no end\nimport "./x.js";'), /unterminated string at line 1/);
  assert.throws(() => scanModule('const t = `open\n\nforever'), /unterminated template literal at line 1/);
});

test('moduleGraph follows a cycle once, counts the wasm, and leaves bare specifiers to the app', () => {
  const dir = fixture({
    'a.js': "import { b } from './lib/b.js';\nimport { useMemo } from 'react';\nexport const a = 1;",
    'lib/b.js': "import { a } from '../a.js';\nexport const b = new URL('../m.wasm', import.meta.url);",
    'm.wasm': 'wasm bytes',
  });
  const g = moduleGraph(dir, 'a.js');
  assert.deepEqual([...g.files], [['a.js', 'entry'], ['lib/b.js', 'import'], ['m.wasm', 'url']]);
  assert.deepEqual(g.external, ['react']);
});

test('moduleGraph names the importer and the specifier of a file that does not exist', () => {
  const dir = fixture({ 'a.js': "import './b.js';", 'b.js': "import { gone } from './gone.js';" });
  assert.throws(() => moduleGraph(dir, 'a.js'), { message: "b.js imports './gone.js', but gone.js does not exist" });
  assert.throws(() => moduleGraph(dir, 'nope.js'), { message: 'entry file nope.js does not exist' });
});

test('moduleGraph refuses an import that leaves the package', () => {
  const dir = fixture({ 'a.js': "import '../outside.js';" });
  assert.throws(() => moduleGraph(dir, 'a.js'), /a\.js imports '\.\.\/outside\.js', which is outside the package/);
});

const PKG = {
  name: 'fixture',
  exports: {
    '.': { types: './index.d.ts', default: './index.js' },
    './extra': './extra.js',
    './lazy': './lazy.js',
    './m.wasm': './wasm/m_bg.wasm',
  },
  files: ['index.js', 'extra.js', 'lazy.js', 'later.js', 'wasm/', 'index.d.ts'],
};

function fixturePackage(pkg = PKG) {
  return fixture({
    'package.json': JSON.stringify(pkg),
    'index.js': "import init from './wasm/glue.js';\nexport default init;",
    'index.d.ts': 'export default function init(): Promise<void>;',
    'extra.js': "export const extra = 'x'.repeat(100);",
    'lazy.js': "export const later = () => import('./later.js');",
    'later.js': 'export const value = 42;',
    'wasm/glue.js': "export default () => fetch(new URL('m_bg.wasm', import.meta.url));",
    'wasm/m_bg.wasm': Buffer.alloc(4096, 7),
  });
}

test('measurePackage sums each entry and everything shipped, file by file', () => {
  const dir = fixturePackage();
  const r = measurePackage(dir);
  assert.deepEqual(Object.keys(r.entries), ['.', './extra', './lazy'], 'the .wasm export is no JS entry');
  assert.deepEqual(r.entries['.'].files, ['index.js', 'wasm/glue.js', 'wasm/m_bg.wasm']);
  const sum = (paths, k) => paths.reduce((n, p) => n + measureFile(join(dir, p))[k], 0);
  for (const k of ['raw', 'gzip', 'brotli']) assert.equal(r.entries['.'][k], sum(r.entries['.'].files, k), k);
  assert.deepEqual(r.entries['./lazy'].dynamic, ['later.js']);
  assert.deepEqual(r.shipped.files, ['extra.js', 'index.js', 'later.js', 'lazy.js', 'wasm/glue.js', 'wasm/m_bg.wasm'], 'no .d.ts, no package.json');
  assert.equal(r.shipped.brotli, sum(r.shipped.files, 'brotli'));
  assert.deepEqual(r.shipped.unreached, []);
  assert.match(entriesMarkdown(r), /\| `fixture\/lazy` \| 2 \|.*includes dynamic import\(\) of later\.js \|/);
});

test('measurePackage refuses an entry that loads a file the tarball does not ship', () => {
  const dir = fixturePackage({ ...PKG, files: PKG.files.filter((f) => f !== 'later.js') });
  assert.throws(() => measurePackage(dir), { message: "entry './lazy' loads later.js, which package.json `files` does not ship" });
});

test('measurePackage reads a "*<suffix>" files entry at any depth, as npm does, and refuses other globs', () => {
  const dir = fixturePackage({ ...PKG, files: [...PKG.files.filter((f) => f !== 'wasm/'), 'wasm/glue.js', 'wasm/m_bg.wasm', '*.js.map'] });
  writeFileSync(join(dir, 'index.js.map'), '{}');
  mkdirSync(join(dir, 'wasm/deep'));
  writeFileSync(join(dir, 'wasm/deep/glue.js.map'), '{}');
  writeFileSync(join(dir, 'wasm/unlisted.js'), '');
  assert.deepEqual(shippedFiles(dir, JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'))).filter((f) => f.endsWith('.map')), ['index.js.map', 'wasm/deep/glue.js.map']);
  assert.deepEqual(measurePackage(dir).shipped.files, ['extra.js', 'index.js', 'later.js', 'lazy.js', 'wasm/glue.js', 'wasm/m_bg.wasm'], 'a map is not loaded, and wasm/unlisted.js is not listed');
  const globbed = fixturePackage({ ...PKG, files: [...PKG.files, 'wasm/**/*.map'] });
  assert.throws(() => measurePackage(globbed), { message: 'package.json `files` entry wasm/**/*.map: of globs, scripts/size.mjs understands only "*<suffix>"' });
});

test('checkBudget fails an entry over its budget, and suggests lowering one far above its size', () => {
  const report = { entries: { '.': { brotli: 10 * 1024 + 1 } }, shipped: { brotli: 4 * 1024 } };
  const over = checkBudget(report, { brotliKB: { '.': 10, shipped: 10 } }, 'budget.json');
  assert.deepEqual(over.failures, ["entry '.' is 10.0 KB brotli, over its budget of 10 KB (budget.json) by 1 bytes"]);
  assert.deepEqual(over.lines, ['everything shipped: 4.0 KB brotli, within its budget of 10 KB; 6.0 KB under it: lower the budget in budget.json to keep the gain']);
  const ok = checkBudget(report, { brotliKB: { '.': 11, shipped: 9 } }, 'budget.json');
  assert.deepEqual(ok.failures, []);
  assert.deepEqual(ok.lines, ["entry '.': 10.0 KB brotli, within its budget of 11 KB", 'everything shipped: 4.0 KB brotli, within its budget of 9 KB']);
  assert.match(checkBudget(report, { brotliKB: { './typo': 1 } }).failures[0], /budget for '\.\/typo', which is not an entry point/);
  assert.match(checkBudget(report, {}).failures[0], /sets no budget/);
});
