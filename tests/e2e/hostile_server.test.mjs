// Hostile input and hostile servers, end to end: the package in headless Chromium against a deliberately
// broken server (support/hostile-server.mjs) and the reference server. For each case: nothing is lost,
// nothing is acked unless the server applied it, nothing waits longer than the cap, and the outcome is
// the one the classification table documents.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { launchChromium } from './support/browser.mjs';
import { startHostileServer } from './support/hostile-server.mjs';
import { startServer } from './support/server.mjs';

let server;
let hostile;
let browser;
let page;

before(async () => {
  [server, hostile] = await Promise.all([startServer(), startHostileServer()]);
  browser = await launchChromium();
  page = await browser.newPage();
  await page.goto(server.url);
});

after(async () => {
  await browser?.close();
  await hostile?.close();
  await server?.close();
});

/**
 * Runs `fn({ Outbox, open, sleep }, arg)` in the page. `open(scenario, extra)` opens an outbox on that
 * scenario of the hostile server (fresh name, no automatic drain).
 */
function inPage(fn, arg = {}) {
  return page.evaluate(
    async ({ source, arg, hostileUrl }) => {
      const { Outbox } = await import('outbox-sync');
      const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
      const open = (scenario, extra = {}) =>
        Outbox.open({
          name: `hostile-${scenario}-${Math.random()}`,
          endpoint: `${hostileUrl}/${scenario}`,
          autoDrain: false,
          collections: { notes: { versioned: false } },
          ...extra,
        });
      const refusal = async (promise) => {
        try {
          await promise;
          return null;
        } catch (e) {
          return { name: e.name, code: e.code, message: e.message };
        }
      };
      return new Function(`return (${source})`)()({ Outbox, open, sleep, refusal }, arg);
    },
    { source: fn.toString(), arg, hostileUrl: hostile.url },
  );
}

const put = (key, value) => ({ collection: 'notes', key, op: 'put', value });

test('a redirect is never followed and never an ack: the op fails, visibly', async () => {
  const r = await inPage(async ({ open }) => {
    const outbox = await open('redirect');
    await outbox.enqueue({ collection: 'notes', key: 'a', op: 'patch', value: { done: true } });
    await outbox.drain();
    const failed = await outbox.failed();
    await outbox.close();
    return { failed: failed.map((op) => op.lastError.code) };
  });
  assert.deepEqual(r.failed, ['urn:outbox-sync:redirected']);
  const log = hostile.log('redirect');
  assert.deepEqual(log.map((q) => q.method), ['PATCH'], 'the PATCH only: no GET to the Location');
});

test('keys of every character class reach the exact document; dot segments are refused at enqueue', async () => {
  const keys = ['a/b', 'q?x=1', 'h#1', '100%', '%2e%2e', ' space ', 'back\\slash', 'é', '🙂', 'semi;colon', 'a+b', 'x&y', '...'];
  const r = await page.evaluate(async (keys) => {
    const { Outbox } = await import('outbox-sync');
    const outbox = await Outbox.open({ name: `keys-${Math.random()}`, endpoint: '/api', collections: { keys: { versioned: false } } });
    const refused = [];
    for (const [collection, key] of [['keys', '.'], ['keys', '..'], ['..', 'x']]) {
      try {
        await outbox.enqueue({ collection, key, op: 'put', value: { key } });
      } catch (e) {
        refused.push(e.code);
      }
    }
    for (const key of keys) await outbox.enqueue({ collection: 'keys', key, op: 'put', value: { key } });
    await outbox.drain();
    const stored = [];
    for (const key of keys) {
      const res = await fetch(`/api/docs/keys/${encodeURIComponent(key)}`);
      stored.push(res.ok ? (await res.json()).key : `HTTP ${res.status}`);
    }
    const status = outbox.status();
    await outbox.close();
    return { refused, stored, failed: status.failed };
  }, keys);
  assert.deepEqual(r.refused, ['INVALID_OP', 'INVALID_OP', 'INVALID_OP']);
  assert.deepEqual(r.stored, keys, 'each op landed on the document of its own key');
  assert.equal(r.failed, 0);
});

