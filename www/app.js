// The demo: a small notes app on outbox-sync, using the package exactly as an app would (imported by name).
// Every change goes through `outbox.enqueue`; the server is the reference server that serves this page.
import { Outbox, coreVersion, version } from 'outbox-sync';
import 'outbox-sync/sync-status';

const OUTBOX_NAME = 'outbox-sync-demo';
const COLLECTION = 'notes';
const OFFLINE_KEY = 'outbox-sync-demo:offline';
const CLIENT_KEY = 'outbox-sync-demo:client-id';
// What the "Flaky server" switch asks of the reference server's fault injection (loopback only). Only writes
// are faulted, so the initial load still works. Retry-After is 1 s so the backoff is visible but short.
const FLAKY_FAULTS = {
  error503Percent: 30,
  retryAfter503Secs: 1,
  lostAckPercent: 10,
  methods: ['PUT', 'PATCH', 'DELETE', 'POST'],
};

const $ = (id) => document.getElementById(id);
const footer = $('status');

// Scopes this browser's idempotency keys on the server; it must survive reloads like the queued ops do.
function clientId() {
  let id = localStorage.getItem(CLIENT_KEY);
  if (!id) {
    id = `demo-${crypto.randomUUID()}`;
    localStorage.setItem(CLIENT_KEY, id);
  }
  return id;
}

const OPTIONS = {
  name: OUTBOX_NAME,
  endpoint: '/api',
  clientId: clientId(),
  batch: true,
  maxBatchOps: 10,
  // Short waits, so that retries and backoff are visible live in the demo.
  retry: { baseMs: 250, capMs: 4000 },
};

// The offline switch is remembered, so a reload while "offline" keeps the restored queue unsent. `Outbox.open`
// starts sending the restored queue at once, before a `pause()` right after it can take effect, so an outbox
// that must start paused is opened without autoDrain and reopened normally when the switch goes back on.
// (Workaround until `Outbox.open` can start paused.)
let startedPaused = localStorage.getItem(OFFLINE_KEY) === 'true';

async function openOutbox(paused) {
  const opened = await Outbox.open({ ...OPTIONS, autoDrain: !paused });
  if (paused) opened.pause();
  return opened;
}

let outbox;
try {
  outbox = await openOutbox(startedPaused);
} catch (error) {
  footer.textContent = `The outbox could not open: ${error.message} (${error.code ?? error.name})`;
  footer.dataset.state = 'error';
  throw error;
}

footer.textContent = `outbox-sync ${version()} · engine ${coreVersion()}`;
footer.dataset.version = version();
footer.dataset.state = 'loaded';

// ---------------------------------------------------------------------------------------------------------
// The indicator and the failed-ops panel are the package's <sync-status> element.
// ---------------------------------------------------------------------------------------------------------
function attach() {
  $('sync').outbox = outbox;
  $('failed-list').outbox = outbox;
  const showFailed = (status) => {
    $('failed').hidden = status.failed + status.conflicts === 0;
  };
  outbox.subscribe(showFailed);
  showFailed(outbox.status());
  outbox.on('acked', onAcked);
  outbox.on('enqueued', onEnqueued);
  for (const type of ['failed', 'conflict', 'discarded', 'retry_scheduled']) outbox.on(type, scheduleRender);
}

// ---------------------------------------------------------------------------------------------------------
// Notes: the server's confirmed docs with the queued ops applied on top.
// ---------------------------------------------------------------------------------------------------------
// Until the optimistic view lands in the package (outbox.list / watch), the demo does it by hand: it pulls the
// confirmed docs once, keeps them current from `acked` events, and overlays the ops still in the outbox.
const confirmed = new Map(); // key -> doc
const keyOfOp = new Map(); // op id -> note key, to place `acked` docs

async function pullAll() {
  let cursor = '';
  for (;;) {
    const response = await fetch(`/api/pull?since=${encodeURIComponent(cursor)}&limit=1000`);
    if (!response.ok) throw new Error(`pull: HTTP ${response.status}`);
    const page = await response.json();
    for (const change of page.changes) {
      if (change.collection !== COLLECTION) continue;
      if (change.deleted) confirmed.delete(change.key);
      else confirmed.set(change.key, change.doc);
    }
    cursor = page.cursor;
    if (!page.hasMore) return;
  }
}

function applyOp(doc, op) {
  if (op.op === 'put') return op.value;
  if (op.op === 'delete') return undefined;
  if (op.op === 'patch') return { ...(doc ?? {}), ...op.value };
  return doc;
}

let renderQueued = false;
function scheduleRender() {
  if (renderQueued) return;
  renderQueued = true;
  setTimeout(() => {
    renderQueued = false;
    render().catch((error) => console.error('render', error));
  }, 50);
}

async function render() {
  const ops = [...(await outbox.pending()), ...(await outbox.failed()), ...(await outbox.conflicts())]
    .filter((op) => op.collection === COLLECTION)
    .sort((a, b) => a.createdAt - b.createdAt);
  const notes = new Map([...confirmed].map(([key, doc]) => [key, { doc, state: 'synced' }]));
  for (const op of ops) {
    keyOfOp.set(op.id, op.key);
    const note = notes.get(op.key) ?? { doc: undefined, state: 'synced' };
    note.doc = applyOp(note.doc, op);
    // The strongest state wins: a failed op matters more than one that is merely waiting.
    const rank = { synced: 0, pending: 1, inflight: 1, backoff: 1, conflict: 2, failed: 3 };
    if (rank[op.state] > rank[note.state]) note.state = op.state === 'inflight' || op.state === 'backoff' ? 'pending' : op.state;
    notes.set(op.key, note);
  }
  const visible = [...notes].filter(([, note]) => note.doc !== undefined);
  visible.sort(([ka, a], [kb, b]) => (b.doc?.createdAt ?? 0) - (a.doc?.createdAt ?? 0) || (ka < kb ? 1 : -1));
  $('notes').replaceChildren(...visible.map(([key, note]) => noteItem(key, note)));
  $('count').textContent = `(${visible.length})`;
  $('empty').hidden = visible.length > 0;
}

