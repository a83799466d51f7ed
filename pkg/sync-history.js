// <sync-history>: an outbox's sync health and its recent sync attempts, as a framework-agnostic custom element.
//
//   import 'outbox-sync/sync-history';
//   document.querySelector('sync-history').outbox = outbox;
//
// It shows what `outbox.health()` and `outbox.history()` report: a health summary (healthy or not, the alerts in
// words, the last successful sync, the success rate, latency) and a table of the latest attempts. It feature-
// detects both methods, so on a runtime without them it says so instead of failing, and like <sync-status> it
// subscribes only while it is in the document.

const STYLE = `
:host {
  display: block;
  font: var(--sync-history-font, inherit);
  color: var(--sync-history-color, inherit);
  --_ok: var(--sync-history-ok-color, var(--sync-status-synced-color, #2e7d32));
  --_warn: var(--sync-history-warn-color, var(--sync-status-blocked-color, #b45309));
  --_bad: var(--sync-history-error-color, var(--sync-status-error-color, #c62828));
  --_line: var(--sync-history-line-color, color-mix(in srgb, currentColor 18%, transparent));
}
:host([hidden]) { display: none; }
[hidden] { display: none !important; }
[part~='heading'] { margin: 0 0 0.5em; font-size: 1em; }
[part~='health'] { margin-block-end: 1em; }
[part~='health-state'] { display: flex; align-items: center; gap: 0.45em; margin: 0 0 0.5em; font-weight: 600; }
[part~='health-dot'] { inline-size: 0.65em; block-size: 0.65em; border-radius: 50%; background: var(--_dot, currentColor); flex: none; }
:host([health='healthy']) { --_dot: var(--_ok); }
:host([health='unhealthy']) { --_dot: var(--_bad); }
:host([health='unknown']) { --_dot: color-mix(in srgb, currentColor 45%, transparent); }
[part~='alerts'] { list-style: none; margin: 0 0 0.6em; padding: 0; display: grid; gap: 0.3em; }
[part~='alert'] {
  padding: 0.3em 0.6em;
  border-inline-start: 3px solid var(--_bad);
  background: color-mix(in srgb, var(--_bad) 9%, transparent);
  border-radius: 0.25em;
}
[part~='alert-rate_limited'], [part~='alert-stale'] {
  border-color: var(--_warn);
  background: color-mix(in srgb, var(--_warn) 10%, transparent);
}
[part~='stats'] {
  display: grid;
  grid-template-columns: repeat(auto-fill, minmax(9em, 1fr));
  gap: 0.5em 1em;
  margin: 0;
}
[part~='stat'] { margin: 0; }
[part~='stat'] dt { font-size: 0.8em; opacity: 0.75; }
[part~='stat'] dd { margin: 0; font-weight: 600; font-variant-numeric: tabular-nums; }
[part~='table-wrap'] { overflow-x: auto; }
[part~='table'] { border-collapse: collapse; inline-size: 100%; font-size: var(--sync-history-table-font-size, 0.9em); }
[part~='table'] th, [part~='table'] td { text-align: start; padding: 0.3em 0.6em 0.3em 0; border-bottom: 1px solid var(--_line); vertical-align: top; }
[part~='table'] th { font-weight: 600; white-space: nowrap; }
[part~='table'] td.num { text-align: end; font-variant-numeric: tabular-nums; }
/* Short cells stay on one line; only the status / error text wraps (the wrapper scrolls on a narrow screen). */
[part~='table'] td:not([part~='detail']) { white-space: nowrap; }
[part~='table'] th.num { text-align: end; }
[part~='outcome'] { display: inline-block; padding: 0 0.5em; border-radius: 999px; border: 1px solid currentColor; font-size: 0.85em; white-space: nowrap; }
[part~='outcome-success'] { color: var(--_ok); }
[part~='outcome-partial'] { color: var(--_warn); }
[part~='outcome-failure'] { color: var(--_bad); }
[part~='detail'] { overflow-wrap: anywhere; }
[part~='history-empty'], [part~='unsupported'] { margin: 0.25em 0; opacity: 0.8; }
`;