test('a push over the server limit is split to it, and no op is failed for it', async () => {
  const r = await inPage(async ({ open }) => {
    const outbox = await open('batch-limit', { batch: true, maxBatchOps: 5000 });
    const all = [];
    for (let i = 0; i < 1200; i++) all.push(outbox.enqueue({ collection: 'notes', key: `k${i}`, op: 'put', value: { i } }));
    await Promise.all(all);
    let report;
    for (let round = 0; round < 20 && outbox.status().pending > 0; round++) report = await outbox.drain();
    const status = outbox.status();
    await outbox.close();
    return { status, report };
  });
  assert.equal(r.status.failed, 0);
  assert.equal(r.status.pending, 0);
  const pushes = hostile.log('batch-limit').map((q) => JSON.parse(q.body).ops.length);
  assert.equal(pushes[0], 1200, 'the first push tried them all');
  assert.ok(pushes.slice(1).every((n) => n <= 10), `then at most the server's 10: ${pushes.slice(1, 5)}`);
  assert.equal(pushes.slice(1).reduce((a, b) => a + b, 0), 1200);
});

test('a push refused as a whole fails only the op that caused it', async () => {
  const r = await inPage(async ({ open }) => {
    const outbox = await open('poison', { batch: true });
    const all = [];
    for (let i = 0; i < 20; i++) all.push(outbox.enqueue(i === 7 ? { collection: 'notes', key: 'k7', op: 'put', value: { poison: true } } : { collection: 'notes', key: `k${i}`, op: 'put', value: { i } }));
    await Promise.all(all);
    for (let round = 0; round < 30 && outbox.status().pending > 0; round++) await outbox.drain();
    const failed = (await outbox.failed()).map((op) => op.key);
    const status = outbox.status();
    await outbox.close();
    return { failed, status };
  });
  assert.deepEqual(r.failed, ['k7']);
  assert.equal(r.status.pending, 0, 'the 19 innocent ops were acked');
});

test('Retry-After: 0 or a date in the past never makes the client hammer', async () => {
  for (const scenario of ['retry-after-zero', 'retry-after-past']) {
    const r = await inPage(
      async ({ open, sleep }, { scenario }) => {
        const outbox = await open(scenario, { autoDrain: true, retry: { baseMs: 200, capMs: 5000 } });
        await outbox.enqueue({ collection: 'notes', key: 'a', op: 'put', value: 1 });
        await sleep(3000);
        const status = outbox.status();
        await outbox.close();
        return { status };
      },
      { scenario },
    );
    const requests = hostile.log(scenario).length;
    // Before: 220-237 requests per second. Now the waits grow from the floor: a handful in 3 s.
    assert.ok(requests >= 2 && requests <= 12, `${scenario}: ${requests} requests in 3 s`);
    assert.equal(r.status.failed, 0, 'waiting out a limit is not a failure');
  }
});

test('a Retry-After of ten years is capped at an hour, across a reload too, and retry() lifts it', async () => {
  const r = await inPage(async ({ Outbox, sleep }, { url }) => {
    const name = `huge-${Math.random()}`;
    const options = { name, endpoint: `${url}/retry-after-huge`, collections: { notes: { versioned: false } } };
    let outbox = await Outbox.open(options);
    await outbox.enqueue({ collection: 'notes', key: 'a', op: 'put', value: 1 });
    await sleep(300);
    const blocked = outbox.status().blockedUntil - Date.now();
    await outbox.close();
    outbox = await Outbox.open({ ...options, autoDrain: false });
    const afterReload = outbox.status().blockedUntil - Date.now();
    await outbox.drain();
    const afterDrain = outbox.status().state;
    // The user's explicit retry lifts the wait: one request goes out at once.
    await outbox.retryAll();
    await sleep(300);
    const afterRetry = { blockedUntil: outbox.status().blockedUntil };
    await outbox.close();
    return { blocked, afterReload, afterDrain, afterRetry };
  }, { url: hostile.url });
  assert.ok(r.blocked > 0 && r.blocked <= 3_600_000, `blocked for ${r.blocked} ms`);
  assert.ok(r.afterReload > 0 && r.afterReload <= 3_600_000, `and after the reload ${r.afterReload} ms`);
  assert.equal(r.afterDrain, 'blocked', 'drain() keeps the wait');
  const sent = hostile.log('retry-after-huge').length;
  assert.equal(sent, 2, 'the first send, and the one the retry asked for');
  assert.ok(r.afterRetry.blockedUntil > Date.now(), 'which the server answered with a new wait');
});

