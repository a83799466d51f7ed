// Writes every ```js, ```ts and ```tsx block of the READMEs into tests/types/snippets/ (generated, ignored by
// git), so that `tsc -p tests/types` type-checks the documentation as strictly as the tests: a README example
// that stops compiling fails `make test`, like any other test.
//
//   node tests/types/extract-snippets.mjs
//
// How a block becomes a file:
// - Its `import` declarations are kept at the top; the rest becomes the body of an `async function`, so an
//   example may `await` and may use `outbox` without opening one (`outbox` is declared, as an untyped
//   `Outbox`, outside the function; a block that opens its own simply shadows it).
// - A block that exports something is a module already: it is written as it is, without the function.
// - ```js blocks must also be plain JavaScript (no type annotations, no `!`): they are parsed as JavaScript
//   first, then type-checked as TypeScript like the others.
// - ```jsx, ```html, ```css and ```sh blocks are not compiled.
// - `outbox-sync`, `outbox-sync/sync-status` and `outbox-sync/react` resolve to the built package in dist/ (`paths` in
//   tests/types/tsconfig.json). A ```tsx block importing `outbox-sync/react` is left out while pkg/react.d.ts
//   does not exist.
//
// An HTML comment on the line right before a fence (invisible on npm and GitHub) adjusts one block:
//
//   <!-- snippet: skip -->                  not compiled (say why in the text around it)
//   <!-- snippet: module -->                written as it is, without the function
//   <!-- snippet
//   declare const myRpc: { … };             the lines after `snippet` are declarations put before the block
//   -->                                     (its preamble: the names an example uses but does not define)
//
// `module` may be followed by preamble lines too. A file's first line says which README line it came from.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const out = join(here, 'snippets');
const READMES = ['pkg/README.md', 'README.md'];
const COMPILED = new Set(['js', 'ts', 'tsx']);

/** Every fenced block of a Markdown file: `{ lang, code, line, marker }` (`line` is the fence's, 1-based). */
function fencedBlocks(markdown) {
  const lines = markdown.split('\n');
  const blocks = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([\w-]*)/.exec(lines[i]);
    if (!open) continue;
    const [, indent, fence, lang] = open;
    const start = i;
    const body = [];
    for (i++; i < lines.length && !lines[i].trimStart().startsWith(fence); i++) {
      body.push(lines[i].startsWith(indent) ? lines[i].slice(indent.length) : lines[i]);
    }
    blocks.push({ lang: lang.toLowerCase(), code: body.join('\n'), line: start + 1, marker: markerBefore(lines, start) });
  }
  return blocks;
}

/** The `<!-- snippet … -->` comment ending on the line before `fenceIndex`, parsed; or null. */
function markerBefore(lines, fenceIndex) {
  const end = fenceIndex - 1;
  if (end < 0 || !lines[end].trim().endsWith('-->')) return null;
  let start = end;
  while (start > 0 && !lines[start].includes('<!--')) start--;
  const text = lines.slice(start, end + 1).join('\n');
  const match = /^\s*<!--\s*snippet\b:?([^\n]*)\n?([\s\S]*?)-->\s*$/.exec(text);
  if (!match) return null;
  const [, first, rest] = match;
  const words = first.trim().split(/\s+/).filter(Boolean);
  const unknown = words.filter((w) => w !== 'skip' && w !== 'module');
  if (unknown.length > 0) throw new Error(`line ${start + 1}: unknown snippet option ${unknown.join(' ')}`);
  return { skip: words.includes('skip'), module: words.includes('module'), preamble: rest.trimEnd() };
}

/** Syntax errors of `code` read as plain JavaScript (TypeScript-only syntax included). */
function javascriptErrors(code) {
  const { diagnostics = [] } = ts.transpileModule(code, {
    fileName: 'snippet.js',
    reportDiagnostics: true,
    compilerOptions: { allowJs: true, module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  });
  return diagnostics.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
}

/** The block as a TypeScript file (see the top of this file). */
function toModule(block, source) {
  const kind = block.lang === 'tsx' ? ts.ScriptKind.TSX : ts.ScriptKind.TS;
  const file = ts.createSourceFile(`snippet.${block.lang}`, block.code, ts.ScriptTarget.Latest, true, kind);
  const isExport = (s) =>
    ts.isExportDeclaration(s) ||
    ts.isExportAssignment(s) ||
    (ts.canHaveModifiers(s) && ts.getModifiers(s)?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword));
  const header = `// Generated from ${source} line ${block.line + 1} by tests/types/extract-snippets.mjs. Do not edit.`;
  const preamble = block.marker?.preamble ? [block.marker.preamble] : [];
  if (block.marker?.module || file.statements.some(isExport)) {
    return [header, ...preamble, block.code, 'export {};', ''].join('\n');
  }
  // An import is taken with the rest of its line (a comment there explains it).
  const lineEnd = (pos) => (block.code.indexOf('\n', pos) + 1 || block.code.length + 1) - 1;
  const imports = file.statements.filter(ts.isImportDeclaration);
  const text = (node) => block.code.slice(node.getFullStart(), lineEnd(node.getEnd())).replace(/^\n+/, '');
  const bodyStart = imports.length > 0 ? lineEnd(imports[imports.length - 1].getEnd()) : 0;
  return [
    header,
    ...imports.map(text),
    "import type * as __outboxSync from 'outbox-sync';",
    'declare const outbox: __outboxSync.Outbox;',
    ...preamble,
    'export async function snippet(): Promise<void> {',
    block.code.slice(bodyStart).replace(/^\n+/, ''),
    '}',
    '',
  ].join('\n');
}

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const hasReactTypes = existsSync(join(root, 'pkg', 'react.d.ts'));
const problems = [];
let written = 0;
for (const readme of READMES) {
  const path = join(root, readme);
  if (!existsSync(path)) continue;
  const stem = readme.replace(/\.md$/i, '').replace(/[^\w]+/g, '-').toLowerCase();
  for (const block of fencedBlocks(readFileSync(path, 'utf8'))) {
    if (!COMPILED.has(block.lang) || block.marker?.skip) continue;
    if (block.lang === 'tsx' && !hasReactTypes && /from\s+['"]outbox-sync\/react['"]/.test(block.code)) {
      console.log(`skipped ${readme}:${block.line} (pkg/react.d.ts does not exist yet)`);
      continue;
    }
    if (block.lang === 'js') {
      for (const error of javascriptErrors(block.code)) problems.push(`${readme}:${block.line}: not JavaScript: ${error}`);
    }
    const name = `${stem}-${String(block.line).padStart(4, '0')}.${block.lang === 'tsx' ? 'tsx' : 'ts'}`;
    writeFileSync(join(out, name), toModule(block, readme));
    written++;
  }
}
if (problems.length > 0) {
  console.error(problems.join('\n'));
  process.exit(1);
}
console.log(`wrote ${written} README snippets to ${relative(root, out)}/`);
