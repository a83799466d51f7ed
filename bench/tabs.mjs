// The multi-tab phase of bench/run.mjs (`--only tabs`): two tabs of one browser context sharing one outbox.
//
//   8. Cross-tab visibility: tab A's enqueue → tab B's watchDoc callback sees the value, with A the leader
//      (B a follower) and with A a follower (B the leader), against a raw BroadcastChannel round trip between
//      the same two tabs. Timed on A's clock only: A's enqueue → B's echo arriving back, minus half the raw
//      round trip's median (the echo's own hop back, which the raw round trip has too). bench/page/tabs.js
//      says why and what else each sample records.
//   9. Follower enqueue durable latency: `await outbox.enqueue(op)` in the same tab A, once as the follower
//      and once as the leader of the same two-tab outbox, both durabilities.
//
// Each sample uses a fresh outbox opened in both tabs; the tab that opens first leads. Every variant keeps the
// other tab open with the outbox (idle, autoDrain off), so the roles are the only difference between them.
import { meets, stats } from './stats.mjs';
import { f2, goalText, mark } from './format.mjs';

/** The page functions run in a tab (bench/page/tabs.js, exported on window.bench). */
const inTab = (page, fn, arg) => page.evaluate(([fn, arg]) => window.bench[fn](arg), [fn, arg]);

/**
 * Runs the phase; returns the raw samples for `summarizeTabs`. `page` is the runner's page (tab A); tab B is
 * a second page of the same context, opened here and closed at the end.
 */
export async function runTabs({ context, page, loadIsolated, roundRobin, k, durabilities, log }) {
  const other = await context.newPage();
  other.on('pageerror', (e) => log('page error (tab B):', e.message));
  const channel = `bench-echo-${process.pid}-${Date.now()}`;
  let serial = 0;
  // Both tabs cross-origin isolated: single-sample latencies need 5 µs timer steps, not 100 µs.
  const fresh = async () => {
    await loadIsolated(page);
    await loadIsolated(other);
    await inTab(other, 'tabsResponder', { channel });
  };
  /** Opens a fresh outbox in both tabs, A leading or following; runs `body`; closes both (follower first). */
  const withOutbox = async (role, durability, body) => {
    const name = `tabs-${process.pid}-${++serial}-${Date.now()}`;
    const [first, second] = role === 'leader' ? [page, other] : [other, page];
    const roles = [await inTab(first, 'tabsOpen', { name, durability }), await inTab(second, 'tabsOpen', { name, durability })];
    if (roles[0] !== 'leader' || roles[1] !== 'follower') throw new Error(`tabs: expected leader then follower, got ${roles.join(' then ')}`);
    try {
      return await body();
    } finally {
      // The follower first: closing the leader first would promote it (a store re-read) for nothing.
      await inTab(second, 'tabsClose');
      await inTab(first, 'tabsClose');
      await inTab(page, 'tabsDrop', { name });
    }
  };

  const visibilityVariants = [
    { id: 'raw.rt' },
    ...durabilities.flatMap((d) => ['leader', 'follower'].map((role) => ({ id: `${role}.${d}`, role, durability: d }))),
  ];
  const visibility = await roundRobin('cross-tab visibility', visibilityVariants, (v) =>
    v.id === 'raw.rt'
      ? inTab(page, 'tabsRoundTrip', { k, channel })
      : withOutbox(v.role, v.durability, () => inTab(page, 'tabsVisibility', { k, channel })), fresh);

  const enqueueVariants = durabilities.flatMap((d) => ['leader', 'follower'].map((role) => ({ id: `${role}.${d}`, role, durability: d })));
  const enqueue = await roundRobin('tab enqueue', enqueueVariants, (v) => withOutbox(v.role, v.durability, () => inTab(page, 'tabsEnqueue', { k })), fresh);

  await other.close();
  return { visibility, enqueue, k };
}

