// Many tabs, one sender. Every context that opens an outbox (a tab, a worker, the service worker) asks for
// one Web Lock per outbox name; the holder is the leader and is the only one that sends and pulls. The
// others are followers: they enqueue durably themselves (their promise resolves on their own commit), and
// see the same view and status as the leader through a BroadcastChannel, with IndexedDB as the truth. When
// the leader closes or dies, the browser hands the lock to the next context at once; that one rebuilds its
// engine from the store and resends what may have been in flight under the same keys. No heartbeats: the
// lock already answers who leads.
//
// What crosses the channel (`outbox-sync:<name>`):
//   commit  {records, changed} any tab, after each of its commits: every tab adopts the ops stored for the
//                            first time (`records`); after a commit that `changed` stored state (the
//                            leader's), followers re-read the store
//   event   {event}          the leader's outcome events, re-emitted by followers after they re-read
//   status  {status}         the leader's status, shown by followers
//   hello                    a new follower asks the leader for its status
//   leader                   a new leader: followers send it the commands still unanswered
//   cmd     {id, from, name, args} / reply {id, to, ok, value | error}: a follower's command, run by the leader
//
// The Rust side of each role is `src/runtime/tabs.rs`.
import { SyncError } from './wasm/sync-error.js';

/** The app's commands that act on the shared queue: a follower forwards them to the leader. */
export const FORWARDED = ['drain', 'retry', 'retryAll', 'discard', 'resolve', 'pause', 'resume', 'pull'];

/** How often a leader looks in the store for ops whose tab died before it could say so (ms). */
const SCAN_INTERVAL_MS = 2000;
/**
 * How long a follower gathers messages before it re-reads the store (ms), at least; and at least this many
 * times the last re-read took, so that followers of a busy leader with a big queue spend a bounded share of
 * the CPU re-reading (the leader's commits come every few ms while it drains).
 */
const REFRESH_DELAY_MS = 10;
const REFRESH_SPACING = 4;
/** The longest a follower holds a leader's event back waiting for the commit that goes with it (ms). */
const EVENT_WAIT_MS = 200;

/** The outboxes open (or opening) in this context, by name: one instance per name. */
const openNames = new Set();
/** Each outbox's tab state. */
const tabs = new WeakMap();

export function tabOf(outbox) {
  return tabs.get(outbox);
}

function coordinationAvailable() {
  return (
    typeof navigator !== 'undefined' &&
    typeof navigator.locks?.request === 'function' &&
    typeof BroadcastChannel === 'function'
  );
}

function report(error) {
  if (typeof globalThis.reportError === 'function') globalThis.reportError(error);
  else queueMicrotask(() => { throw error; });
}

/**
 * Opens `options.name` in this context, in the role the election gives it. `openAs(options, role)` is the
 * wasm module's open. A second open of a name already open here fails with `ALREADY_OPEN`: two engines on
 * one store in one page would diverge.
 */
export async function openInTabs(openAs, options) {
  const name = typeof options === 'object' && options !== null ? options.name : undefined;
  // Anything that is not a usable name is the wasm side's to refuse, with its own message.
  if (typeof name !== 'string' || name === '') return openAs(options, 'uncoordinated');
  if (openNames.has(name)) {
    throw new SyncError(
      'ALREADY_OPEN',
      `the outbox "${name}" is already open in this context: use that instance (or close it first)`,
    );
  }
  openNames.add(name);
  try {
    if (!coordinationAvailable()) {
      const outbox = await openAs(options, 'uncoordinated');
      const tab = { name, role: 'uncoordinated', closed: false };
      tab.close = () => closeTab(tab, name);
      tabs.set(outbox, tab);
      return outbox;
    }
    return await openCoordinated(openAs, options, name);
  } catch (error) {
    openNames.delete(name);
    throw error;
  }
}