test('the timeout covers a body that never ends', async () => {
  const r = await inPage(async ({ open, sleep }) => {
    const outbox = await open('endless', { timeoutMs: 500, retry: { baseMs: 100, capMs: 100 } });
    await outbox.enqueue({ collection: 'notes', key: 'a', op: 'put', value: 1 });
    const started = Date.now();
    await outbox.drain();
    const took = Date.now() - started;
    const [op] = await outbox.pending();
    await outbox.close();
    return { took, error: op?.lastError?.message };
  });
  assert.ok(r.took < 2000, `drain returned after ${r.took} ms`);
  assert.match(r.error, /timed out after 500 ms/);
});

test('input that fetch would refuse at every send is refused at once', async () => {
  const r = await inPage(async ({ Outbox, open, refusal }, { url }) => {
    const outbox = await open('ok');
    const badVersion = await refusal(outbox.enqueue({ collection: 'notes', key: 'a', op: 'put', value: 1, baseVersion: '"1"\n"2"' }));
    await outbox.close();
    const base = { name: `cfg-${Math.random()}`, endpoint: `${url}/ok` };
    return {
      badVersion: badVersion?.code,
      nonLatin1Client: (await refusal(Outbox.open({ ...base, clientId: 'élan' })))?.code,
      emptyClient: (await refusal(Outbox.open({ ...base, clientId: '' })))?.code,
      notAUrl: (await refusal(Outbox.open({ ...base, endpoint: 'not a url' })))?.code,
      hugeTimeout: (await refusal(Outbox.open({ ...base, timeoutMs: 2 ** 31 })))?.code,
    };
  }, { url: hostile.url });
  assert.deepEqual(r, {
    badVersion: 'INVALID_OP',
    nonLatin1Client: 'INVALID_CONFIG',
    emptyClient: 'INVALID_CONFIG',
    notAUrl: 'INVALID_CONFIG',
    hugeTimeout: 'INVALID_CONFIG',
  });
});

test('an auth callback returning a header fetch refuses fails the op, not the network', async () => {
  const before = hostile.log('ok').length;
  const r = await inPage(async ({ open }) => {
    const outbox = await open('ok', { auth: () => ({ 'bad name': 'x' }) });
    await outbox.enqueue({ collection: 'notes', key: 'auth', op: 'put', value: 1 });
    await outbox.drain();
    const [op] = await outbox.failed();
    const status = outbox.status();
    await outbox.close();
    return { code: op?.lastError?.code, message: op?.lastError?.message, pending: status.pending };
  });
  assert.equal(r.code, 'urn:outbox-sync:request-refused');
  assert.match(r.message, /options\.auth/);
  assert.equal(r.pending, 0, 'not retried forever');
  assert.equal(hostile.log('ok').length, before, 'nothing was sent');
});

test('a weak ETag never becomes If-Match, so the next edit is no conflict', async () => {
  const r = await inPage(async ({ open }) => {
    const outbox = await open('weak-etag', { collections: { notes: { versioned: true } } });
    await outbox.enqueue({ collection: 'notes', key: 'w', op: 'put', value: { v: 1 } });
    await outbox.drain();
    await outbox.enqueue({ collection: 'notes', key: 'w', op: 'put', value: { v: 2 } });
    await outbox.drain();
    const status = outbox.status();
    await outbox.close();
    return { status };
  });
  const [first, second] = hostile.log('weak-etag');
  assert.equal(first.headers['if-none-match'], '*', 'a create of an unseen document');
  assert.equal(second.headers['if-match'], undefined, 'no If-Match: W/"5" (it could never match)');
  assert.equal(r.status.conflicts, 0);
  assert.equal(r.status.pending, 0);
});

