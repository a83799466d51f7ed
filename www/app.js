// The demo: a small notes app on outbox-sync, using the package exactly as an app would (imported by name).
// Every change goes through `outbox.enqueue`; the server is the reference server that serves this page.
import { Outbox, coreVersion, version } from 'outbox-sync';
import 'outbox-sync/sync-status';
import { mountMonitor } from './monitor.js';

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
  // Edits made elsewhere show up within seconds, and a conflict waits for the user to choose.
  pull: { intervalMs: 5000, onFocus: true },
  collections: { [COLLECTION]: { conflict: 'manual' } },
};

// The offline switch is remembered: a reload while "offline" opens the outbox paused, so the queue restored
// from IndexedDB stays unsent until the switch goes off.
const startedPaused = localStorage.getItem(OFFLINE_KEY) === 'true';

let outbox;
try {
  // Until `open` resolves, the indicator shows what `onStatus` hears: a large queue's restore ("Restoring 40000
  // of 100000"). Then the outbox itself is attached to it.
  const showRestore = (status) => {
    if (!outbox) $('sync').status = status;
  };
  outbox = await Outbox.open({ ...OPTIONS, paused: startedPaused, onStatus: showRestore });
} catch (error) {
  footer.textContent = `The outbox could not open: ${error.message} (${error.code ?? error.name})`;
  footer.dataset.state = 'error';
  throw error;
}

footer.textContent = `outbox-sync ${version()} · engine ${coreVersion()}`;
footer.dataset.version = version();
footer.dataset.state = 'loaded';

// ---------------------------------------------------------------------------------------------------------
// The indicator and the failed-ops panel are the package's <sync-status> element; the monitoring panel is
// its <sync-history> element and a chart (monitor.js).
// ---------------------------------------------------------------------------------------------------------
let unmountMonitor = () => {};
function attach() {
  $('sync').outbox = outbox;
  const failedList = $('failed-list');
  // In the page's own panel a refused note is named by its title, as the notes list shows it.
  failedList.describe = (op) => (op.value?.title ? `“${op.value.title}”` : undefined);
  failedList.outbox = outbox;
  unmountMonitor = mountMonitor($('monitor'), outbox);
  const showFailed = (status) => {
    $('failed').hidden = status.failed === 0;
  };
  outbox.subscribe(showFailed);
  showFailed(outbox.status());
  // Open the demo in two tabs: one of them sends for both, and each says which it is.
  const TAB_ROLES = {
    leader: 'This tab sends for every open tab',
    follower: 'Another tab is sending',
    uncoordinated: 'This tab sends its own changes',
  };
  const showRole = (status) => {
    $('tab-role').textContent = TAB_ROLES[status.role] ?? '';
    $('tab-role').dataset.role = status.role;
  };
  outbox.subscribe(showRole);
  showRole(outbox.status());
  // The view tells about every change of a note; failures and conflicts change the badges too.
  outbox.watch(COLLECTION, scheduleRender);
  for (const type of ['failed', 'conflict', 'discarded', 'retry_scheduled']) outbox.on(type, scheduleRender);
}

// ---------------------------------------------------------------------------------------------------------
// Notes: the outbox's optimistic view (the server's confirmed notes with pending changes on top), plus the
// notes whose change the server refused, kept visible so they can be retried or discarded in place.
// ---------------------------------------------------------------------------------------------------------
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
  const failed = (await outbox.failed()).filter((op) => op.collection === COLLECTION);
  const conflicts = (await outbox.conflicts()).filter((op) => op.collection === COLLECTION);
  const notes = new Map(
    outbox.list(COLLECTION).map((item) => [item.key, { doc: item.value, state: item.pending > 0 ? 'pending' : 'synced' }]),
  );
  for (const op of conflicts) {
    const note = notes.get(op.key);
    if (note) note.state = 'conflict';
  }
  for (const op of failed) {
    notes.set(op.key, { doc: notes.get(op.key)?.doc ?? op.value, state: 'failed' });
  }
  const visible = [...notes].filter(([, note]) => note.doc !== undefined && note.doc !== null);
  visible.sort(([ka, a], [kb, b]) => (b.doc?.createdAt ?? 0) - (a.doc?.createdAt ?? 0) || (ka < kb ? 1 : -1));
  $('notes').replaceChildren(...visible.map(([key, note]) => noteItem(key, note)));
  $('count').textContent = `(${visible.length})`;
  $('empty').hidden = visible.length > 0;
  renderConflicts(conflicts);
}

/** Each held conflict side by side: my version (the view) and the server's, with a button for each. */
function renderConflicts(conflicts) {
  $('conflicts').hidden = conflicts.length === 0;
  $('conflict-list').replaceChildren(
    ...conflicts.map((op) => {
      const li = document.createElement('li');
      li.className = 'conflict';
      li.dataset.key = op.key;
      const mine = outbox.get(COLLECTION, op.key);
      const side = (label, doc, use) => {
        const box = document.createElement('div');
        const heading = document.createElement('strong');
        heading.textContent = label;
        const text = document.createElement('p');
        text.textContent = doc?.title ?? '(deleted)';
        const keep = document.createElement('button');
        keep.type = 'button';
        keep.textContent = `Keep ${label.toLowerCase()}`;
        keep.dataset.use = use;
        keep.addEventListener('click', () => outbox.resolve(op.id, { use }).then(scheduleRender, showError));
        box.append(heading, text, keep);
        return box;
      };
      li.append(side('Mine', mine, 'local'), side("The server's", op.serverDoc, 'server'));
      return li;
    }),
  );
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
  return { key, ...result };
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
offlineSwitch.addEventListener('change', () => {
  localStorage.setItem(OFFLINE_KEY, String(offlineSwitch.checked));
  if (offlineSwitch.checked) outbox.pause();
  else outbox.resume();
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

// The notes from the server (skipped while "offline": the view restored from IndexedDB shows meanwhile).
try {
  await outbox.pull();
} catch (error) {
  console.warn('could not pull the notes from the server; showing what this device knows', error);
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
  /** Shows another outbox (or a stand-in) in the monitoring panel; the tests use it. */
  monitor(other) {
    unmountMonitor();
    unmountMonitor = mountMonitor($('monitor'), other);
  },
};