const STATE_LABEL = { synced: 'Synced', pending: 'Pending', failed: 'Failed', conflict: 'Conflict' };

function noteItem(key, note) {
  const li = document.createElement('li');
  li.className = 'note';
  li.dataset.key = key;
  li.dataset.state = note.state;
  const title = document.createElement('span');
  title.className = 'note-title';
  title.textContent = note.doc?.title ?? '(untitled)';
  const badge = document.createElement('span');
  badge.className = 'badge';
  badge.textContent = STATE_LABEL[note.state];
  const remove = document.createElement('button');
  remove.type = 'button';
  remove.className = 'delete';
  remove.textContent = 'Delete';
  remove.setAttribute('aria-label', `Delete “${title.textContent}”`);
  remove.addEventListener('click', () => outbox.enqueue({ collection: COLLECTION, key, op: 'delete' }).catch(showError));
  li.append(title, badge, remove);
  return li;
}

function showError(error) {
  $('form-error').textContent = `Not saved: ${error.message}`;
}

/** Creates a note: one `put` op. Resolves once it is durable in IndexedDB. */
let lastCreatedAt = 0;
async function addNote(title) {
  // Strictly increasing, so notes made in the same millisecond still list in the order they were made.
  lastCreatedAt = Math.max(lastCreatedAt + 1, Date.now());
  const createdAt = lastCreatedAt;
  const key = `n-${Date.now().toString(36)}-${crypto.randomUUID().slice(0, 8)}`;
  const result = await outbox.enqueue({ collection: COLLECTION, key, op: 'put', value: { title, createdAt } });
  keyOfOp.set(result.id, key);
  return { key, ...result };
}

function onAcked(event) {
  const key = keyOfOp.get(event.id);
  if (key === undefined) return;
  keyOfOp.delete(event.id);
  if (event.doc == null) confirmed.delete(key);
  else confirmed.set(key, event.doc);
  scheduleRender();
}

function onEnqueued(event) {
  if (event.collection === COLLECTION) keyOfOp.set(event.id, event.key);
  scheduleRender();
}

attach();

$('new-note').addEventListener('submit', async (event) => {
  event.preventDefault();
  const input = $('title');
  const title = input.value.trim();
  if (!title) return;
  $('form-error').textContent = '';
  try {
    await addNote(title);
    input.value = '';
  } catch (error) {
    showError(error);
  }
  input.focus();
});

// ---------------------------------------------------------------------------------------------------------
// The demo switches.
// ---------------------------------------------------------------------------------------------------------
const offlineSwitch = $('offline');
offlineSwitch.checked = localStorage.getItem(OFFLINE_KEY) === 'true';
offlineSwitch.addEventListener('change', async () => {
  localStorage.setItem(OFFLINE_KEY, String(offlineSwitch.checked));
  if (offlineSwitch.checked) {
    outbox.pause();
  } else if (startedPaused) {
    // Opened without autoDrain (see above): reopen it normally; the queue is restored from IndexedDB.
    offlineSwitch.disabled = true;
    startedPaused = false;
    await outbox.close();
    outbox = await openOutbox(false);
    attach();
    offlineSwitch.disabled = false;
  } else {
    outbox.resume();
  }
});

const flakySwitch = $('flaky');
async function setFaults(on) {
  const init = on
    ? { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...FLAKY_FAULTS, seed: Date.now() % 1e9 }) }
    : { method: 'DELETE' };
  const response = await fetch('/_admin/faults', init);
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
}
flakySwitch.addEventListener('change', async () => {
  flakySwitch.disabled = true;
  try {
    await setFaults(flakySwitch.checked);
  } catch (error) {
    flakySwitch.checked = !flakySwitch.checked;
    $('flaky-note').hidden = false;
    $('flaky-note').textContent = `The fault switch failed (${error.message}).`;
  } finally {
    flakySwitch.disabled = false;
  }
});

// The fault endpoint answers only loopback clients; elsewhere the switch stays off and says why.
fetch('/_admin/faults')
  .then(async (response) => {
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const faults = await response.json();
    flakySwitch.checked = (faults.config?.error503Percent ?? 0) > 0;
    flakySwitch.disabled = false;
  })
  .catch(() => {
    $('flaky-note').hidden = false;
    $('flaky-note').textContent = 'The fault switch needs the reference server on localhost.';
  });

try {
  await pullAll();
} catch (error) {
  console.warn('could not load the notes from the server; showing the local queue only', error);
}
await render();
for (const id of ['offline', 'title']) $(id).disabled = false;
document.querySelector('#new-note button').disabled = false;
document.body.dataset.ready = 'true';

// Handy in the devtools console (and used by the end-to-end tests): the live outbox and a helper.
globalThis.demo = {
  get outbox() {
    return outbox;
  },
  addNote,
  clientId: clientId(),
};