const TEMPLATE = `
<style>${STYLE}</style>
<section part="health" aria-labelledby="health-heading">
  <h2 part="heading health-heading" id="health-heading"></h2>
  <p part="health-state"><span part="health-dot" aria-hidden="true"></span><span part="health-text"></span></p>
  <div role="status" aria-live="polite" aria-atomic="true"><ul part="alerts"></ul></div>
  <dl part="stats"></dl>
</section>
<section part="history" aria-labelledby="history-heading">
  <h2 part="heading history-heading" id="history-heading"></h2>
  <div part="table-wrap">
    <table part="table" aria-labelledby="history-heading">
      <thead><tr part="header-row"></tr></thead>
      <tbody part="rows"></tbody>
    </table>
  </div>
  <p part="history-empty" hidden></p>
</section>
<p part="unsupported" hidden></p>
`;

/** Every word the element shows, in English: strings with `{name}` placeholders, or functions of the values. */
export const SYNC_HISTORY_LABELS = Object.freeze({
  healthHeading: 'Sync health',
  historyHeading: 'Recent syncs',
  healthy: 'Healthy',
  unhealthy: 'Needs attention',
  healthUnknown: 'No sync yet',
  unsupported: 'This version of outbox-sync reports no sync health or history.',
  historyEmpty: 'No syncs yet.',
  lastSync: 'Last sync',
  never: 'Never',
  successRate: 'Success rate',
  p95: 'Latency (p95)',
  mean: 'Latency (mean)',
  failuresInARow: 'Failures in a row',
  rateLimit: 'Rate limit',
  rateLimitLeft: '{remaining} of {limit} left',
  none: '—',
  percent: '{value}%',
  ms: '{value} ms',
  seconds: '{value} s',
  alertStale: 'No successful sync since {time}',
  alertStaleNever: 'Nothing has synced yet',
  alertFailing: 'Syncing keeps failing ({count} in a row)',
  alertRateLimited: 'The server is limiting requests until {time}',
  alertRateLimitedNoTime: 'The server is limiting requests',
  alertStorageBlocked: 'Changes cannot be saved on this device',
  /** `{failed}`, `{conflicts}`, `{unknown}` */
  alertDeadLetters: 'Changes wait for a decision: {failed} failed, {conflicts} in conflict, {unknown} unknown',
  alertOther: '{type}',
  colKind: 'Kind',
  colTrigger: 'Trigger',
  colWhen: 'When',
  colDuration: 'Duration',
  colItems: 'Items',
  colOutcome: 'Outcome',
  colDetail: 'Status / error',
  kindSend: 'Send',
  kindBatch: 'Batch',
  kindPull: 'Pull',
  kindDrain: 'Drain',
  outcomeSuccess: 'OK',
  outcomePartial: 'Partial',
  outcomeFailure: 'Failed',
  // What started an attempt, by the runtime's trigger names (a trigger without a label shows as named).
  triggerEnqueue: 'New change',
  triggerTimer: 'Timer',
  triggerOnline: 'Back online',
  triggerFocus: 'Page shown',
  triggerManual: 'App',
  triggerPullInterval: 'Periodic pull',
  triggerWorker: 'Worker',
  triggerRestore: 'Reopened',
});

function formatLabel(label, values = {}) {
  if (typeof label === 'function') return String(label(values));
  return String(label ?? '').replace(/\{(\w+)\}/g, (whole, name) => (values[name] ?? whole).toString());
}

