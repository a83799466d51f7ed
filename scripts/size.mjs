#!/usr/bin/env node
// What the package costs a browser, in raw, gzip and brotli bytes (brotli at maximum quality, as a CDN would
// serve it), each file compressed on its own, as a server serves them.
//
//   node scripts/size.mjs           # one line per entry point of pkg/package.json, plus everything shipped
//   node scripts/size.mjs --json    # the same figures as JSON
//   node scripts/size.mjs --check   # the size guard of `make test`: brotli against pkg/size-budget.json
//
// An entry point's size is every file a browser loads when an app imports it: the static module graph from
// the file its `exports` entry names (static `import`/`export … from`, side-effect imports, and the .wasm the
// loader finds with `new URL('…', import.meta.url)`). Bare specifiers (`react`) are the app's and are not
// counted. A dynamic `import('./…')` is counted into the entry too, but the report says so, since the browser
// fetches it only when it runs. "shipped" is every .js and .wasm file of the tarball (package.json `files`):
// the headline figure, what the benchmark's size row reports. The benchmark runner imports `measurePackage()`.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, posix, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
// The package as published (scripts/dist.mjs): its .js files minified, as a browser loads them.
export const PKG_DIR = join(repoRoot, 'dist');
export const BUDGET_FILE = join(repoRoot, 'pkg/size-budget.json');
// A budget this far above its figure is slack a regression could hide in: --check suggests lowering it.
const SLACK_KB = 5;
// The wasm module and its wasm-bindgen glue, relative to the package root (reported on their own too).
export const BUILD_FILES = {
  wasm: 'wasm/outbox_sync_bg.wasm',
  glue: 'wasm/outbox_sync.js',
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

// ------------------------------------------------------------------------------------------------
// The module graph. A small tokenizer rather than regular expressions over the text, so that an import in
// a comment or a string (the usage examples at the top of sync-status.js) is not taken for a real one.
// ------------------------------------------------------------------------------------------------

// After these, a `/` starts a regular expression literal rather than a division.
const BEFORE_EXPRESSION = new Set(['return', 'typeof', 'instanceof', 'in', 'of', 'new', 'delete', 'void', 'throw', 'case', 'do', 'else', 'yield', 'await']);

/** Splits JavaScript into identifiers, strings, punctuators and opaque literals; drops comments. */
export function tokenize(src) {
  const out = [];
  const braces = []; // 'tpl' for a `${` of a template literal, '{' otherwise: tells where a `}` resumes
  const line = (i) => src.slice(0, i).split('\n').length;
  const fail = (what, at) => {
    throw new Error(`unterminated ${what} at line ${line(at)}`);
  };
  const regexAllowed = () => {
    const last = out.at(-1);
    if (!last || last.t === 'tpl-open') return true;
    if (last.t === 'id') return BEFORE_EXPRESSION.has(last.v);
    return last.t === 'p' && !')]}'.includes(last.v);
  };
  let i = src.startsWith('#!') ? src.indexOf('\n') : 0;
  if (i < 0) i = src.length;
  while (i < src.length) {
    const c = src[i];
    if (/\s/.test(c)) {
      i++;
    } else if (c === '/' && src[i + 1] === '/') {
      const end = src.indexOf('\n', i);
      i = end < 0 ? src.length : end;
    } else if (c === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2);
      if (end < 0) fail('comment', i);
      i = end + 2;
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < src.length && src[j] !== c && src[j] !== '\n') j += src[j] === '\\' ? 2 : 1;
      if (src[j] !== c) fail('string', i);
      out.push({ t: 'str', v: src.slice(i + 1, j) });
      i = j + 1;
    } else if (c === '`' || (c === '}' && braces.at(-1) === 'tpl')) {
      if (c === '}') braces.pop();
      let j = i + 1;
      while (j < src.length && src[j] !== '`' && !(src[j] === '$' && src[j + 1] === '{')) j += src[j] === '\\' ? 2 : 1;
      if (j >= src.length) fail('template literal', i);
      if (src[j] === '`') {
        out.push({ t: 'tpl' });
        i = j + 1;
      } else {
        braces.push('tpl');
        out.push({ t: 'tpl-open' });
        i = j + 2;
      }
    } else if (c === '/' && regexAllowed()) {
      let j = i + 1;
      let inClass = false;
      for (; j < src.length && src[j] !== '\n'; j++) {
        if (src[j] === '\\') j++;
        else if (src[j] === '[') inClass = true;
        else if (src[j] === ']') inClass = false;
        else if (src[j] === '/' && !inClass) break;
      }
      if (src[j] !== '/') fail('regular expression', i);
      i = j + 1;
      while (i < src.length && /\w/.test(src[i])) i++;
      out.push({ t: 're' });
    } else if (/[\w$\\]/.test(c) || c > '\x7f') {
      let j = i + 1;
      while (j < src.length && (/[\w$\\]/.test(src[j]) || src[j] > '\x7f')) j++;
      out.push({ t: /[0-9]/.test(c) ? 'num' : 'id', v: src.slice(i, j) });
      i = j;
    } else {
      if (c === '{') braces.push('{');
      if (c === '}') braces.pop();
      out.push({ t: 'p', v: c });
      i++;
    }
  }
  return out;
}

