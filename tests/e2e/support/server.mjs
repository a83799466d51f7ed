// Starts the reference server (outbox-server) on 127.0.0.1 and a free port, with a fresh SQLite file,
// serving the demo app. `make test` builds the binary in its native test step; OUTBOX_SERVER_BIN overrides
// the path.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const repoRoot = new URL('../../../', import.meta.url).pathname;

export async function startServer({ www = join(repoRoot, 'www'), args = [] } = {}) {
  const bin = process.env.OUTBOX_SERVER_BIN ?? join(repoRoot, 'target/debug/outbox-server');
  if (!existsSync(bin)) throw new Error(`${bin} is missing: build it with cargo build -p outbox-server`);
  const dir = mkdtempSync(join(tmpdir(), 'outbox-e2e-'));
  const child = spawn(bin, ['--addr', '127.0.0.1:0', '--db', join(dir, 'e2e.sqlite'), '--www', www, '--log', 'warn', ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('outbox-server did not start within 10 s')), 10_000);
    child.once('exit', (code) => reject(new Error(`outbox-server exited with ${code}`)));
    createInterface({ input: child.stdout }).on('line', (line) => {
      const match = /^outbox-server listening on (http:\/\/\S+)/.exec(line);
      if (match) {
        clearTimeout(timer);
        resolve(match[1].replace(/\/?$/, '/'));
      }
    });
  });
  return {
    url,
    /** Calls a loopback-only admin endpoint (fault injection, the exactly-once ledger). */
    async admin(path, init) {
      const response = await fetch(new URL(`_admin/${path}`, url), init);
      if (!response.ok) throw new Error(`admin ${path}: ${response.status} ${await response.text()}`);
      return response.status === 204 ? null : response.json();
    },
    async close() {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
