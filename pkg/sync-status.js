// <sync-status>: a sync indicator for an outbox-sync `Outbox`, as a framework-agnostic custom element.
//
//   import 'outbox-sync/sync-status';
//   document.querySelector('sync-status').outbox = outbox;
//
// Importing this module defines the element (once). It holds no state of its own: everything it shows comes
// from `outbox.subscribe` and `outbox.failed()` / `conflicts()` / `unknown()`, and it unsubscribes when removed from
// the document, so it can be mounted and unmounted freely by any framework. Every word it shows comes from
// `labels` (translatable), and the op titles from `describe(op)` when the app gives one.

const STYLE = `
:host {
  display: inline-flex;
  align-items: center;
  gap: 0.5em;
  font: var(--sync-status-font, inherit);
  color: var(--sync-status-color, inherit);
  position: relative;
}
:host([hidden]) { display: none; }
[part~='indicator'] {
  display: inline-flex;
  align-items: center;
  gap: 0.45em;
  padding: var(--sync-status-padding, 0.25em 0.7em);
  border-radius: var(--sync-status-radius, 999px);
  background: var(--sync-status-background, color-mix(in srgb, currentColor 8%, transparent));
  white-space: nowrap;
}
[part~='dot'] {
  inline-size: 0.6em;
  block-size: 0.6em;
  border-radius: 50%;
  flex: none;
  background: var(--_dot);
}
:host { --_dot: var(--sync-status-synced-color, #2e7d32); }
:host([state='restoring']), :host([state='syncing']), :host([state='retrying']) { --_dot: var(--sync-status-syncing-color, #1565c0); }
:host([state='offline']), :host([state='paused']) { --_dot: var(--sync-status-offline-color, #757575); }
:host([state='blocked']) { --_dot: var(--sync-status-blocked-color, #ef6c00); }
:host([state='failed']), :host([state='conflict']), :host([state='unknown']), :host([state='stalled']), :host([state='error']) {
  --_dot: var(--sync-status-error-color, #c62828);
}
:host([state='restoring']) [part~='dot'], :host([state='syncing']) [part~='dot'] { animation: pulse 1s ease-in-out infinite alternate; }
@keyframes pulse { to { opacity: 0.35; } }
@media (prefers-reduced-motion: reduce) { :host([state='restoring']) [part~='dot'], :host([state='syncing']) [part~='dot'] { animation: none; } }
button {
  font: inherit;
  cursor: pointer;
  padding: var(--sync-status-button-padding, 0.2em 0.6em);
  border-radius: var(--sync-status-button-radius, 0.4em);
  border: 1px solid color-mix(in srgb, currentColor 35%, transparent);
  background: var(--sync-status-button-background, transparent);
  color: inherit;
}
button:focus-visible { outline: 2px solid var(--sync-status-focus-color, #1565c0); outline-offset: 2px; }
[part~='panel'] {
  margin: 0;
  padding: var(--sync-status-panel-padding, 0.75em);
  border: 1px solid color-mix(in srgb, currentColor 25%, transparent);
  border-radius: var(--sync-status-panel-radius, 0.6em);
  background: var(--sync-status-panel-background, Canvas);
  color: var(--sync-status-panel-color, CanvasText);
  min-inline-size: min(24em, 90vw);
  max-inline-size: min(36em, 95vw);
  box-shadow: var(--sync-status-panel-shadow, 0 0.4em 1.6em rgb(0 0 0 / 0.2));
}
[part~='panel'][popover] { position: fixed; inset: auto; top: 4em; right: 1em; }
:host([inline]) [part~='panel'] { box-shadow: none; max-inline-size: none; }
[part~='heading'] { margin: 0 0 0.5em; font-size: 1em; }
[part~='list'] { list-style: none; margin: 0; padding: 0; display: grid; gap: 0.5em; }
[part~='item'] {
  display: grid;
  grid-template-columns: minmax(0, 1fr) auto;
  grid-template-areas: 'title actions' 'error actions';
  gap: 0.15em 0.5em;
  align-items: center;
}
/* A conflict has up to four buttons: beside the text they would squeeze it to nothing, so they go below. */
[part~='item-conflict'] { grid-template-columns: minmax(0, 1fr); grid-template-areas: 'title' 'error' 'actions'; }
[part~='item-title'] { grid-area: title; font-weight: 600; overflow-wrap: anywhere; }
[part~='item-error'] { grid-area: error; font-size: 0.85em; opacity: 0.85; overflow-wrap: anywhere; }
[part~='item-actions'] { grid-area: actions; display: flex; flex-wrap: wrap; justify-content: end; gap: 0.35em; }
[part~='item-conflict'] [part~='item-actions'] { justify-content: start; margin-block-start: 0.25em; }
[part~='keep-mine'], [part~='use-merged'] { border-color: var(--sync-status-syncing-color, #1565c0); }
[part~='empty'] { margin: 0; opacity: 0.8; }
[part~='footer'] { display: flex; justify-content: space-between; align-items: center; gap: 0.5em; margin-top: 0.75em; }
[part~='message'] { color: var(--sync-status-error-color, #c62828); font-size: 0.85em; }
[hidden] { display: none !important; }
.announcement {
  position: absolute; inline-size: 1px; block-size: 1px; overflow: hidden;
  clip-path: inset(50%); white-space: nowrap;
}
`;