const is = (tok, t, v) => tok !== undefined && tok.t === t && (v === undefined || tok.v === v);

/** After `import` or `export`: the bindings (`x`, `* as x`, `{ a, b as c }`), then `from '…'`; else null. */
function fromClause(tk, k) {
  let depth = 0;
  for (; k < tk.length; k++) {
    const t = tk[k];
    if (depth === 0 && is(t, 'id', 'from') && is(tk[k + 1], 'str')) return tk[k + 1].v;
    if (is(t, 'p', '{')) depth++;
    else if (is(t, 'p', '}')) depth--;
    else if (!(is(t, 'id') || is(t, 'p', '*') || is(t, 'p', ',') || (depth > 0 && is(t, 'str')))) return null;
    if (depth < 0) return null;
  }
  return null;
}

/**
 * The specifiers a module loads: `imports` (static imports and re-exports), `dynamic` (`import('…')` with a
 * literal), `computed` (how many `import(…)` have a specifier that is not a literal: they cannot be followed),
 * and `urls` (`new URL('…', import.meta.url)`, the wasm-bindgen loader's way to find the .wasm).
 */
export function scanModule(src) {
  const tk = tokenize(src);
  const found = { imports: [], dynamic: [], computed: 0, urls: [] };
  for (let k = 0; k < tk.length; k++) {
    const t = tk[k];
    if (t.t !== 'id' || is(tk[k - 1], 'p', '.')) continue; // `x.import` is a property, not the keyword
    const next = tk[k + 1];
    if (t.v === 'import') {
      if (is(next, 'str')) found.imports.push(next.v);
      else if (is(next, 'p', '(')) {
        if (is(tk[k + 2], 'str') && (is(tk[k + 3], 'p', ')') || is(tk[k + 3], 'p', ','))) found.dynamic.push(tk[k + 2].v);
        else found.computed++;
      } else if (!is(next, 'p', '.')) {
        const spec = fromClause(tk, k + 1);
        if (spec !== null) found.imports.push(spec);
      }
    } else if (t.v === 'export' && (is(next, 'p', '*') || is(next, 'p', '{'))) {
      const spec = fromClause(tk, k + 1);
      if (spec !== null) found.imports.push(spec);
    } else if (t.v === 'new' && is(next, 'id', 'URL') && is(tk[k + 2], 'p', '(') && is(tk[k + 3], 'str') && is(tk[k + 4], 'p', ',')) {
      const base = tk.slice(k + 5, k + 11).map((x) => x.v).join('');
      if (base === 'import.meta.url)') found.urls.push(tk[k + 3].v);
    }
  }
  return found;
}