async function openCoordinated(openAs, options, name) {
  const lockName = `outbox-sync:${name}`;
  let release;
  // Held until `release` (close): the lock passes on only once this context is done with the store.
  const held = new Promise((resolve) => (release = resolve));
  // Leader at once if nobody holds the lock: a lone tab never starts as a follower.
  const granted = await new Promise((resolve, reject) => {
    navigator.locks
      .request(lockName, { ifAvailable: true }, (lock) => {
        resolve(lock !== null);
        return lock ? held : undefined;
      })
      .catch(reject);
  });
  let outbox;
  try {
    outbox = await openAs(options, granted ? 'leader' : 'follower');
  } catch (error) {
    release();
    throw error;
  }
  const tab = {
    name,
    role: granted ? 'leader' : 'follower',
    id: crypto.randomUUID(),
    channel: new BroadcastChannel(lockName),
    /** Messages and commands handled one at a time, in order. */
    queue: Promise.resolve(),
    /** Forwarded commands not yet answered, by id. */
    pending: new Map(),
    /** Leader events heard, waiting for the commit of what they tell. */
    events: [],
    /** Leader events whose commit was heard: told after the next re-read. */
    due: [],
    eventTimer: null,
    refreshTimer: null,
    scanTimer: null,
    abort: new AbortController(),
    /** The outbox may post to the other tabs (`connect`). */
    connected: false,
    closed: false,
    release,
    close: null,
  };
  tab.close = () => closeTab(tab, name);
  tabs.set(outbox, tab);
  // A follower talks to its leader from the start; a leader only once another tab speaks (`connect`).
  if (!granted) connect(outbox, tab);
  tab.channel.onmessage = (event) => onMessage(outbox, tab, event.data);
  // A tab that slept (hidden, frozen, restored from the back/forward cache) may have missed messages: it
  // catches up from the store when it shows again.
  if (typeof document !== 'undefined') {
    tab.onVisible = () => {
      if (document.visibilityState === 'visible' && tab.role === 'follower') scheduleRefresh(outbox, tab);
    };
    document.addEventListener('visibilitychange', tab.onVisible);
    globalThis.addEventListener?.('pageshow', tab.onVisible);
  }
  if (granted) {
    startScanning(outbox, tab);
    outbox.__tabPostStatus();
  } else {
    tab.channel.postMessage({ type: 'hello' });
    // Queued behind the leader (and any earlier follower): granted the moment they are gone.
    navigator.locks
      .request(lockName, { signal: tab.abort.signal }, (lock) => {
        if (tab.closed || !lock) return undefined;
        serially(tab, () => promote(outbox, tab));
        return held;
      })
      .catch(() => {}); // aborted by close
  }
  return outbox;
}

function serially(tab, task) {
  tab.queue = tab.queue.then(task).catch((error) => {
    // Once this context closed, whatever a task met (the closed database, say) concerns nobody.
    if (!tab.closed && !(error instanceof SyncError && error.code === 'CLOSED')) report(error);
  });
  return tab.queue;
}

async function promote(outbox, tab) {
  if (tab.closed) return;
  await outbox.__tabPromote();
  tab.role = 'leader';
  startScanning(outbox, tab);
  tab.channel.postMessage({ type: 'leader' });
  // What this tab had asked the old leader and never heard back about, it now does itself.
  for (const [id, command] of [...tab.pending]) {
    tab.pending.delete(id);
    runCommand(outbox, command.name, command.args).then(command.resolve, command.reject);
  }
}

function startScanning(outbox, tab) {
  tab.scanTimer = setInterval(() => {
    serially(tab, () => outbox.__tabAdopt([], null));
  }, SCAN_INTERVAL_MS);
}

/**
 * Lets the outbox post to the other tabs. A tab that leads from its open posts nothing until another tab
 * speaks: alone, every event and commit would be cloned for nobody. A tab that opens reads the store before
 * its channel exists and says `hello` after, so what the leader commits in between reaches it by no
 * message: the leader, connecting, posts a commit that changed the store, and every follower re-reads it.
 */
function connect(outbox, tab) {
  if (tab.connected) return;
  tab.connected = true;
  outbox.__tabConnect((message) => {
    if (!tab.closed) tab.channel.postMessage(message);
  });
  if (tab.role === 'leader') post(tab, { type: 'commit', records: [], changed: true });
}