const TEMPLATE = `
<style>${STYLE}</style>
<span part="indicator">
  <span part="dot" aria-hidden="true"></span><span part="label"></span>
</span>
<span class="announcement" role="status" aria-live="polite" aria-atomic="true"></span>
<button part="details-button" type="button" popovertarget="panel" aria-haspopup="dialog" hidden></button>
<section part="panel" id="panel" popover aria-labelledby="heading">
  <h2 part="heading" id="heading"></h2>
  <ul part="list"></ul>
  <p part="empty" hidden></p>
  <div part="footer">
    <span part="message" role="alert"></span>
    <button part="retry-all" type="button" data-action="retry-all" hidden></button>
  </div>
</section>
`;

/**
 * Every word the element shows, in English. A label is a string with `{name}` placeholders, or a function of
 * the same values (for languages whose plurals need more than the One/Other pair).
 */
export const SYNC_STATUS_LABELS = Object.freeze({
  notConnected: 'Not connected',
  /** While the outbox reads its stored queue at open (`options.onStatus`): records read of stored. */
  restoring: 'Restoring {current} of {total}',
  synced: 'Synced',
  syncing: 'Syncing {count}',
  syncingProgress: 'Syncing {current} of {total}',
  retrying: 'Retrying at {time}',
  retryingSoon: 'Retrying',
  blocked: 'Blocked until {time}',
  offline: 'Offline',
  paused: 'Paused',
  pending: '{count} pending',
  error: 'Sync error',
  errorWithMessage: 'Sync error: {message}',
  stalled: 'Not saving: {message}',
  storageFailing: 'storage is failing',
  failedCount: '{count} failed',
  conflictsOne: '{count} conflict',
  conflictsOther: '{count} conflicts',
  unknownCount: '{count} unknown',
  separator: ' · ',
  reviewOne: 'Review 1 change',
  reviewOther: 'Review {count} changes',
  heading: 'Changes that need attention',
  empty: 'Nothing needs attention.',
  opTitle: '{verb} {collection}/{key}',
  noteConflict: '(conflict)',
  noteUnknown: '(may already be saved)',
  conflictHint: 'Changed on the server too',
  retry: 'Retry',
  discard: 'Discard',
  retryAll: 'Retry all',
  keepMine: 'Keep mine',
  keepServer: "Keep the server's",
  useMerged: 'Use merged',
  /** The accessible name of an op's button: the action and the op's title. */
  actionFor: '{action} {title}',
  /** The indicator's tooltip: which open tab of the app sends (see `status().role`). */
  roleLeader: 'This tab sends changes for every open tab',
  roleFollower: 'Another open tab sends changes for this one',
  roleUncoordinated: 'This tab sends its own changes',
});