/**
 * Every file a browser loads for one entry, from `entry` (a path relative to `pkgDir`): `files` maps each
 * path to how it was first reached ('entry', 'import', 'url' or 'dynamic'); `external` lists the bare
 * specifiers left to the app; `computed` counts dynamic imports that could not be followed. Cycles are
 * fine (each file counts once); a specifier that names no file, or one outside the package, is an error.
 */
export function moduleGraph(pkgDir, entry) {
  const files = new Map();
  const external = new Set();
  let computed = 0;
  const queue = [{ path: posix.normalize(entry), how: 'entry' }];
  while (queue.length) {
    const { path, how, from, spec } = queue.shift();
    if (files.has(path)) continue;
    const abs = join(pkgDir, path);
    if (!existsSync(abs) || !statSync(abs).isFile()) {
      throw new Error(from ? `${from} ${how === 'url' ? 'loads' : 'imports'} '${spec}', but ${path} does not exist` : `entry file ${path} does not exist`);
    }
    files.set(path, how);
    if (!/\.m?js$/.test(path)) continue;
    let found;
    try {
      found = scanModule(readFileSync(abs, 'utf8'));
    } catch (e) {
      throw new Error(`cannot scan ${path}: ${e.message}`);
    }
    computed += found.computed;
    const follow = (specs, kind) => {
      for (const s of specs) {
        // A module specifier is relative only with ./ or ../; a URL is relative unless it has a scheme or a
        // leading / (new URL('x.wasm', import.meta.url) is the file next to the module).
        const relativeSpec = kind === 'url' ? !/^([a-z][a-z0-9+.-]*:|\/)/i.test(s) : /^\.{1,2}\//.test(s);
        if (!relativeSpec) {
          external.add(s);
          continue;
        }
        const target = posix.normalize(posix.join(posix.dirname(path), s));
        if (target.startsWith('../')) throw new Error(`${path} ${kind === 'url' ? 'loads' : 'imports'} '${s}', which is outside the package`);
        queue.push({ path: target, how: kind, from: path, spec: s });
      }
    };
    follow(found.imports, 'import');
    follow(found.urls, 'url');
    follow(found.dynamic, 'dynamic');
  }
  return { files, external: [...external].sort(), computed };
}

/** The entry points whose target is a .js file: [name, path] pairs, in package.json order. */
export function entryPoints(pkg) {
  const target = (t) => {
    if (typeof t === 'string') return t;
    if (t && typeof t === 'object') {
      // The conditions a browser build matches; `types` is for TypeScript only.
      for (const [cond, sub] of Object.entries(t)) if (['browser', 'import', 'module', 'default'].includes(cond)) return target(sub);
    }
    return null;
  };
  const exports = typeof pkg.exports === 'string' || !pkg.exports ? { '.': pkg.exports ?? pkg.module ?? pkg.main } : pkg.exports;
  return Object.entries(exports)
    .map(([name, t]) => [name, target(t)])
    .filter(([, t]) => typeof t === 'string' && /\.m?js$/.test(t))
    .map(([name, t]) => [name, posix.normalize(t)]);
}

