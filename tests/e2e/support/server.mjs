// Starts the reference server (outbox-server) on 127.0.0.1 and a free port, with a fresh database, serving
// the demo app. `make test` builds the binary in its native test step; OUTBOX_SERVER_BIN overrides the path.
//
// The database is a fresh SQLite file, or, with OUTBOX_E2E_DB=postgres, a fresh database in a throw-away
// PostgreSQL cluster (scripts/pg-scratch.sh) that this process starts on first use; a watchdog stops and
// deletes the cluster once this process exits.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

const repoRoot = new URL('../../../', import.meta.url).pathname;

const pgScratch = join(repoRoot, 'scripts/pg-scratch.sh');
let cluster;
let databases = 0;

/** A new, empty database for one server: its `--db` argument. */
function freshDatabase(dir) {
  const store = process.env.OUTBOX_E2E_DB ?? 'sqlite';
  if (store === 'sqlite') return join(dir, 'e2e.sqlite');
  if (store !== 'postgres') throw new Error(`OUTBOX_E2E_DB must be sqlite or postgres, not ${store}`);
  const run = (...args) => execFileSync('bash', [pgScratch, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  if (!cluster) {
    const [url, clusterDir] = run('start', '--owner', String(process.pid)).trim().split('\n');
    cluster = { url, dir: clusterDir };
  }
  return run('createdb', cluster.dir, `e2e_${process.pid}_${databases++}`).trim();
}

export async function startServer({ www = join(repoRoot, 'www'), args = [] } = {}) {
  const bin = process.env.OUTBOX_SERVER_BIN ?? join(repoRoot, 'target/debug/outbox-server');
  if (!existsSync(bin)) throw new Error(`${bin} is missing: build it with cargo build -p outbox-server`);
  const dir = mkdtempSync(join(tmpdir(), 'outbox-e2e-'));
  const db = freshDatabase(dir);
  const child = spawn(bin, ['--addr', '127.0.0.1:0', '--db', db, '--www', www, '--log', 'warn', ...args], {
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