const capital = (word) => String(word).replace(/(^|[_-])(\w)/g, (m, sep, c) => c.toUpperCase());
const defaultTime = (epochMs) => new Date(epochMs).toLocaleTimeString();
/** A problem type URI shortened to its last segment, for display. */
const shortCode = (code) => (typeof code === 'string' ? code.replace(/^.*\//, '') : '');
// How often the health is read again on its own: "stale" is a matter of time passing, not of any event.
const HEALTH_POLL_MS = 5000;

const Base = globalThis.HTMLElement ?? class {};

export class SyncHistoryElement extends Base {
  static get observedAttributes() {
    return ['limit'];
  }

  #outbox = null;
  #subscriptions = [];
  #labels = SYNC_HISTORY_LABELS;
  #formatTime = defaultTime;
  #health = null;
  #entries = [];
  #alertsShown = null;
  #timer = null;
  #queued = false;
  #seq = 0;
  #root;
  #part;

  constructor() {
    super();
    this.#root = this.attachShadow({ mode: 'open' });
    this.#root.innerHTML = TEMPLATE;
    this.#part = (name) => this.#root.querySelector(`[part~='${name}']`);
    this.#renderAll();
  }

  /** The outbox to show. Setting it (re)subscribes; `null` detaches. */
  get outbox() {
    return this.#outbox;
  }

  set outbox(outbox) {
    if (outbox === this.#outbox) return;
    this.#detach();
    this.#outbox = outbox ?? null;
    this.#health = null;
    this.#entries = [];
    if (this.isConnected) this.#attach();
    else this.#renderAll();
  }

  /** How many attempts the table lists (the `limit` attribute; default 20). */
  get limit() {
    const n = Number.parseInt(this.getAttribute('limit') ?? '', 10);
    return Number.isFinite(n) && n > 0 ? n : 20;
  }

  set limit(value) {
    this.setAttribute('limit', String(value));
  }

  /** Every label in use (the defaults with the app's overrides on top). Setting a partial object merges it. */
  get labels() {
    return { ...this.#labels };
  }

  set labels(labels) {
    this.#labels = labels ? { ...SYNC_HISTORY_LABELS, ...labels } : SYNC_HISTORY_LABELS;
    this.#alertsShown = null;
    this.#renderAll();
  }

  /** `(epochMs) => string`: the times shown (last sync, "When", alerts). */
  get formatTime() {
    return this.#formatTime;
  }

  set formatTime(fn) {
    this.#formatTime = typeof fn === 'function' ? fn : defaultTime;
    this.#alertsShown = null;
    this.#renderAll();
  }

  /** The last health read, or `null`. */
  get health() {
    return this.#health;
  }

  /** The attempts listed, newest first. */
  get entries() {
    return [...this.#entries];
  }

  /** Whether the outbox reports health and history (a runtime before they existed does not). */
  get supported() {
    const o = this.#outbox;
    return Boolean(o && (typeof o.health === 'function' || typeof o.history === 'function'));
  }

  connectedCallback() {
    this.#attach();
  }

  disconnectedCallback() {
    this.#detach();
  }

  attributeChangedCallback() {
    if (this.#subscriptions.length > 0) this.#loadHistory();
  }

  #attach() {
    const outbox = this.#outbox;
    if (!outbox || this.#subscriptions.length > 0) {
      this.#renderAll();
      return;
    }
    const hasHealth = typeof outbox.health === 'function';
    const hasHistory = typeof outbox.history === 'function';
    // A status change (a drain starting or ending, going offline …) may change the health.
    if (typeof outbox.subscribe === 'function') this.#subscriptions.push(outbox.subscribe(() => this.#schedule()));
    if (hasHistory && typeof outbox.watchHistory === 'function') {
      this.#subscriptions.push(outbox.watchHistory((entry) => this.#addEntry(entry)));
    }
    if (hasHealth) {
      this.#timer = setInterval(() => this.#readHealth(), HEALTH_POLL_MS);
      this.#subscriptions.push(() => clearInterval(this.#timer));
    }
    this.#readHealth();
    this.#loadHistory();
  }

  #detach() {
    for (const unsubscribe of this.#subscriptions.splice(0)) unsubscribe?.();
    this.#seq++;
  }

  // Status callbacks come in bursts (every ack of a drain): read the health once per burst.
  #schedule() {
    if (this.#queued) return;
    this.#queued = true;
    setTimeout(() => {
      this.#queued = false;
      this.#readHealth();
      // Without watchHistory, a status change is the only hint of a new attempt.
      if (typeof this.#outbox?.watchHistory !== 'function') this.#loadHistory();
    }, 100);
  }

  #readHealth() {
    const outbox = this.#outbox;
    if (typeof outbox?.health === 'function') {
      try {
        this.#health = outbox.health();
      } catch {
        // closed meanwhile: keep the last health shown
      }
    }
    this.#renderHealth();
  }

  async #loadHistory() {
    const outbox = this.#outbox;
    if (typeof outbox?.history !== 'function') return this.#renderHistory();
    const seq = ++this.#seq;
    let entries;
    try {
      entries = await outbox.history({ limit: this.limit });
    } catch {
      return; // closed meanwhile
    }
    if (seq !== this.#seq) return;
    this.#entries = Array.isArray(entries) ? entries.slice(0, this.limit) : [];
    this.#renderHistory();
  }

  #addEntry(entry) {
    if (!entry) return;
    this.#entries = [entry, ...this.#entries.filter((e) => e.id !== entry.id)].slice(0, this.limit);
    this.#renderHistory();
    this.#schedule();
  }

  #renderAll() {
    const L = this.#labels;
    this.#part('health-heading').textContent = formatLabel(L.healthHeading);
    this.#part('history-heading').textContent = formatLabel(L.historyHeading);
    this.#part('unsupported').textContent = formatLabel(L.unsupported);
    this.#part('history-empty').textContent = formatLabel(L.historyEmpty);
    const columns = [
      ['colKind'],
      ['colTrigger'],
      ['colWhen'],
      ['colDuration', 'num'],
      ['colItems', 'num'],
      ['colOutcome'],
      ['colDetail'],
    ];
    this.#part('header-row').replaceChildren(
      ...columns.map(([key, cls]) => {
        const th = document.createElement('th');
        th.scope = 'col';
        if (cls) th.className = cls;
        th.textContent = formatLabel(L[key]);
        return th;
      }),
    );
    this.#renderHealth();
    this.#renderHistory();
  }

  #duration(ms) {
    if (ms == null || !Number.isFinite(ms)) return formatLabel(this.#labels.none);
    if (ms < 1000) return formatLabel(this.#labels.ms, { value: Math.round(ms) });
    return formatLabel(this.#labels.seconds, { value: (ms / 1000).toFixed(ms < 10_000 ? 1 : 0) });
  }

  #time(epochMs) {
    return epochMs == null ? formatLabel(this.#labels.never) : this.#formatTime(epochMs);
  }

  /** An alert in words; the alert's own fields first, the health's as a fallback. */
  alertText(alert, health = this.#health ?? {}) {
    const L = this.#labels;
    switch (alert?.type) {
      case 'stale': {
        const since = alert.since ?? alert.lastSuccessAt ?? health.lastSuccessAt;
        return since == null ? formatLabel(L.alertStaleNever) : formatLabel(L.alertStale, { time: this.#formatTime(since) });
      }
      case 'failing':
        return formatLabel(L.alertFailing, { count: alert.consecutiveFailures ?? alert.count ?? health.consecutiveFailures ?? '?' });
      case 'rate_limited': {
        const until = alert.resetAt ?? alert.until ?? health.rateLimit?.resetAt;
        return until == null ? formatLabel(L.alertRateLimitedNoTime) : formatLabel(L.alertRateLimited, { time: this.#formatTime(until) });
      }
      case 'storage_blocked':
        return formatLabel(L.alertStorageBlocked, alert);
      default: {
        const key = `alert${capital(alert?.type ?? '')}`;
        if (L[key] !== undefined) return formatLabel(L[key], alert);
        return alert?.message ?? formatLabel(L.alertOther, { type: alert?.type ?? '?' });
      }
    }
  }

  #renderHealth() {
    const L = this.#labels;
    const outbox = this.#outbox;
    const hasHealth = typeof outbox?.health === 'function';
    const hasHistory = typeof outbox?.history === 'function';
    this.#part('health').hidden = !hasHealth;
    this.#part('history').hidden = !hasHistory;
    this.#part('unsupported').hidden = !outbox || hasHealth || hasHistory;
    const health = this.#health;
    const word = !health ? 'unknown' : health.healthy ? 'healthy' : 'unhealthy';
    // Not from the constructor: a created element must not get attributes there (createElement would throw).
    if (this.isConnected && this.getAttribute('health') !== word) this.setAttribute('health', word);
    const text = { healthy: L.healthy, unhealthy: L.unhealthy, unknown: L.healthUnknown }[word];
    this.#part('health-text').textContent = formatLabel(text);
    // The alerts sit in a polite live region: rewrite it only when they change, so it speaks once per change.
    const alerts = Array.isArray(health?.alerts) ? health.alerts : [];
    const texts = alerts.map((alert) => this.alertText(alert, health));
    const key = JSON.stringify(texts);
    if (key !== this.#alertsShown) {
      this.#alertsShown = key;
      this.#part('alerts').replaceChildren(
        ...alerts.map((alert, i) => {
          const li = document.createElement('li');
          li.setAttribute('part', `alert alert-${alert?.type ?? 'other'}`);
          li.dataset.type = alert?.type ?? '';
          li.textContent = texts[i];
          return li;
        }),
      );
    }
    if (!health) return this.#part('stats').replaceChildren();
    const rate = health.successRate;
    const rl = health.rateLimit;
    const stats = [
      ['last-sync', L.lastSync, this.#time(health.lastSuccessAt)],
      ['success-rate', L.successRate, rate == null ? formatLabel(L.none) : formatLabel(L.percent, { value: Math.round(rate * 100) })],
      ['p95', L.p95, this.#duration(health.p95DurationMs)],
      ['mean', L.mean, this.#duration(health.meanDurationMs)],
      ['failures', L.failuresInARow, String(health.consecutiveFailures ?? 0)],
    ];
    if (rl?.limit != null) stats.push(['rate-limit', L.rateLimit, formatLabel(L.rateLimitLeft, { remaining: rl.remaining ?? '?', limit: rl.limit })]);
    this.#part('stats').replaceChildren(
      ...stats.map(([name, label, value]) => {
        const div = document.createElement('div');
        div.setAttribute('part', `stat stat-${name}`);
        const dt = document.createElement('dt');
        dt.textContent = formatLabel(label);
        const dd = document.createElement('dd');
        dd.textContent = value;
        div.append(dt, dd);
        return div;
      }),
    );
  }

  #renderHistory() {
    const L = this.#labels;
    const rows = this.#entries.map((entry) => {
      const tr = document.createElement('tr');
      tr.setAttribute('part', `row row-${entry.outcome}`);
      tr.dataset.id = entry.id ?? '';
      tr.dataset.kind = entry.kind ?? '';
      tr.dataset.outcome = entry.outcome ?? '';
      const cell = (text, cls) => {
        const td = document.createElement('td');
        if (cls) td.className = cls;
        td.textContent = text;
        tr.append(td);
        return td;
      };
      cell(formatLabel(L[`kind${capital(entry.kind ?? '')}`] ?? entry.kind ?? ''));
      const trigger = entry.trigger ?? '';
      cell(formatLabel(L[`trigger${capital(trigger)}`] ?? trigger));
      const when = cell(entry.startedAt == null ? '' : this.#formatTime(entry.startedAt), 'when');
      if (entry.startedAt != null) when.title = new Date(entry.startedAt).toISOString();
      cell(this.#duration(entry.durationMs ?? (entry.endedAt != null ? entry.endedAt - entry.startedAt : null)), 'num');
      cell(entry.items == null ? '' : String(entry.items), 'num');
      const outcome = cell('');
      const badge = document.createElement('span');
      badge.setAttribute('part', `outcome outcome-${entry.outcome}`);
      badge.textContent = formatLabel(L[`outcome${capital(entry.outcome ?? '')}`] ?? entry.outcome ?? '');
      outcome.append(badge);
      const detail = [entry.status, shortCode(entry.errorCode)].filter((x) => x != null && x !== '').join(' ');
      const td = cell(entry.errorMessage ? `${detail}${detail ? ': ' : ''}${entry.errorMessage}` : detail);
      td.setAttribute('part', 'detail');
      return tr;
    });
    this.#part('rows').replaceChildren(...rows);
    this.#part('history-empty').hidden = rows.length > 0;
  }
}

if (globalThis.customElements && !customElements.get('sync-history')) {
  customElements.define('sync-history', SyncHistoryElement);
}