/** Every file of the tarball, from package.json `files` (paths, folders, and "*<suffix>" at any depth). */
export function shippedFiles(pkgDir, pkg) {
  const out = [];
  const walk = (rel) => {
    const abs = join(pkgDir, rel);
    if (!existsSync(abs)) throw new Error(`package.json \`files\` lists ${rel}, which does not exist`);
    if (statSync(abs).isDirectory()) for (const name of readdirSync(abs).sort()) walk(posix.join(rel, name));
    else out.push(rel);
  };
  for (const f of pkg.files ?? []) {
    // npm reads an entry without a slash, such as "*.js.map", as .gitignore does: at any depth. That form, a
    // `*` and a file-name suffix, is the one glob this script understands.
    const suffix = /^\*([^*?[/]+)$/.exec(f)?.[1];
    if (suffix) {
      for (const rel of readdirSync(pkgDir, { recursive: true }).sort()) if (rel.endsWith(suffix)) out.push(rel.split(sep).join('/'));
    } else if (/[*?[]/.test(f)) {
      throw new Error(`package.json \`files\` entry ${f}: of globs, scripts/size.mjs understands only "*<suffix>"`);
    } else {
      walk(posix.normalize(f).replace(/\/$/, ''));
    }
  }
  return [...new Set(out)];
}

/**
 * The sizes of the package in `pkgDir`: `entries` (per entry point: its files and their summed sizes, the
 * bare imports it leaves to the app, its dynamic imports), `shipped` (every .js and .wasm of the tarball),
 * `wasm` and `glue` (the two build files alone), and `total` (wasm + glue: what this script reported before
 * it measured entry points).
 */
export function measurePackage(pkgDir = PKG_DIR) {
  const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
  const cache = new Map();
  const measure = (path) => {
    if (!cache.has(path)) cache.set(path, measureFile(join(pkgDir, path)));
    return cache.get(path);
  };
  const sum = (paths) => {
    const s = { files: [...paths], raw: 0, gzip: 0, brotli: 0 };
    for (const p of s.files) for (const k of ['raw', 'gzip', 'brotli']) s[k] += measure(p)[k];
    return s;
  };
  const tarball = shippedFiles(pkgDir, pkg);
  const shipped = new Set(tarball.filter((f) => /\.(m?js|wasm)$/.test(f)));
  const entries = {};
  for (const [name, path] of entryPoints(pkg)) {
    const graph = moduleGraph(pkgDir, path);
    for (const f of graph.files.keys()) {
      if (!tarball.includes(f)) throw new Error(`entry '${name}' loads ${f}, which package.json \`files\` does not ship`);
    }
    const dynamic = [...graph.files].filter(([, how]) => how === 'dynamic').map(([f]) => f);
    entries[name] = { ...sum(graph.files.keys()), external: graph.external, dynamic, computed: graph.computed };
  }
  const reached = new Set(Object.values(entries).flatMap((e) => e.files));
  // The wasm-bindgen build files, when the package has them (a test fixture need not).
  const built = Object.entries(BUILD_FILES).filter(([, p]) => shipped.has(p));
  const files = Object.fromEntries(built.map(([k, p]) => [k, { path: p, ...measure(p) }]));
  const total = { raw: 0, gzip: 0, brotli: 0 };
  for (const f of Object.values(files)) for (const k of Object.keys(total)) total[k] += f[k];
  return {
    name: pkg.name,
    ...files,
    total,
    entries,
    shipped: { ...sum([...shipped].sort()), unreached: [...shipped].filter((f) => !reached.has(f)) },
  };
}

/** The old name: the package under `root`/pkg. */
export function measureBuild(root = repoRoot) {
  return measurePackage(join(root, 'pkg'));
}

// ------------------------------------------------------------------------------------------------
// Reports and the budget
// ------------------------------------------------------------------------------------------------

export const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
const importName = (pkgName, entry) => (entry === '.' ? pkgName : `${pkgName}/${entry.slice(2)}`);

/** Notes for one entry, for both the text table and the markdown one. */
function entryNotes(e) {
  return [
    ...(e.external.length ? [`+ ${e.external.join(', ')} from the app`] : []),
    ...(e.dynamic.length ? [`includes dynamic import() of ${e.dynamic.join(', ')}`] : []),
    ...(e.computed ? [`${e.computed} import() with a computed specifier, not counted`] : []),
  ];
}

export function textReport(report) {
  const rows = [...Object.entries(report.entries), ['shipped', report.shipped]];
  const width = Math.max(...rows.map(([n]) => n.length));
  const lines = rows.map(([name, s]) => {
    const note = name === 'shipped' ? ['every .js and .wasm file of the package'] : entryNotes(s);
    const files = `${String(s.files.length).padStart(3)} file${s.files.length === 1 ? ' ' : 's'}`;
    return `size ${name.padEnd(width)} ${files}  raw ${kb(s.raw).padStart(9)}  gzip ${kb(s.gzip).padStart(9)}  brotli ${kb(s.brotli).padStart(9)}${note.length ? `  (${note.join('; ')})` : ''}`;
  });
  if (report.wasm && report.glue) lines.push(`size (of which the wasm module: brotli ${kb(report.wasm.brotli)}, its glue ${kb(report.glue.brotli)})`);
  if (report.shipped.unreached.length) lines.push(`size note: shipped but loaded by no entry point: ${report.shipped.unreached.join(', ')}`);
  return lines.join('\n');
}

/** The per-entry table of the benchmark results (markdown). */
export function entriesMarkdown(report, pkgName = report.name) {
  const rows = ['| Import (each file compressed on its own) | Files | Raw | gzip | brotli | |', '|---|---|---|---|---|---|'];
  const row = (what, s, notes) => rows.push(`| ${what} | ${s.files.length} | ${kb(s.raw)} | ${kb(s.gzip)} | ${kb(s.brotli)} | ${notes.join('; ')} |`);
  for (const [name, e] of Object.entries(report.entries)) row(`\`${importName(pkgName, name)}\``, e, entryNotes(e));
  row('everything shipped (all .js and .wasm)', report.shipped, []);
  return rows.join('\n');
}

/**
 * Checks brotli sizes against `budget.brotliKB` (entry name, or "shipped", to KB of 1024 bytes). Returns
 * `failures` (messages naming the entry, its size and its budget) and `lines` (the passes, with a note when
 * one is more than SLACK_KB under its budget).
 */
export function checkBudget(report, budget, where = 'pkg/size-budget.json') {
  const failures = [];
  const lines = [];
  const limits = budget.brotliKB ?? {};
  if (!Object.keys(limits).length) failures.push(`${where} sets no budget (expected "brotliKB": { "shipped": …, ".": … })`);
  for (const [name, limitKB] of Object.entries(limits)) {
    const s = name === 'shipped' ? report.shipped : report.entries[name];
    if (!s) {
      failures.push(`${where} has a budget for '${name}', which is not an entry point (${Object.keys(report.entries).join(', ')}) nor "shipped"`);
      continue;
    }
    const what = name === 'shipped' ? 'everything shipped' : `entry '${name}'`;
    const limit = limitKB * 1024;
    if (!(typeof limitKB === 'number' && limitKB > 0)) failures.push(`${where}: the budget for '${name}' is not a positive number of KB`);
    else if (s.brotli > limit) failures.push(`${what} is ${kb(s.brotli)} brotli, over its budget of ${limitKB} KB (${where}) by ${s.brotli - limit} bytes`);
    else {
      const slack = limit - s.brotli > SLACK_KB * 1024 ? `; ${kb(limit - s.brotli)} under it: lower the budget in ${where} to keep the gain` : '';
      lines.push(`${what}: ${kb(s.brotli)} brotli, within its budget of ${limitKB} KB${slack}`);
    }
  }
  return { failures, lines };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  let report;
  try {
    report = measurePackage();
  } catch (e) {
    console.error(`size: ${e.message}${existsSync(join(PKG_DIR, BUILD_FILES.wasm)) ? '' : '\nsize: run the build first (make build)'}`);
    process.exit(1);
  }
  if (process.argv.includes('--check')) {
    const where = relative(repoRoot, BUDGET_FILE);
    let budget;
    try {
      budget = JSON.parse(readFileSync(BUDGET_FILE, 'utf8'));
    } catch (e) {
      console.error(`size guard FAILED: cannot read the budget ${where}: ${e.message}`);
      process.exit(1);
    }
    const { failures, lines } = checkBudget(report, budget, where);
    for (const l of lines) console.log(`size guard: ${l}`);
    for (const f of failures) console.error(`size guard FAILED: ${f}`);
    process.exit(failures.length ? 1 : 0);
  } else if (process.argv.includes('--json')) {
    console.log(JSON.stringify(report, null, 2));
  } else {
    console.log(textReport(report));
  }
}
