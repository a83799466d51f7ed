// The page side of the multi-tab phase (bench/tabs.mjs drives it). bench/run.mjs loads this page in two
// tabs of one browser context, which share IndexedDB, Web Locks and BroadcastChannel as the tabs of one
// browser profile do; each tab holds at most one outbox here (`state.outbox`), opened in the order that gives
// it the role the variant wants (the first to open leads).
//
// Cross-tab visibility is measured without comparing the clocks of two pages: tab A times, on its own clock,
// its enqueue until tab B's echo of "my watchDoc saw it" arrives back, and the raw baseline is the same echo
// with nothing in front of it (A posts, B answers, A receives). Both round trips end with the same hop
// (B posts on the echo channel, A receives), so the one-way figure is the round trip minus half a raw one.
// B also reports, on its own clock, how long it took from the outbox's commit message arriving to its
// watcher firing (adopt + watcher), and both tabs stamp the shared wall-clock timeline as a cross-check.
import { Outbox } from 'outbox-sync';

const now = () => performance.now();
const wall = () => performance.timeOrigin + performance.now();

/** How long A waits for B's echo before it fails the run (a lost echo must not hang the runner). */
const ECHO_TIMEOUT_MS = 10_000;

let counter = 0;
const uniq = (prefix) => `${prefix}-${Date.now().toString(36)}-${(counter++).toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
// The same op shape as bench.js's single-enqueue phase: one new document per op.
const doc = (i) => ({ title: `note ${i}`, body: 'lorem ipsum dolor sit amet, consectetur adipiscing elit', n: i, done: false });
const op = (i, tag) => ({ collection: 'notes', key: `${tag}-${i}`, op: 'put', value: doc(i) });

const state = { outbox: null, spy: null, lastCommitAt: 0, echo: null };

/**
 * Opens the outbox `name` in this tab; resolves with the role it got. The spy channel is created first, on
 * the outbox's own channel name: BroadcastChannel delivers to a page's channels in creation order, so the spy
 * stamps a commit message's arrival before the outbox's handler adopts the records it carries.
 */
export async function tabsOpen({ name, durability }) {
  if (state.outbox) throw new Error('this tab already has an outbox open');
  state.spy = new BroadcastChannel(`outbox-sync:${name}`);
  state.spy.onmessage = (event) => {
    if (event.data?.type === 'commit' && event.data.records?.length) state.lastCommitAt = now();
  };
  // Nothing is sent, in either role, as in the single-enqueue phase: the variants differ by role alone.
  // `paused` as well as `autoDrain: false`, because a leader sends the ops it adopts from a follower even
  // with autoDrain off (the package's behaviour at the time of writing), which would burden only the
  // follower variants with sends, their outcome commits and the follower's store re-reads they trigger.
  state.outbox = await Outbox.open({ name, transport: async () => [], autoDrain: false, paused: true, durability });
  return state.outbox.status().role;
}

export async function tabsClose() {
  state.spy?.close();
  state.spy = null;
  await state.outbox?.close();
  state.outbox = null;
}

/**
 * Tab B's side of the echo channel: answers pings at once (the raw round trip); on `arm`, watches one
 * document of its outbox and echoes `seen` the first time the document exists, with B's own measure of
 * commit message → watcher.
 */
export function tabsResponder({ channel }) {
  state.echo?.close();
  const echo = new BroadcastChannel(channel);
  state.echo = echo;
  echo.onmessage = ({ data }) => {
    if (data.type === 'ping') {
      echo.postMessage({ type: 'pong', i: data.i });
    } else if (data.type === 'arm') {
      let stop = null;
      let done = false;
      const seen = (value) => {
        if (value === undefined || done) return;
        done = true;
        const at = now();
        echo.postMessage({ type: 'seen', key: data.key, wall: wall(), adoptMs: state.lastCommitAt ? at - state.lastCommitAt : NaN });
        // A callback may run inside watchDoc itself (it calls back at once); stop after it returned.
        if (stop) stop();
      };
      state.lastCommitAt = 0;
      stop = state.outbox.watchDoc(data.collection, data.key, seen);
      if (done) stop();
      echo.postMessage({ type: 'armed', key: data.key });
    }
  };
}

/** Resolves with the first message on `echo` that `match` accepts (fails after ECHO_TIMEOUT_MS). */
function nextMessage(echo, match, what) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      echo.removeEventListener('message', listener);
      reject(new Error(`no ${what} from the other tab within ${ECHO_TIMEOUT_MS} ms`));
    }, ECHO_TIMEOUT_MS);
    const listener = (event) => {
      if (!match(event.data)) return;
      clearTimeout(timer);
      echo.removeEventListener('message', listener);
      resolve({ data: event.data, at: now() });
    };
    echo.addEventListener('message', listener);
  });
}

/** Tab A: k raw BroadcastChannel round trips to tab B's responder. */
export async function tabsRoundTrip({ k, channel }) {
  const echo = new BroadcastChannel(channel);
  const ms = [];
  try {
    for (let i = 0; i < k; i++) {
      const pong = nextMessage(echo, (m) => m.type === 'pong' && m.i === i, 'pong');
      const t0 = now();
      echo.postMessage({ type: 'ping', i });
      const { at } = await pong;
      ms.push(at - t0);
    }
  } finally {
    echo.close();
  }
  return { ms };
}

/**
 * Tab A: k enqueues, each timed from the call to B's `seen` echo. B is armed (watching the key) before the
 * clock starts. Returns per sample: the round trip, A's own durable latency (enqueue's promise), B's
 * commit-message → watcher time, and the cross-page wall-clock difference (a cross-check only).
 */
export async function tabsVisibility({ k, channel }) {
  const echo = new BroadcastChannel(channel);
  const tag = uniq('x');
  const out = { ms: [], durable: [], adopt: [], clock: [] };
  try {
    for (let i = 0; i < k; i++) {
      const input = op(i, tag);
      const armed = nextMessage(echo, (m) => m.type === 'armed' && m.key === input.key, 'armed');
      echo.postMessage({ type: 'arm', collection: input.collection, key: input.key });
      await armed;
      const seen = nextMessage(echo, (m) => m.type === 'seen' && m.key === input.key, 'watchDoc echo');
      let durableAt = NaN;
      const t0wall = wall();
      const t0 = now();
      const done = state.outbox.enqueue(input).then(() => {
        durableAt = now();
      });
      const { data, at } = await seen;
      await done;
      out.ms.push(at - t0);
      out.durable.push(durableAt - t0);
      out.adopt.push(data.adoptMs);
      out.clock.push(data.wall - t0wall);
    }
  } finally {
    echo.close();
  }
  return out;
}

/** k sequential enqueues in this tab, each timed to its durable promise (as bench.js's outboxSingle). */
export async function tabsEnqueue({ k }) {
  const tag = uniq('e');
  const ms = [];
  for (let i = 0; i < k; i++) {
    const t0 = now();
    await state.outbox.enqueue(op(i, tag));
    ms.push(now() - t0);
  }
  return { ms };
}

export function tabsDrop({ name }) {
  return new Promise((resolve) => {
    const req = indexedDB.deleteDatabase(name);
    req.onsuccess = req.onerror = () => resolve();
  });
}
