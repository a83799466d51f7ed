// <sync-status>: a sync indicator for an outbox-sync `Outbox`, as a framework-agnostic custom element.
//
//   import 'outbox-sync/sync-status';
//   document.querySelector('sync-status').outbox = outbox;
//
// Importing this module defines the element (once). It holds no state of its own: everything it shows comes
// from `outbox.subscribe` and `outbox.failed()` / `conflicts()` / `unknown()`, and it unsubscribes when removed from
// the document, so it can be mounted and unmounted freely by any framework.

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
:host([state='syncing']), :host([state='retrying']) { --_dot: var(--sync-status-syncing-color, #1565c0); }
:host([state='offline']), :host([state='paused']) { --_dot: var(--sync-status-offline-color, #757575); }
:host([state='blocked']) { --_dot: var(--sync-status-blocked-color, #ef6c00); }
:host([state='failed']), :host([state='conflict']), :host([state='unknown']), :host([state='stalled']), :host([state='error']) {
  --_dot: var(--sync-status-error-color, #c62828);
}
:host([state='syncing']) [part~='dot'] { animation: pulse 1s ease-in-out infinite alternate; }
@keyframes pulse { to { opacity: 0.35; } }
@media (prefers-reduced-motion: reduce) { :host([state='syncing']) [part~='dot'] { animation: none; } }
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
[part~='item'] { display: grid; grid-template-columns: 1fr auto; gap: 0.15em 0.5em; align-items: center; }
[part~='item-title'] { font-weight: 600; overflow-wrap: anywhere; }
[part~='item-error'] { grid-column: 1; font-size: 0.85em; opacity: 0.85; overflow-wrap: anywhere; }
[part~='item-actions'] { grid-column: 2; grid-row: 1 / span 2; display: flex; gap: 0.35em; }
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
  <span part="dot" aria-hidden="true"></span><span part="label">Not connected</span>
</span>
<span class="announcement" role="status" aria-live="polite" aria-atomic="true"></span>
<button part="details-button" type="button" popovertarget="panel" aria-haspopup="dialog" hidden>Review</button>
<section part="panel" id="panel" popover aria-labelledby="heading">
  <h2 part="heading" id="heading">Changes that need attention</h2>
  <ul part="list"></ul>
  <p part="empty" hidden>Nothing needs attention.</p>
  <div part="footer">
    <span part="message" role="alert"></span>
    <button part="retry-all" type="button" data-action="retry-all">Retry all</button>
  </div>
</section>
`;

/** The word the indicator (and its `state` attribute) shows for a status. */
export function syncStatusState(status) {
  const unknown = status.unknown ?? 0;
  if (status.state === 'stalled') return 'stalled';
  if (status.state === 'error' && status.failed + status.conflicts + unknown === 0) return 'error';
  if (status.state === 'paused' || status.state === 'offline' || status.state === 'blocked') return status.state;
  if (status.state === 'syncing') return status.inFlight === 0 && status.nextAttemptAt != null ? 'retrying' : 'syncing';
  if (status.failed > 0) return 'failed';
  if (status.conflicts > 0) return 'conflict';
  if (unknown > 0) return 'unknown';
  return 'synced';
}

const defaultTime = (epochMs) => new Date(epochMs).toLocaleTimeString();

/** The indicator's text for a status, e.g. "Synced", "Syncing 3", "Retrying at 10:42:05 · 1 failed". */
export function describeSyncStatus(status, formatTime = defaultTime) {
  const queued = status.pending + status.inFlight;
  const pending = queued > 0 ? ` · ${queued} pending` : '';
  const parts = [];
  switch (syncStatusState(status)) {
    case 'paused':
      parts.push(`Paused${pending}`);
      break;
    case 'offline':
      parts.push(`Offline${pending}`);
      break;
    case 'blocked':
      parts.push(`Blocked until ${formatTime(status.blockedUntil)}${pending}`);
      break;
    case 'retrying':
      parts.push(`Retrying at ${formatTime(status.nextAttemptAt)}${pending}`);
      break;
    case 'syncing':
      parts.push(`Syncing ${queued}`);
      break;
    case 'error':
      parts.push(status.lastError ? `Sync error: ${status.lastError.message}` : 'Sync error');
      break;
    case 'stalled':
      parts.push(`Not saving: ${status.storageError?.message ?? 'storage is failing'}${pending}`);
      break;
    case 'synced':
      parts.push('Synced');
      break;
    default:
      break;
  }
  if (status.failed > 0) parts.push(`${status.failed} failed`);
  if (status.conflicts > 0) parts.push(`${status.conflicts} ${status.conflicts === 1 ? 'conflict' : 'conflicts'}`);
  if ((status.unknown ?? 0) > 0) parts.push(`${status.unknown} unknown`);
  return parts.join(' · ');
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
    if (this.isConnected) this.#attach();
  }

  /** The last status shown, or `null` before an outbox is attached. */
  get status() {
    return this.#status;
  }

  /** Show the failed and conflicted ops inline instead of in a popover. */
  get inline() {
    return this.hasAttribute('inline');
  }

  set inline(value) {
    this.toggleAttribute('inline', Boolean(value));
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

  #applyInline() {
    if (this.inline) {
      this.#panel.removeAttribute('popover');
      this.#detailsButton.hidden = true;
      this.#root.querySelector("[part~='indicator']").hidden = true;
    } else {
      this.#panel.setAttribute('popover', '');
      this.#panel.hidden = false;
      this.#root.querySelector("[part~='indicator']").hidden = false;
    }
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
    const state = syncStatusState(status);
    if (this.getAttribute('state') !== state) this.setAttribute('state', state);
    const text = describeSyncStatus(status);
    if (this.#label.textContent !== text) this.#label.textContent = text;
    // The live region speaks when the state or the number of failures changes, not on every count of a
    // long sync ("Syncing 199", "Syncing 198" …), which would drown a screen reader.
    const unknown = status.unknown ?? 0;
    const announce = `${state}/${status.failed}/${status.conflicts}/${unknown}`;
    if (announce !== this.#announced) {
      this.#announced = announce;
      this.#announcement.textContent = text;
    }
    const attention = status.failed + status.conflicts + unknown;
    this.#detailsButton.hidden = this.inline || attention === 0;
    this.#detailsButton.textContent = attention === 1 ? 'Review 1 change' : `Review ${attention} changes`;
    if (this.inline) this.#panel.hidden = attention === 0;
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
      const lists = await Promise.all([outbox.failed(), outbox.conflicts(), outbox.unknown()]);
      ops = lists.flat().sort((a, b) => a.createdAt - b.createdAt);
    } catch {
      return; // closed meanwhile: the next status shows why
    }
    if (seq !== this.#refreshSeq) return;
    this.#list.replaceChildren(...ops.map((op) => this.#item(op)));
    this.#empty.hidden = ops.length > 0;
    this.#retryAll.hidden = ops.length < 2;
  }

  #item(op) {
    const li = document.createElement('li');
    li.setAttribute('part', `item item-${op.state}`);
    li.dataset.id = op.id;
    const title = document.createElement('span');
    title.setAttribute('part', 'item-title');
    const verb = op.op === 'custom' ? op.name : op.op;
    const note = { conflict: ' (conflict)', unknown: ' (may already be saved)' }[op.state] ?? '';
    title.textContent = `${verb} ${op.collection}/${op.key}${note}`;
    const error = document.createElement('span');
    error.setAttribute('part', 'item-error');
    error.textContent = describeError(op.lastError);
    const actions = document.createElement('span');
    actions.setAttribute('part', 'item-actions');
    for (const [action, label] of [
      ['retry', 'Retry'],
      ['discard', 'Discard'],
    ]) {
      const button = document.createElement('button');
      button.type = 'button';
      button.setAttribute('part', action);
      button.dataset.action = action;
      button.dataset.id = op.id;
      button.textContent = label;
      button.setAttribute('aria-label', `${label} ${verb} ${op.collection}/${op.key}`);
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