test('without evidence of a version conflict, nothing is dropped', async () => {
  const r = await inPage(async ({ open }) => {
    const bare = await open('no-body-409', { collections: { notes: { conflict: 'server-wins' } } });
    await bare.enqueue({ collection: 'notes', key: 'a', op: 'put', value: 1 });
    await bare.drain();
    const bare409 = { failed: (await bare.failed()).length, conflicts: (await bare.conflicts()).length };
    await bare.close();
    const bad = await open('bad-412', { collections: { notes: { conflict: 'server-wins', versioned: true } } });
    await bad.enqueue({ collection: 'notes', key: 'a', op: 'put', value: 1 });
    await bad.drain();
    const bad412 = { failed: (await bad.failed()).length, conflicts: (await bad.conflicts()).length };
    await bad.close();
    return { bare409, bad412 };
  });
  assert.deepEqual(r.bare409, { failed: 1, conflicts: 0 }, 'a bare 409 is a refusal the app sees');
  assert.deepEqual(r.bad412, { failed: 0, conflicts: 1 }, 'a 412 without the server state is held, not dropped');
});

test('values JSON would change are refused, naming where they are', async () => {
  const r = await inPage(async ({ open, refusal }) => {
    const outbox = await open('ok');
    const cycle = {};
    cycle.self = cycle;
    const deep = [];
    let at = deep;
    for (let i = 0; i < 101; i++) at = at[0] = [];
    const cases = {
      nan: { n: NaN },
      infinity: { list: [1, Infinity] },
      negativeZero: { z: -0 },
      date: { dueAt: new Date(0) },
      map: { m: new Map() },
      set: { s: new Set([1]) },
      typed: { bytes: new Uint8Array(2) },
      func: { f() {} },
      undef: { u: undefined },
      symbol: { [Symbol('s')]: 1 },
      bigint: { b: 1n },
      cycle,
      surrogate: { text: '\ud800' },
      hole: { list: [1, , 3] },
      deep,
    };
    const out = {};
    for (const [name, value] of Object.entries(cases)) {
      const e = await refusal(outbox.enqueue({ collection: 'notes', key: name, op: 'put', value }));
      out[name] = e && `${e.code}: ${e.message}`;
    }
    const status = outbox.status();
    await outbox.close();
    return { out, pending: status.pending };
  });
  const expect = {
    nan: /INVALID_OP: op\.value\.n is NaN/,
    infinity: /op\.value\.list\[1\] is Infinity/,
    negativeZero: /op\.value\.z is -0/,
    date: /op\.value\.dueAt is a Date \(pass date\.toISOString\(\)\)/,
    map: /op\.value\.m is a Map/,
    set: /op\.value\.s is a Set/,
    typed: /op\.value\.bytes is a Uint8Array/,
    func: /op\.value\.f is a function/,
    undef: /op\.value\.u is undefined/,
    symbol: /op\.value has symbol-keyed members/,
    bigint: /op\.value\.b is a BigInt/,
    cycle: /op\.value\.self refers back/,
    surrogate: /op\.value\.text holds a lone surrogate/,
    hole: /op\.value\.list\[1\] is a hole/,
    deep: /nested deeper than 100 levels/,
  };
  for (const [name, pattern] of Object.entries(expect)) assert.match(r.out[name] ?? 'accepted', pattern, name);
  assert.equal(r.pending, 0, 'nothing was queued');
});

test('what proxies and broken APIs answer is retried, never acked without evidence', async () => {
  for (const scenario of ['html-200', 'html-500', 'reset', 'retry-after-garbage']) {
    const r = await inPage(
      async ({ open, sleep }, { scenario }) => {
        const outbox = await open(scenario, { autoDrain: true, retry: { baseMs: 100, capMs: 200 } });
        await outbox.enqueue({ collection: 'notes', key: 'a', op: 'put', value: 1 });
        await sleep(1500);
        const status = outbox.status();
        const [op] = await outbox.pending();
        await outbox.close();
        return { status, error: op?.lastError };
      },
      { scenario },
    );
    assert.equal(r.status.failed, 0, `${scenario}: not failed`);
    // Queued, or in flight again at the moment of looking.
    assert.equal(r.status.pending + r.status.inFlight, 1, `${scenario}: still queued, not acked: ${JSON.stringify(r.status)}`);
    assert.equal(r.error?.class, 'transient', `${scenario}: ${JSON.stringify(r.error)}`);
    assert.ok(hostile.log(scenario).length >= 2, `${scenario}: retried`);
  }
});

