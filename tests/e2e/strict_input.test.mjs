// Input that is never silently changed or ignored, in headless Chromium against the reference server:
// unknown option names, the app's validators (a function and a Standard Schema), versions as opaque
// strings, the default client id, and callbacks that fire at registration.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { useServerAndBrowser } from './support/env.mjs';

let page;
const env = useServerAndBrowser(async ({ browser, server }) => {
  page = await browser.newPage();
  await page.goto(server.url);
});

function inPage(fn, arg) {
  return page.evaluate(
    async ({ source, arg }) => {
      const module = await import('outbox-sync');
      const refusal = async (promise) => {
        try {
          await promise;
          return null;
        } catch (e) {
          return `${e.code}: ${e.message}`;
        }
      };
      return new Function(`return (${source})`)()({ ...module, refusal }, arg);
    },
    { source: fn.toString(), arg },
  );
}

test('unknown option names are refused, naming the field and the one meant', async () => {
  const r = await inPage(async ({ Outbox, refusal }) => {
    const base = { name: `strict-${Math.random()}`, endpoint: '/api' };
    return {
      retries: await refusal(Outbox.open({ ...base, retries: 3 })),
      topConflict: await refusal(Outbox.open({ ...base, conflict: 'manual' })),
      maxAttempt: await refusal(Outbox.open({ ...base, retry: { maxAttempt: 5 } })),
      pullTypo: await refusal(Outbox.open({ ...base, pull: { interval: 5000 } })),
      collectionTypo: await refusal(Outbox.open({ ...base, collections: { todos: { conflicts: 'manual' } } })),
      fastPull: await refusal(Outbox.open({ ...base, pull: { intervalMs: 1 } })),
      badValidator: await refusal(Outbox.open({ ...base, collections: { todos: { validate: 'yes' } } })),
      fetchOnly: await refusal(Outbox.open({ name: base.name, transport: async () => [], timeoutMs: 5000 })),
      undefinedIsFine: await refusal(Outbox.open({ ...base, retries: undefined }).then((o) => o.close())),
    };
  });
  assert.match(r.retries, /^INVALID_CONFIG: options\.retries is not an option: did you mean retry\?$/);
  assert.match(r.topConflict, /options\.conflict is not an option: did you mean collections\.<name>\.conflict\?/);
  assert.match(r.maxAttempt, /options\.retry\.maxAttempt is not an option: did you mean retry\.maxAttempts\?/);
  assert.match(r.pullTypo, /options\.pull\.interval is not an option: did you mean pull\.intervalMs\?/);
  assert.match(r.collectionTypo, /options\.collections\.todos\.conflicts is not an option: did you mean collections\.todos\.conflict\?/);
  assert.match(r.fastPull, /^INVALID_CONFIG: options\.pull\.intervalMs must be an integer of at least 1000/);
  assert.match(r.badValidator, /options\.collections\.todos\.validate must be a function or a Standard Schema/);
  assert.match(r.fetchOnly, /^INVALID_CONFIG: options\.timeoutMs applies to the built-in transport/);
  assert.equal(r.undefinedIsFine, null);
});

test('a validator refuses what it does not accept, and stores exactly what the app gave', async () => {
  const r = await inPage(async ({ Outbox, refusal }) => {
    // A Standard Schema (https://standardschema.dev), written out as zod or valibot would expose it.
    const todoSchema = {
      '~standard': {
        version: 1,
        vendor: 'test',
        validate: (v) =>
          typeof v?.title === 'string'
            ? { value: { ...v, title: v.title.trim() } }
            : { issues: [{ message: 'Expected string', path: ['title'] }] },
      },
    };
    const outbox = await Outbox.open({
      name: `validate-${Math.random()}`,
      endpoint: '/api',
      autoDrain: false,
      collections: {
        todos: { validate: todoSchema },
        notes: { validate: (v) => typeof v.text === 'string' || false },
        strict: { validate: (v) => { if (!v.ok) throw new Error('not ok'); } },
        slow: { validate: async () => true },
      },
    });
    const out = {
      schemaBad: await refusal(outbox.enqueue({ collection: 'todos', key: 't', op: 'put', value: { title: 1 } })),
      schemaGood: await refusal(outbox.enqueue({ collection: 'todos', key: 't', op: 'put', value: { title: '  x  ' } })),
      // A patch is judged by the document it makes: the merged { title: null } → title removed.
      patchBad: await refusal(outbox.enqueue({ collection: 'todos', key: 't', op: 'patch', value: { title: null } })),
      patchGood: await refusal(outbox.enqueue({ collection: 'todos', key: 't', op: 'patch', value: { done: true } })),
      fnFalse: await refusal(outbox.enqueue({ collection: 'notes', key: 'n', op: 'put', value: { text: 3 } })),
      fnThrows: await refusal(outbox.enqueue({ collection: 'strict', key: 's', op: 'put', value: { ok: false } })),
      async: await refusal(outbox.enqueue({ collection: 'slow', key: 's', op: 'put', value: {} })),
      deleteSkips: await refusal(outbox.enqueue({ collection: 'todos', key: 'gone', op: 'delete' })),
    };
    out.stored = outbox.get('todos', 't');
    out.pending = outbox.status().pending;
    await outbox.close();
    return out;
  });
  assert.match(r.schemaBad, /^INVALID_OP: .*todos\.validate: value\.title: Expected string$/);
  assert.equal(r.schemaGood, null);
  assert.match(r.patchBad, /value\.title: Expected string/);
  assert.equal(r.patchGood, null);
  assert.match(r.fnFalse, /^INVALID_OP: .*notes\.validate: validate returned false$/);
  assert.match(r.fnThrows, /^INVALID_OP: .*validate threw: not ok$/);
  assert.match(r.async, /^INVALID_CONFIG: .*must be synchronous/);
  assert.equal(r.deleteSkips, null);
  assert.deepEqual(r.stored, { title: '  x  ', done: true }, "the app's value, not the schema's output");
  assert.equal(r.pending, 3);
});

