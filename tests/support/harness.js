// JS helpers for the browser tests in tests/*.rs: things that are plain in JS and verbose in Rust.

// A custom transport that answers from a script. `script` maps an entity key to a list of responses, used
// in order, one per request for that key; the last one repeats. A response is { status, headers?, body? },
// or "throw" for a transport failure. Every call is logged with the time it was made.
export function scriptedTransport(script) {
  const log = [];
  const calls = new Map();
  const transport = async (batch) => {
    log.push({ at: Date.now(), keys: batch.ops.map((op) => op.key), batch });
    return batch.ops.map((op) => {
      const answers = script[op.key] ?? [{ status: 200, headers: { ETag: '"1"' }, body: op.value ?? null }];
      const n = calls.get(op.key) ?? 0;
      calls.set(op.key, n + 1);
      const answer = answers[Math.min(n, answers.length - 1)];
      if (answer === 'throw') throw new TypeError('scripted network failure');
      return { id: op.id, ...answer };
    });
  };
  return { transport, log };
}

// Every record of every object store of a database, as JSON text.
export async function dumpDatabase(name) {
  const db = await new Promise((resolve, reject) => {
    const req = indexedDB.open(name);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  const out = {};
  for (const store of db.objectStoreNames) {
    out[store] = await new Promise((resolve, reject) => {
      const req = db.transaction(store).objectStore(store).getAll();
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  }
  db.close();
  return JSON.stringify(out);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));


// Replaces the global fetch with a scripted one, for testing the fetch transport's requests exactly.
// `script` is a list of answers used in order (the last repeats): { status, headers?, body? (text) },
// "hang" (never answers, but honours the abort signal), or "throw" (a network error). Every request is
// recorded with its method, URL, headers, credentials mode and body.
export function mockFetch(script) {
  const original = globalThis.fetch;
  const calls = [];
  globalThis.fetch = async (request) => {
    const body = ['GET', 'HEAD'].includes(request.method) ? null : await request.clone().text();
    calls.push({
      method: request.method,
      url: request.url,
      headers: Object.fromEntries(request.headers),
      credentials: request.credentials,
      body: body === '' ? null : body,
    });
    const answer = script[Math.min(calls.length - 1, script.length - 1)];
    if (answer === 'throw') throw new TypeError('Failed to fetch');
    if (answer === 'hang') {
      return new Promise((_, reject) => {
        request.signal.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
      });
    }
    return new Response(answer.body ?? null, { status: answer.status, headers: answer.headers ?? {} });
  };
  return { calls, restore: () => (globalThis.fetch = original) };
}

// A pull source that serves `pages` (arrays of changes) in order, one per call, with cursors "1", "2", …
// It records the cursor each call was made with.
export function pagedSource(pages) {
  const seen = [];
  const source = async (cursor) => {
    seen.push(cursor);
    const index = cursor === null ? 0 : Number(cursor);
    const changes = pages[index] ?? [];
    return { changes, cursor: String(index + 1), hasMore: index + 1 < pages.length };
  };
  return { source, seen };
}

// A custom transport that holds every batch until the test answers it, and records, for each call,
// how many transactions the outbox had committed when the request left (`setOutbox` first). Answers
// are { status, headers?, body? } per op, or "throw".
export function heldTransport() {
  const log = [];
  let outbox = null;
  const transport = (batch) =>
    new Promise((resolve, reject) => {
      log.push({
        batch,
        committed: outbox ? outbox.__transactionsCommitted() : -1,
        answer: (answer) =>
          answer === 'throw'
            ? reject(new TypeError('scripted network failure'))
            : resolve(batch.ops.map((op) => ({ id: op.id, ...answer }))),
      });
    });
  return { transport, log, setOutbox: (o) => (outbox = o) };
}

// Wraps crypto.getRandomValues so a test can see every byte it handed out, as lowercase hex.
export function spyRandomValues() {
  const original = crypto.getRandomValues.bind(crypto);
  let hex = '';
  crypto.getRandomValues = (array) => {
    const out = original(array);
    const bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
    hex += Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
    return out;
  };
  return { hex: () => hex, restore: () => (crypto.getRandomValues = original) };
}

// A server's change log behind `pull.source`: state-based like PROTOCOL §7 (each document once, latest
// state, in commit order), cursors are sequence numbers, two changes per page so catch-ups page too.
// `ignoreFilter` plays a source that disregards the collection filter.
export function changeLog(ignoreFilter) {
  const docs = new Map();
  let seq = 0;
  const calls = [];
  const write = (collection, key, version, doc) => {
    docs.set(`${collection}/${key}`, { collection, key, version, doc, seq: ++seq });
  };
  const source = async (cursor, filter) => {
    calls.push({ cursor, collections: filter.collections });
    const since = cursor === null ? 0 : Number(cursor);
    const wanted = (c) => ignoreFilter || !filter.collections || filter.collections.includes(c.collection);
    const after = [...docs.values()].filter((c) => c.seq > since && wanted(c)).sort((a, b) => a.seq - b.seq);
    const page = after.slice(0, 2);
    const next = page.length ? page[page.length - 1].seq : since;
    return { changes: page.map(({ seq, ...c }) => c), cursor: String(next), hasMore: after.length > 2 };
  };
  return { source, write, calls };
}