test('a huge answer with an ETag is an ack, and its body is not held in memory', async () => {
  const r = await inPage(async ({ open }) => {
    const outbox = await open('huge-200');
    await outbox.enqueue({ collection: 'notes', key: 'a', op: 'put', value: { small: true } });
    await outbox.drain();
    const status = outbox.status();
    const view = outbox.get('notes', 'a');
    await outbox.close();
    return { status, view };
  });
  assert.equal(r.status.pending, 0);
  assert.deepEqual(r.view, { small: true }, 'the view keeps what the op wrote');
});

test('whatever enqueue accepts restores: a value at the depth limit survives a reopen and a send', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox } = await import('outbox-sync');
    const name = `deepest-${Math.random()}`;
    const options = { name, endpoint: '/api', autoDrain: false, collections: { deep: { versioned: false } } };
    const deepest = {};
    let at = deepest;
    for (let i = 1; i < 100; i++) at = at.d = {};
    let outbox = await Outbox.open(options);
    await outbox.enqueue({ collection: 'deep', key: 'a', op: 'put', value: deepest });
    await outbox.close();
    outbox = await Outbox.open(options);
    const pending = (await outbox.pending()).length;
    await outbox.drain();
    const status = outbox.status();
    await outbox.close();
    const res = await fetch('/api/docs/deep/a');
    let depth = 0;
    for (let v = await res.json(); v && typeof v === 'object'; v = v.d) depth++;
    return { pending, status, depth };
  });
  assert.equal(r.pending, 1, 'restored');
  assert.equal(r.status.failed, 0);
  assert.equal(r.status.pending, 0, 'and sent');
  assert.equal(r.depth, 100);
});

test('an unreadable stored record never keeps the outbox from opening', async () => {
  const r = await page.evaluate(async () => {
    const { Outbox } = await import('outbox-sync');
    const name = `quarantine-${Math.random()}`;
    const options = { name, endpoint: '/api', autoDrain: false, collections: { notes: { versioned: false } } };
    let outbox = await Outbox.open(options);
    await outbox.enqueue({ collection: 'notes', key: 'good', op: 'put', value: 1 });
    await outbox.close();
    // Damage: a record of a newer release, and one that is not JSON at all.
    const db = await new Promise((resolve, reject) => {
      const req = indexedDB.open(name);
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
    await new Promise((resolve, reject) => {
      const tx = db.transaction('ops', 'readwrite');
      tx.objectStore('ops').put('{"format_version": 99}', '11111111-1111-4111-8111-111111111111');
      tx.objectStore('ops').put('{not json', '22222222-2222-4222-8222-222222222222');
      tx.oncomplete = resolve;
      tx.onerror = () => reject(tx.error);
    });
    db.close();
    outbox = await Outbox.open(options);
    const failed = await outbox.failed();
    const status = outbox.status();
    const pending = (await outbox.pending()).map((op) => op.key);
    for (const op of failed) await outbox.discard(op.id);
    const afterDiscard = { failed: (await outbox.failed()).length, status: outbox.status().state };
    await outbox.close();
    outbox = await Outbox.open(options);
    const reopened = (await outbox.failed()).length;
    await outbox.close();
    return { failed: failed.map((op) => [op.lastError.code, op.raw]), status, pending, afterDiscard, reopened };
  });
  assert.deepEqual(r.pending, ['good'], 'the readable op is there');
  assert.deepEqual(r.failed.map(([code]) => code), ['CORRUPT_RECORD', 'CORRUPT_RECORD']);
  assert.deepEqual(r.failed.map(([, raw]) => raw), ['{"format_version": 99}', '{not json']);
  assert.equal(r.status.failed, 2);
  assert.deepEqual(r.afterDiscard, { failed: 0, status: 'syncing' });
  assert.equal(r.reopened, 0, 'discarded for good');
});