test('versions are opaque strings: no ETag quotes in, none out', async () => {
  const r = await inPage(async ({ Outbox, refusal }) => {
    const outbox = await Outbox.open({ name: `versions-${Math.random()}`, endpoint: '/api', collections: { v: { conflict: 'manual' } } });
    const acked = new Promise((resolve) => outbox.on('acked', resolve));
    await outbox.enqueue({ collection: 'v', key: `k-${Math.random()}`, op: 'put', value: { n: 1 } });
    const ack = await acked;
    const key = ack.key;
    const [item] = outbox.list('v');
    const quoted = await refusal(outbox.enqueue({ collection: 'v', key, op: 'put', value: { n: 2 }, baseVersion: `"${ack.version}"` }));
    // A stale version: the conflict reports the server's version, unquoted too.
    await outbox.enqueue({ collection: 'v', key, op: 'put', value: { n: 3 }, baseVersion: ack.version });
    await outbox.drain();
    await outbox.enqueue({ collection: 'v', key, op: 'put', value: { n: 4 }, baseVersion: ack.version });
    await outbox.drain();
    const [conflict] = await outbox.conflicts();
    await outbox.close();
    return { ackVersion: ack.version, listVersion: item.version, quoted, conflict: { base: conflict?.baseVersion, server: conflict?.serverVersion } };
  });
  assert.equal(r.ackVersion, '1');
  assert.equal(r.listVersion, '1');
  assert.match(r.quoted, /^INVALID_OP: op\.baseVersion must be a version as the outbox reports them/);
  assert.deepEqual(r.conflict, { base: '1', server: '2' });
});

test('a client id is made once per outbox, kept across reloads, and always sent', async () => {
  const name = `client-${Math.random()}`;
  const run = () =>
    inPage(async ({ Outbox }, name) => {
      const outbox = await Outbox.open({ name, endpoint: '/api' });
      const { idempotencyKey } = await outbox.enqueue({ collection: 'c', key: `k-${Math.random()}`, op: 'put', value: 1 });
      await outbox.drain();
      await outbox.close();
      return idempotencyKey;
    }, name);
  const first = await run();
  const second = await run();
  const ledger = await env.server.admin('ledger');
  const scopeOf = (key) => Object.keys(ledger).find((k) => k.endsWith(`/${key}`))?.split('/')[0];
  const scope = scopeOf(first);
  assert.match(scope ?? '', /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, `scoped by a UUID, not "default": ${scope}`);
  assert.equal(scopeOf(second), scope, 'the same id after a reload');
});

test('subscribe, watch and watchDoc call back at once with the current value', async () => {
  const r = await inPage(async ({ Outbox }) => {
    const outbox = await Outbox.open({ name: `now-${Math.random()}`, endpoint: '/api', autoDrain: false });
    await outbox.enqueue({ collection: 'c', key: 'a', op: 'put', value: { n: 1 } });
    const seen = { status: [], list: [], doc: [] };
    const stops = [
      outbox.subscribe((s) => seen.status.push(s.pending)),
      outbox.watch('c', (items) => seen.list.push(items.length)),
      outbox.watchDoc('c', 'a', (doc) => seen.doc.push(doc)),
    ];
    const synchronously = JSON.parse(JSON.stringify(seen));
    stops.forEach((stop) => stop());
    await outbox.close();
    return synchronously;
  });
  assert.deepEqual(r, { status: [1], list: [1], doc: [{ n: 1 }] });
});

test('a name with a lone surrogate is refused, not turned into another name', async () => {
  const r = await inPage(async ({ Outbox, refusal }) => {
    const outbox = await Outbox.open({ name: `surrogate-${Math.random()}`, endpoint: '/api', autoDrain: false });
    const key = await refusal(outbox.enqueue({ collection: 'c', key: 'a\ud800', op: 'put', value: 1 }));
    const value = await refusal(outbox.enqueue({ collection: 'c', key: 'b', op: 'put', value: { t: '\udfff' } }));
    // The check looks closely only at text holding U+FFFD (what a lone surrogate becomes): a real U+FFFD
    // is a name like any other, and a lone surrogate beside one is still refused.
    const beside = await refusal(outbox.enqueue({ collection: 'c', key: '\ufffd\ud800', op: 'put', value: 1 }));
    await outbox.enqueue({ collection: 'c', key: 'x\ufffd', op: 'put', value: 2 });
    const kept = await outbox.list('c');
    await outbox.close();
    return { key, value, beside, kept: kept.map((d) => [d.key, d.value]) };
  });
  assert.equal(r.key, 'INVALID_OP: op.key holds a lone surrogate (not valid Unicode text)');
  assert.equal(r.beside, 'INVALID_OP: op.key holds a lone surrogate (not valid Unicode text)');
  assert.deepEqual(r.kept, [['x\ufffd', 2]]);
  assert.equal(r.value, 'INVALID_OP: op.value.t holds a lone surrogate (not valid Unicode text)');
});
