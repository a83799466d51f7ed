// Statistics shared by bench/run.mjs and its phase modules.

export function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  return s[lo] + (s[Math.min(lo + 1, s.length - 1)] - s[lo]) * (pos - lo);
}

export const stats = (xs) => ({
  n: xs.length,
  median: quantile(xs, 0.5),
  p25: quantile(xs, 0.25),
  p75: quantile(xs, 0.75),
  p95: quantile(xs, 0.95),
  min: Math.min(...xs),
  max: Math.max(...xs),
});

export const meets = (goal, ratio) => (goal.op === '>=' ? ratio >= goal.value : ratio <= goal.value);