/** Fills `{name}` placeholders of a label (or calls it, when it is a function). */
export function formatLabel(label, values = {}) {
  if (typeof label === 'function') return String(label(values));
  return String(label ?? '').replace(/\{(\w+)\}/g, (whole, name) => (values[name] ?? whole).toString());
}

const withDefaults = (labels) => (!labels || labels === SYNC_STATUS_LABELS ? SYNC_STATUS_LABELS : { ...SYNC_STATUS_LABELS, ...labels });

/** The word the indicator (and its `state` attribute) shows for a status. */
export function syncStatusState(status) {
  const unknown = status.unknown ?? 0;
  if (status.state === 'restoring') return 'restoring';
  if (status.state === 'stalled') return 'stalled';
  if (status.state === 'error' && status.failed + status.conflicts + unknown === 0) return 'error';
  if (status.state === 'paused' || status.state === 'offline' || status.state === 'blocked') return status.state;
  // Newer runtimes say "retrying" themselves; older ones only show it as syncing with nothing in flight.
  if (status.state === 'retrying') return 'retrying';
  if (status.state === 'syncing') return status.inFlight === 0 && status.nextAttemptAt != null ? 'retrying' : 'syncing';
  if (status.failed > 0) return 'failed';
  if (status.conflicts > 0) return 'conflict';
  if (unknown > 0) return 'unknown';
  return 'synced';
}

const defaultTime = (epochMs) => new Date(epochMs).toLocaleTimeString();

/**
 * The indicator's text for a status, e.g. "Synced", "Syncing 40 of 200", "Retrying at 10:42:05 · 1 failed".
 * `labels` may be partial: missing keys take the English defaults.
 */
export function describeSyncStatus(status, formatTime = defaultTime, labels = SYNC_STATUS_LABELS) {
  const L = withDefaults(labels);
  const queued = status.pending + status.inFlight;
  const parts = [];
  const withPending = (label, values) => {
    parts.push(formatLabel(label, values));
    if (queued > 0) parts.push(formatLabel(L.pending, { count: queued }));
  };
  switch (syncStatusState(status)) {
    case 'restoring':
      parts.push(formatLabel(L.restoring, status.progress ?? { current: 0, total: 0 }));
      break;
    case 'paused':
      withPending(L.paused);
      break;
    case 'offline':
      withPending(L.offline);
      break;
    case 'blocked':
      withPending(L.blocked, { time: formatTime(status.blockedUntil) });
      break;
    case 'retrying':
      if (status.nextAttemptAt != null) withPending(L.retrying, { time: formatTime(status.nextAttemptAt) });
      else withPending(L.retryingSoon);
      break;
    case 'syncing': {
      // `progress` (newer runtimes) counts the ops of this drain; without it, the queue length is all we know.
      const progress = status.progress;
      if (progress && progress.total > 0) parts.push(formatLabel(L.syncingProgress, progress));
      else parts.push(formatLabel(L.syncing, { count: queued }));
      break;
    }
    case 'error':
      parts.push(status.lastError ? formatLabel(L.errorWithMessage, { message: status.lastError.message }) : formatLabel(L.error));
      break;
    case 'stalled':
      withPending(L.stalled, { message: status.storageError?.message ?? formatLabel(L.storageFailing) });
      break;
    case 'synced':
      parts.push(formatLabel(L.synced));
      break;
    default:
      break;
  }
  if (status.failed > 0) parts.push(formatLabel(L.failedCount, { count: status.failed }));
  if (status.conflicts > 0) parts.push(formatLabel(status.conflicts === 1 ? L.conflictsOne : L.conflictsOther, { count: status.conflicts }));
  if ((status.unknown ?? 0) > 0) parts.push(formatLabel(L.unknownCount, { count: status.unknown }));
  return parts.join(formatLabel(L.separator));
}