/** The phase's metrics for one durability: `raw` from `runTabs`, `goals` the runner's GOALS. */
export function summarizeTabs(raw, d, goals) {
  const rt = stats(raw.visibility.samples['raw.rt']);
  const visibility = { rawRoundTripMs: rt };
  for (const role of ['leader', 'follower']) {
    const id = `${role}.${d}`;
    const roundTrips = raw.visibility.samples[id];
    // The echo's hop back from B to A, taken out: half a raw round trip (its median, measured in this run).
    const oneWay = stats(roundTrips.map((x) => x - rt.median / 2));
    const fact = (key) => raw.visibility.facts[id].flatMap((f) => f[key]).filter(Number.isFinite);
    const p50 = oneWay.median / rt.median;
    const p95 = oneWay.p95 / rt.p95;
    visibility[role === 'leader' ? 'fromLeader' : 'fromFollower'] = {
      oneWayMs: oneWay,
      roundTripMs: stats(roundTrips),
      // Where the time goes: A's own enqueue until durable (its commit; the message is posted right after),
      // B's commit message arriving → its watcher called (adopt + watcher), and the cross-page wall-clock
      // figure (B's watcher − A's call on the shared timeline) as a check on the one-way estimate.
      senderDurableMs: stats(fact('durable')),
      receiverAdoptMs: stats(fact('adopt')),
      wallClockMs: stats(fact('clock')),
      p50: { ratio: p50, goal: goals.tabsVisibility, met: meets(goals.tabsVisibility, p50) },
      p95: { ratio: p95 },
    };
  }
  const leader = stats(raw.enqueue.samples[`leader.${d}`]);
  const follower = stats(raw.enqueue.samples[`follower.${d}`]);
  const g = goals.followerEnqueue;
  const enqueue = {
    followerMs: follower,
    leaderMs: leader,
    p50: { ratio: follower.median / leader.median, goal: g, met: meets(g, follower.median / leader.median) },
    p95: { ratio: follower.p95 / leader.p95, goal: g, met: meets(g, follower.p95 / leader.p95) },
  };
  return { k: raw.k, visibility, enqueue };
}


/** The phase's table rows for one durability (same columns as the runner's table). */
export function tabsRows(t, d) {
  const rows = [];
  const row = (...cells) => rows.push(`| ${cells.join(' | ')} |`);
  const rt = t.visibility.rawRoundTripMs;
  for (const [key, what] of [['fromLeader', 'A leader → B follower'], ['fromFollower', 'A follower → B leader']]) {
    const v = t.visibility[key];
    row(
      `8. Cross-tab visibility, ${what}: enqueue → other tab's watchDoc (one-way / raw BroadcastChannel round trip)`,
      d,
      `p50 ${f2(v.oneWayMs.median)} ms, p95 ${f2(v.oneWayMs.p95)} ms (A durable ${f2(v.senderDurableMs.median)} ms, B adopt + watcher ${f2(v.receiverAdoptMs.median)} ms)`,
      `raw BC round trip: p50 ${f2(rt.median)} ms, p95 ${f2(rt.p95)} ms`,
      `p50 ${f2(v.p50.ratio)}× (p95 ${f2(v.p95.ratio)}×)`,
      `${goalText(v.p50.goal)} (p50)`,
      mark(v.p50.met),
    );
  }
  const e = t.enqueue;
  row('9. Follower enqueue durable latency p50 (follower / leader, same outbox, two tabs)', d, `${f2(e.followerMs.median)} ms`, `leader: ${f2(e.leaderMs.median)} ms`, `${f2(e.p50.ratio)}×`, goalText(e.p50.goal), mark(e.p50.met));
  row('9. Follower enqueue durable latency p95 (follower / leader)', d, `${f2(e.followerMs.p95)} ms`, `${f2(e.leaderMs.p95)} ms`, `${f2(e.p95.ratio)}×`, goalText(e.p95.goal), mark(e.p95.met));
  return rows;
}

/** The numbers smoke mode requires of the phase (`need(path, x)` records a missing or invalid one). */
export function checkTabs(t, d, need) {
  need(`${d}.tabs.visibility.rawRoundTripMs.median`, t.visibility.rawRoundTripMs.median);
  for (const key of ['fromLeader', 'fromFollower']) {
    need(`${d}.tabs.visibility.${key}.p50.ratio`, t.visibility[key].p50.ratio);
    need(`${d}.tabs.visibility.${key}.p95.ratio`, t.visibility[key].p95.ratio);
    need(`${d}.tabs.visibility.${key}.senderDurableMs.median`, t.visibility[key].senderDurableMs.median);
  }
  need(`${d}.tabs.enqueue.p50.ratio`, t.enqueue.p50.ratio);
  need(`${d}.tabs.enqueue.p95.ratio`, t.enqueue.p95.ratio);
}
