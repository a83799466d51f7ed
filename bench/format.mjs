// How the runner and its phase modules write numbers into the results table.

export { kb } from '../scripts/size.mjs';

export const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : String(x));
export const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : String(x));
/** A timing's median with its interquartile range. */
export const ms = (s) => `${f1(s.median)} ms (IQR ${f1(s.p25)}–${f1(s.p75)})`;
export const mib = (n) => `${(n / 1024 / 1024).toFixed(1)} MiB`;
export const goalText = (g) => `${g.op === '>=' ? '≥' : '≤'} ${g.value}×`;
export const mark = (met) => (met ? 'met' : '**MISSED**');
