// Whether a value survives JSON exactly as the app gave it. JSON.stringify changes what it cannot
// represent without a word (NaN and Infinity become null, -0 becomes 0, a Date a string, a Map {},
// functions and undefined members vanish), and the server would then store something the app never
// wrote. The outbox refuses such a value instead, naming where it is.

const IDENT = /^[A-Za-z_$][\w$]*$/;

function member(path, key) {
  return IDENT.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

/**
 * Why `value` is not exact JSON, as a sentence that starts with its path below the value (`.dueAt is a Date
 * …`, `[2] is undefined …`, or ` is NaN …` for the value itself; the caller puts the value's own name in
 * front), or null. Plain objects and arrays only; at most `maxDepth` levels.
 *
 * Runs on every enqueue, so the path is kept as a stack of keys and spelled out only for the sentence.
 */
export function notExactJson(value, maxDepth) {
  const onPath = new Set();
  const keys = [];
  const path = () => keys.map((k) => (typeof k === 'number' ? `[${k}]` : member('', k))).join('');
  const walk = (v, depth) => {
    switch (typeof v) {
      case 'string':
        return v.isWellFormed() ? null : `${path()} holds a lone surrogate (not valid Unicode text)`;
      case 'number':
        if (!Number.isFinite(v)) return `${path()} is ${v} (JSON has no such number)`;
        if (Object.is(v, -0)) return `${path()} is -0 (JSON would store 0)`;
        return null;
      case 'boolean':
        return null;
      case 'bigint':
        return `${path()} is a BigInt (JSON has none: pass a string or a number)`;
      case 'undefined':
        return `${path()} is undefined (JSON has none: leave the member out, or use null)`;
      case 'function':
        return `${path()} is a function`;
      case 'symbol':
        return `${path()} is a symbol`;
      default:
        break;
    }
    if (v === null) return null;
    if (depth >= maxDepth) return `${path()} is nested deeper than ${maxDepth} levels`;
    if (onPath.has(v)) return `${path()} refers back to an object that contains it (a cycle)`;
    onPath.add(v);
    let why = null;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length && why === null; i++) {
        keys.push(i);
        why = i in v ? walk(v[i], depth + 1) : `${path()} is a hole in the array`;
        keys.pop();
      }
    } else {
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== null) {
        const name = typeof v.constructor === 'function' && v.constructor.name ? v.constructor.name : 'object with a prototype';
        const hint = name === 'Date' ? ' (pass date.toISOString())' : '';
        why = `${path()} is a ${name}${hint}: only plain objects, arrays, strings, finite numbers, booleans and null are JSON`;
      } else if (Object.getOwnPropertySymbols(v).length > 0) {
        why = `${path()} has symbol-keyed members, which JSON drops`;
      } else {
        for (const key of Object.keys(v)) {
          if (!key.isWellFormed()) {
            why = `${path()} has a member name with a lone surrogate`;
            break;
          }
          keys.push(key);
          why = walk(v[key], depth + 1);
          keys.pop();
          if (why !== null) break;
        }
      }
    }
    onPath.delete(v);
    return why;
  };
  return walk(value, 0);
}