function onMessage(outbox, tab, message) {
  if (tab.closed || typeof message !== 'object' || message === null) return;
  if (tab.role === 'leader') {
    connect(outbox, tab);
    switch (message.type) {
      case 'commit':
        serially(tab, () => outbox.__tabAdopt(message.records ?? [], message.after ?? []));
        return;
      case 'hello':
        outbox.__tabPostStatus();
        return;
      case 'cmd':
        // Started after the messages before it (a follower's enqueue, then its drain), but not awaited:
        // a drain must not hold up the adoption of what other tabs commit meanwhile.
        serially(tab, () => {
          answer(outbox, tab, message);
        });
        return;
      default:
        return;
    }
  }
  switch (message.type) {
    case 'commit':
      if (message.records?.length) serially(tab, () => outbox.__tabAdopt(message.records, []));
      if (message.changed) {
        // The leader emits an event when it decides, and commits what it decided afterwards; the events
        // heard before this commit are told once the store read includes it.
        tab.due.push(...tab.events.splice(0));
        scheduleRefresh(outbox, tab);
      }
      return;
    case 'event':
      tab.events.push(message.event);
      // An event with no write of its own (drained, unblocked) is told at the latest after this long.
      clearTimeout(tab.eventTimer);
      tab.eventTimer = setTimeout(() => {
        tab.due.push(...tab.events.splice(0));
        scheduleRefresh(outbox, tab);
      }, EVENT_WAIT_MS);
      return;
    case 'status':
      outbox.__tabLeaderStatus(message.status, message.paused === true);
      return;
    case 'leader':
      for (const [id, command] of tab.pending) post(tab, command.message ?? { type: 'cmd', id });
      return;
    case 'reply': {
      if (message.to !== tab.id) return;
      const command = tab.pending.get(message.id);
      if (!command) return;
      tab.pending.delete(message.id);
      // The leader committed what the command did before it answered: read it first, so that what this
      // tab shows after the promise settles already includes it.
      serially(tab, () => refresh(outbox, tab)).then(() => {
        if (message.ok) command.resolve(message.value);
        else command.reject(new SyncError(message.error.code, message.error.message));
      });
      return;
    }
    default:
  }
}

function post(tab, message) {
  if (!tab.closed) tab.channel.postMessage(message);
}

function scheduleRefresh(outbox, tab) {
  if (tab.refreshTimer !== null) return;
  const delay = Math.max(REFRESH_DELAY_MS, REFRESH_SPACING * (tab.lastRefreshMs ?? 0));
  tab.refreshTimer = setTimeout(() => {
    tab.refreshTimer = null;
    serially(tab, () => refresh(outbox, tab));
  }, delay);
}

/** A follower re-reads the store, then tells its listeners the leader's events that led there. */
async function refresh(outbox, tab) {
  if (tab.closed || tab.role !== 'follower') return;
  const due = tab.due.splice(0);
  const started = performance.now();
  await outbox.__tabRefresh();
  tab.lastRefreshMs = performance.now() - started;
  for (const event of due) outbox.__tabRemoteEvent(event);
}

/** The leader's own method for a forwarded command (the prototype's, without forwarding). */
let localMethods = {};
export function setLocalMethods(methods) {
  localMethods = methods;
}

async function runCommand(outbox, name, args) {
  return localMethods[name].apply(outbox, args);
}

async function answer(outbox, tab, message) {
  let reply;
  try {
    const value = await runCommand(outbox, message.name, message.args ?? []);
    reply = { type: 'reply', id: message.id, to: message.from, ok: true, value: value ?? null };
  } catch (error) {
    const code = error instanceof SyncError ? error.code : 'INTERNAL';
    reply = { type: 'reply', id: message.id, to: message.from, ok: false, error: { code, message: String(error?.message ?? error) } };
  }
  post(tab, reply);
}

/**
 * A follower's command, run by the leader: resolves with the leader's answer. Sent again to a new leader
 * if the old one is gone before it answered, and run here if this tab becomes the leader itself.
 */
export function forward(outbox, tab, name, args) {
  if (tab.closed) return Promise.reject(new SyncError('CLOSED', 'the outbox was closed'));
  return new Promise((resolve, reject) => {
    const id = crypto.randomUUID();
    const message = { type: 'cmd', id, from: tab.id, name, args };
    tab.pending.set(id, { name, args, message, resolve, reject });
    post(tab, message);
  });
}

function closeTab(tab, name) {
  if (tab.closed) return;
  tab.closed = true;
  openNames.delete(name);
  if (!tab.channel) return;
  clearInterval(tab.scanTimer);
  clearTimeout(tab.refreshTimer);
  clearTimeout(tab.eventTimer);
  tab.abort.abort();
  tab.channel.close();
  if (tab.onVisible) {
    document.removeEventListener('visibilitychange', tab.onVisible);
    globalThis.removeEventListener?.('pageshow', tab.onVisible);
  }
  for (const command of tab.pending.values()) command.reject(new SyncError('CLOSED', 'the outbox was closed'));
  tab.pending.clear();
}

/** After the wasm side closed: the lock goes to the next context, which reads everything this one stored. */
export function releaseTab(tab) {
  tab?.release?.();
}
