// A deliberately broken server for the hostile-server suite: each path prefix is one misbehaviour a real
// proxy, captive portal or broken API produces. It speaks just enough of docs/PROTOCOL.md to ack what a
// well-behaved endpoint would, allows every origin (CORS), and logs every request per scenario so a test
// can count what reached it: `GET /__log/<scenario>`.
import { createServer } from 'node:http';

const PROBLEM = 'https://outbox-sync.dev/problems/';

function cors(res) {
  res.setHeader('Access-Control-Allow-Origin', '*');
  res.setHeader('Access-Control-Expose-Headers', '*');
}

function send(res, status, headers = {}, body = undefined) {
  cors(res);
  res.writeHead(status, headers);
  res.end(body);
}

function json(res, status, value, headers = {}) {
  send(res, status, { 'Content-Type': 'application/json', ...headers }, JSON.stringify(value));
}

function problem(res, status, type, extra = {}) {
  json(res, status, { type: PROBLEM + type, title: type, status, ...extra }, { 'Content-Type': 'application/problem+json' });
}

/** A well-behaved answer: the document and version 1 for a write, one result per op for a push. */
function ok(req, res, body) {
  if (req.url.endsWith('/push')) {
    const results = JSON.parse(body).ops.map((op) => ({ id: op.id, status: 200, version: 1, etag: '"1"', doc: op.body ?? null }));
    return json(res, 200, { results });
  }
  if (req.method === 'DELETE') return send(res, 204, { ETag: '"2"' });
  return json(res, 200, body ? JSON.parse(body) : null, { ETag: '"1"' });
}

const scenarios = {
  ok,
  redirect: (req, res) => send(res, 303, { Location: '/ok/elsewhere' }),
  'batch-limit': (req, res, body) => {
    const ops = JSON.parse(body).ops;
    if (ops.length > 10) return problem(res, 413, 'batch-too-large', { maxOps: 10 });
    return ok(req, res, body);
  },
  poison: (req, res, body) => {
    if (JSON.parse(body).ops.some((op) => op.body?.poison)) return problem(res, 400, 'malformed-json');
    return ok(req, res, body);
  },
  'retry-after-zero': (req, res) => problem(res, 429, 'rate-limited', {}),
  'retry-after-past': (req, res) => {
    cors(res);
    res.writeHead(503, { 'Retry-After': 'Thu, 01 Jan 2015 00:00:00 GMT', 'Content-Type': 'text/plain' });
    res.end('busy');
  },
  'retry-after-huge': (req, res) => {
    cors(res);
    res.writeHead(429, { 'Retry-After': '315360000' });
    res.end();
  },
  'retry-after-garbage': (req, res) => send(res, 503, { 'Retry-After': 'soon', 'Content-Type': 'text/html' }, '<h1>Busy</h1>'),
  endless: (req, res) => {
    cors(res);
    res.writeHead(200, { 'Content-Type': 'application/json', ETag: '"1"' });
    res.write('{"never": "ends"');
    // ...and never ends.
  },
  'no-body-409': (req, res) => send(res, 409),
  'bad-412': (req, res) => json(res, 412, { current: 'garbage' }),
  'weak-etag': (req, res, body) => json(res, 200, body ? JSON.parse(body) : null, { ETag: 'W/"5"' }),
  'html-200': (req, res) => send(res, 200, { 'Content-Type': 'text/html' }, '<html>Sign in to the Wi-Fi</html>'),
  'html-500': (req, res) => send(res, 500, { 'Content-Type': 'text/html' }, '<html>Internal Server Error</html>'),
  'huge-200': (req, res, body) => {
    cors(res);
    res.writeHead(200, { 'Content-Type': 'text/plain', ETag: '"1"' });
    res.end('x'.repeat(6 * 1024 * 1024));
  },
  reset: (req) => req.socket.destroy(),
  stall: () => {},
};

// Retry-After: 0 on the first scenario: the header goes on top of the problem.
const withHeaders = { 'retry-after-zero': { 'Retry-After': '0' } };

export async function startHostileServer() {
  const log = new Map();
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      const [, scenario] = req.url.split('/');
      if (req.method === 'OPTIONS') {
        cors(res);
        res.setHeader('Access-Control-Allow-Methods', 'GET, PUT, PATCH, DELETE, POST');
        res.setHeader('Access-Control-Allow-Headers', '*');
        res.setHeader('Access-Control-Max-Age', '600');
        res.writeHead(204);
        return res.end();
      }
      if (scenario === '__log') {
        const name = req.url.split('/')[2];
        return json(res, 200, log.get(name) ?? []);
      }
      const handler = scenarios[scenario];
      if (!handler) return problem(res, 404, 'not-found');
      if (!log.has(scenario)) log.set(scenario, []);
      log.get(scenario).push({ method: req.method, url: req.url, headers: req.headers, body, at: Date.now() });
      for (const [name, value] of Object.entries(withHeaders[scenario] ?? {})) res.setHeader(name, value);
      handler(req, res, body);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://127.0.0.1:${port}`,
    log: (scenario) => log.get(scenario) ?? [],
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(resolve);
      }),
  };
}
