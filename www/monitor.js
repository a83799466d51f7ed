// The demo's monitoring panel: the package's <sync-history> element (health, alerts, last sync, the history
// table) and a chart of the success rate and the latency over time, drawn here as plain SVG from
// `outbox.history()`. Both feature-detect `health()` / `history()`: on a runtime without them the panel says so.
import 'outbox-sync/sync-history';

const SVG = 'http://www.w3.org/2000/svg';
const W = 640;
const H = 220;
const PAD = { top: 16, right: 48, bottom: 30, left: 52 };
// The success rate is a rolling mean over this many attempts: one failure among a few should show as a dip,
// not as a fall to 0% and back.
const WINDOW = 10;
const CHART_ENTRIES = 200;

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

const fmtMs = (ms) => (ms >= 1000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms)} ms`);
const fmtTime = (t) => new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });

/** A "nice" upper bound for the latency axis: 1, 2 or 5 times a power of ten. */
function niceMax(value) {
  if (!(value > 0)) return 100;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].map((m) => m * power).find((m) => m >= value);
}

/**
 * Draws `entries` (history entries, any order) into `svg`: latency as dots coloured by outcome (left axis),
 * the rolling success rate as a line (right axis, 0–100%), time along the bottom. Returns the summary it put
 * into the chart's <desc>, for screen readers.
 */
export function drawChart(svg, entries) {
  // A drain is the sum of its sends and batches: charting both would count each request twice.
  const attempts = entries.filter((e) => e.kind !== 'drain' && e.startedAt != null);
  const points = (attempts.length > 0 ? attempts : entries).slice().sort((a, b) => a.startedAt - b.startedAt);
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  const title = el('title', { id: 'chart-title' }, 'Sync success rate and latency over time');
  const summary = summarize(points);
  const desc = el('desc', { id: 'chart-desc' }, summary);
  svg.replaceChildren(title, desc);
  const plot = { x0: PAD.left, x1: W - PAD.right, y0: H - PAD.bottom, y1: PAD.top };
  if (points.length === 0) {
    svg.append(el('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'chart-empty' }, 'No syncs yet'));
    return summary;
  }
  const t0 = points[0].startedAt;
  const t1 = Math.max(points.at(-1).startedAt, t0 + 1000);
  const x = (t) => plot.x0 + ((t - t0) / (t1 - t0)) * (plot.x1 - plot.x0);
  const latencies = points.map((p) => p.durationMs ?? 0);
  const maxMs = niceMax(Math.max(...latencies));
  const yMs = (ms) => plot.y0 - (Math.min(ms, maxMs) / maxMs) * (plot.y0 - plot.y1);
  const yRate = (r) => plot.y0 - r * (plot.y0 - plot.y1);

  // Grid and axes: four bands, labelled with latency on the left and the success rate on the right.
  const axes = el('g', { class: 'chart-axes' });
  for (let i = 0; i <= 4; i++) {
    const y = plot.y0 - (i / 4) * (plot.y0 - plot.y1);
    axes.append(el('line', { x1: plot.x0, x2: plot.x1, y1: y, y2: y, class: i === 0 ? 'chart-baseline' : 'chart-grid' }));
    axes.append(el('text', { x: plot.x0 - 6, y: y + 4, 'text-anchor': 'end', class: 'chart-tick chart-tick-ms' }, fmtMs((maxMs * i) / 4)));
    axes.append(el('text', { x: plot.x1 + 6, y: y + 4, 'text-anchor': 'start', class: 'chart-tick chart-tick-rate' }, `${i * 25}%`));
  }
  for (const [t, anchor] of [
    [t0, 'start'],
    [t1, 'end'],
  ]) {
    axes.append(el('text', { x: x(t), y: H - 8, 'text-anchor': anchor, class: 'chart-tick' }, fmtTime(t)));
  }
  svg.append(axes);

  // Latency: one dot per attempt, its colour the outcome (also said in its tooltip, not by colour alone).
  const dots = el('g', { class: 'chart-latency' });
  for (const p of points) {
    const dot = el('circle', { cx: x(p.startedAt), cy: yMs(p.durationMs ?? 0), r: 3.5, class: `chart-dot chart-dot-${p.outcome}` });
    dot.append(el('title', {}, `${fmtTime(p.startedAt)} · ${p.kind} · ${fmtMs(p.durationMs ?? 0)} · ${p.outcome}`));
    dots.append(dot);
  }
  // Success rate: a rolling mean over the last WINDOW attempts (partial counts half).
  const score = (p) => (p.outcome === 'success' ? 1 : p.outcome === 'partial' ? 0.5 : 0);
  const rate = points.map((p, i) => {
    const window = points.slice(Math.max(0, i - WINDOW + 1), i + 1);
    return window.reduce((sum, q) => sum + score(q), 0) / window.length;
  });
  const path = rate.map((r, i) => `${i === 0 ? 'M' : 'L'}${x(points[i].startedAt).toFixed(1)},${yRate(r).toFixed(1)}`).join(' ');
  svg.append(el('path', { d: path, class: 'chart-rate' }), dots);
  return summary;
}

function summarize(points) {
  if (points.length === 0) return 'No sync attempts yet.';
  const ok = points.filter((p) => p.outcome === 'success').length;
  const sorted = points.map((p) => p.durationMs ?? 0).sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  return `${points.length} attempts from ${fmtTime(points[0].startedAt)} to ${fmtTime(points.at(-1).startedAt)}: ${Math.round((ok / points.length) * 100)}% succeeded, median latency ${fmtMs(median)}.`;
}

/**
 * Shows `outbox` in the monitoring panel `root` (the #monitor section of index.html). Returns a function that
 * stops watching.
 */
export function mountMonitor(root, outbox) {
  const history = root.querySelector('sync-history');
  const svg = root.querySelector('svg');
  history.outbox = outbox;
  const supported = typeof outbox.history === 'function';
  root.querySelector('.chart').hidden = !supported;
  // Without history() the element alone speaks: it says that this runtime reports none.
  if (!supported) return () => {
    history.outbox = null;
  };
  let stopped = false;
  let queued = false;
  const redraw = () => {
    if (queued || stopped) return;
    queued = true;
    // Entries arrive in bursts during a drain: one redraw per burst is plenty.
    setTimeout(async () => {
      queued = false;
      if (stopped) return;
      try {
        drawChart(svg, await outbox.history({ limit: CHART_ENTRIES }));
      } catch (error) {
        console.warn('could not draw the sync chart', error);
      }
    }, 250);
  };
  const unwatch = typeof outbox.watchHistory === 'function' ? outbox.watchHistory(redraw) : outbox.subscribe(redraw);
  redraw();
  return () => {
    stopped = true;
    unwatch();
    history.outbox = null;
  };
}