/** A problem type URI shortened to its last segment, for display. */
function shortCode(code) {
  return typeof code === 'string' ? code.replace(/^.*\//, '') : '';
}

function describeError(error) {
  if (!error) return '';
  const head = [error.status, shortCode(error.code)].filter((x) => x != null && x !== '').join(' ');
  return error.message ? `${head}: ${error.message}` : head;
}

// The buttons of an op, by its state. A conflict is not retried: a retry resends the same stale If-Match and
// meets the same 412, so the choice offered is whose version wins (and the app's merge, when it has one).
const CONFLICT_ACTIONS = [
  ['keep-mine', 'keepMine'],
  ['keep-server', 'keepServer'],
  ['use-merged', 'useMerged'],
  ['discard', 'discard'],
];
const OTHER_ACTIONS = [
  ['retry', 'retry'],
  ['discard', 'discard'],
];

// Server-side rendering and workers have no DOM: the module still imports there, it just defines nothing.
const Base = globalThis.HTMLElement ?? class {};

export class SyncStatusElement extends Base {
  static get observedAttributes() {
    return ['inline'];
  }

  #outbox = null;
  #subscriptions = [];
  #status = null;
  #listed = '';
  #refreshSeq = 0;
  #labels = SYNC_STATUS_LABELS;
  #describe = null;
  #merge = null;
  #formatTime = defaultTime;
  #ops = new Map();
  #loaded = false;
  #root;
  #label;
  #announcement;
  #announced = '';
  #detailsButton;
  #panel;
  #list;
  #empty;
  #message;
  #retryAll;

  constructor() {
    super();
    this.#root = this.attachShadow({ mode: 'open' });
    this.#root.innerHTML = TEMPLATE;
    const part = (name) => this.#root.querySelector(`[part~='${name}']`);
    this.#label = part('label');
    this.#announcement = this.#root.querySelector('.announcement');
    this.#detailsButton = part('details-button');
    this.#panel = part('panel');
    this.#list = part('list');
    this.#empty = part('empty');
    this.#message = part('message');
    this.#retryAll = part('retry-all');
    this.#root.addEventListener('click', (event) => this.#onClick(event));
    this.#applyLabels();
    this.#applyInline();
  }

  /** The outbox to show. Setting it (re)subscribes; `null` detaches. */
  get outbox() {
    return this.#outbox;
  }

  set outbox(outbox) {
    if (outbox === this.#outbox) return;
    this.#detach();
    this.#outbox = outbox ?? null;
    this.#loaded = false;
    if (this.isConnected) this.#attach();
  }

  /** The last status shown, or `null` before an outbox is attached (or a status given). */
  get status() {
    return this.#status;
  }

  /**
   * Shows `status` without an outbox: what `Outbox.open`'s `onStatus` hears before `open` resolves (the
   * restore of a large queue), so the indicator shows it from the start. Once `outbox` is set, the
   * outbox's own status replaces it.
   */
  set status(status) {
    if (status && typeof status === 'object') this.#render(status);
  }

  /** Show the failed and conflicted ops inline instead of in a popover. */
  get inline() {
    return this.hasAttribute('inline');
  }

  set inline(value) {
    this.toggleAttribute('inline', Boolean(value));
  }

  /** Every label in use (the defaults with the app's overrides on top). Setting a partial object merges it. */
  get labels() {
    return { ...this.#labels };
  }

  set labels(labels) {
    this.#labels = withDefaults(labels);
    this.#rerender();
  }

  /** `(op) => string`: the title of an op in the list, instead of "put notes/n1". */
  get describe() {
    return this.#describe;
  }

  set describe(fn) {
    this.#describe = typeof fn === 'function' ? fn : null;
    this.#rerender();
  }

  /** `(op) => mergedValue | undefined`: offers "Use merged" on a conflict whenever it returns a value. */
  get merge() {
    return this.#merge;
  }

  set merge(fn) {
    this.#merge = typeof fn === 'function' ? fn : null;
    this.#rerender();
  }

  /** `(epochMs) => string`: the times in "Retrying at …" and "Blocked until …". */
  get formatTime() {
    return this.#formatTime;
  }

  set formatTime(fn) {
    this.#formatTime = typeof fn === 'function' ? fn : defaultTime;
    this.#rerender();
  }

  connectedCallback() {
    this.#attach();
  }

  disconnectedCallback() {
    this.#detach();
  }

  attributeChangedCallback() {
    this.#applyInline();
  }

  #rerender() {
    this.#applyLabels();
    if (this.#status) this.#render(this.#status);
    this.#renderOps();
  }

  #applyLabels() {
    const L = this.#labels;
    if (!this.#status) this.#label.textContent = formatLabel(L.notConnected);
    this.#root.querySelector("[part~='heading']").textContent = formatLabel(L.heading);
    this.#empty.textContent = formatLabel(L.empty);
    this.#retryAll.textContent = formatLabel(L.retryAll);
  }

  #applyInline() {
    const indicator = this.#root.querySelector("[part~='indicator']");
    if (this.inline) {
      this.#panel.removeAttribute('popover');
      this.#detailsButton.hidden = true;
      indicator.hidden = true;
    } else {
      this.#panel.setAttribute('popover', '');
      indicator.hidden = false;
    }
    // The panel is never `hidden`: inline, it shows its empty text when nothing needs attention (a page
    // that wants it gone then hides the element); as a popover, the popover attribute hides it.
    this.#panel.hidden = false;
    if (this.#status) this.#render(this.#status);
  }

  #attach() {
    const outbox = this.#outbox;
    if (!outbox || this.#subscriptions.length > 0) return;
    this.#subscriptions.push(outbox.subscribe((status) => this.#render(status)));
    // A retried op that fails again leaves the counts unchanged: refresh the list on each outcome too.
    for (const type of ['failed', 'conflict', 'unknown', 'discarded']) {
      this.#subscriptions.push(outbox.on(type, () => this.#refreshOps()));
    }
    this.#listed = '';
    this.#render(outbox.status());
  }

  #detach() {
    for (const unsubscribe of this.#subscriptions.splice(0)) unsubscribe();
    this.#refreshSeq++;
  }

  #render(status) {
    this.#status = status;
    const L = this.#labels;
    const state = syncStatusState(status);
    if (this.getAttribute('state') !== state) this.setAttribute('state', state);
    // Which tab sends: an attribute to style by (`tab-role="follower"`), and the indicator's tooltip.
    const role = status.role ?? 'uncoordinated';
    if (this.getAttribute('tab-role') !== role) this.setAttribute('tab-role', role);
    const tooltip = formatLabel({ leader: L.roleLeader, follower: L.roleFollower }[role] ?? L.roleUncoordinated);
    const indicator = this.#root.querySelector("[part~='indicator']");
    if (indicator.title !== tooltip) indicator.title = tooltip;
    const text = describeSyncStatus(status, this.#formatTime, L);
    if (this.#label.textContent !== text) this.#label.textContent = text;
    // The live region speaks when the state or the number of failures changes, not on every count of a
    // long sync ("Syncing 40 of 200", "Syncing 41 of 200" …), which would drown a screen reader.
    const unknown = status.unknown ?? 0;
    const announce = `${state}/${status.failed}/${status.conflicts}/${unknown}`;
    if (announce !== this.#announced) {
      this.#announced = announce;
      this.#announcement.textContent = text;
    }
    const attention = status.failed + status.conflicts + unknown;
    this.#detailsButton.hidden = this.inline || attention === 0;
    this.#detailsButton.textContent = formatLabel(attention === 1 ? L.reviewOne : L.reviewOther, { count: attention });
    const counts = `${status.failed}/${status.conflicts}/${unknown}`;
    if (counts !== this.#listed) {
      this.#listed = counts;
      this.#refreshOps();
    }
  }

  async #refreshOps() {
    const outbox = this.#outbox;
    if (!outbox) return;
    const seq = ++this.#refreshSeq;
    let ops;
    try {
      const lists = await Promise.all([outbox.failed(), outbox.conflicts(), outbox.unknown?.() ?? []]);
      ops = lists.flat().sort((a, b) => a.createdAt - b.createdAt);
    } catch {
      return; // closed meanwhile: the next status shows why
    }
    if (seq !== this.#refreshSeq) return;
    this.#ops = new Map(ops.map((op) => [op.id, op]));
    this.#loaded = true;
    this.#renderOps();
  }

  #renderOps() {
    if (!this.#loaded) return;
    const ops = [...this.#ops.values()];
    this.#list.replaceChildren(...ops.map((op) => this.#item(op)));
    this.#empty.hidden = ops.length > 0;
    this.#retryAll.hidden = ops.filter((op) => op.state !== 'conflict').length < 2;
  }

  /** The op's title: the app's `describe(op)` when it gives a string, else "put notes/n1". */
  #title(op) {
    if (this.#describe) {
      try {
        const text = this.#describe(op);
        if (typeof text === 'string' && text !== '') return text;
      } catch (error) {
        console.error('<sync-status> describe(op) threw; using the default title', error);
      }
    }
    const verb = op.op === 'custom' ? op.name : op.op;
    return formatLabel(this.#labels.opTitle, { verb: verb ?? '', collection: op.collection, key: op.key });
  }

  /** The app's merge for a conflict, or `undefined` when it has none for this op. */
  #merged(op) {
    if (!this.#merge) return undefined;
    try {
      return this.#merge(op);
    } catch (error) {
      console.error('<sync-status> merge(op) threw; not offering "Use merged"', error);
      return undefined;
    }
  }

  #item(op) {
    const L = this.#labels;
    const li = document.createElement('li');
    li.setAttribute('part', `item item-${op.state}`);
    li.dataset.id = op.id;
    const title = document.createElement('span');
    title.setAttribute('part', 'item-title');
    const name = this.#title(op);
    const note = { conflict: L.noteConflict, unknown: L.noteUnknown }[op.state];
    title.textContent = note ? `${name} ${formatLabel(note)}` : name;
    const error = document.createElement('span');
    error.setAttribute('part', 'item-error');
    if (op.state === 'conflict') {
      // "412 version-conflict: If-Match does not match" means nothing to most users: say it in words, and keep
      // the server's reason as the tooltip for whoever supports them.
      error.textContent = formatLabel(L.conflictHint);
      if (op.lastError) error.title = describeError(op.lastError);
    } else {
      error.textContent = describeError(op.lastError);
    }
    const actions = document.createElement('span');
    actions.setAttribute('part', 'item-actions');
    for (const [action, key] of op.state === 'conflict' ? CONFLICT_ACTIONS : OTHER_ACTIONS) {
      if (action === 'use-merged' && this.#merged(op) === undefined) continue;
      const label = formatLabel(L[key]);
      const button = document.createElement('button');
      button.type = 'button';
      button.setAttribute('part', action);
      button.dataset.action = action;
      button.dataset.id = op.id;
      button.textContent = label;
      button.setAttribute('aria-label', formatLabel(L.actionFor, { action: label, title: name }));
      actions.append(button);
    }
    li.append(title, actions, error);
    return li;
  }

  async #onClick(event) {
    const button = event.target.closest?.('button[data-action]');
    const outbox = this.#outbox;
    if (!button || !outbox) return;
    const { action, id } = button.dataset;
    this.#message.textContent = '';
    button.disabled = true;
    try {
      if (action === 'retry') await outbox.retry(id);
      else if (action === 'discard') await outbox.discard(id);
      else if (action === 'retry-all') await outbox.retryAll();
      else if (action === 'keep-mine') await outbox.resolve(id, { use: 'local' });
      else if (action === 'keep-server') await outbox.resolve(id, { use: 'server' });
      else if (action === 'use-merged') {
        // Asked again at the click: the op may have changed since the list was drawn.
        const op = this.#ops.get(id);
        const value = op ? this.#merged(op) : undefined;
        if (value === undefined) throw new Error('the merge gave no value for this change');
        await outbox.resolve(id, { use: 'merged', value });
      }
      const detail = id === undefined ? { action } : { action, id };
      this.dispatchEvent(new CustomEvent('sync-status-action', { detail, bubbles: true, composed: true }));
    } catch (error) {
      this.#message.textContent = error?.message ?? String(error);
    } finally {
      button.disabled = false;
      this.#refreshOps();
    }
  }
}

if (globalThis.customElements && !customElements.get('sync-status')) {
  customElements.define('sync-status', SyncStatusElement);
}
