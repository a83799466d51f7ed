// The app's per-collection validator (`collections.<name>.validate`): a function, or a Standard Schema
// (https://standardschema.dev: zod, valibot, arktype … expose `~standard.validate`). Run here, in JS, so
// the wasm needs no knowledge of either shape beyond "valid, or why not".

/** Whether `v` can be a validator. */
export function isValidator(v) {
  return typeof v === 'function' || (v !== null && typeof v === 'object' && typeof v['~standard']?.validate === 'function');
}

function describePath(path) {
  let out = 'value';
  for (const segment of path ?? []) {
    const key = segment !== null && typeof segment === 'object' ? segment.key : segment;
    out += typeof key === 'number' ? `[${key}]` : /^[A-Za-z_$][\w$]*$/.test(String(key)) ? `.${String(key)}` : `[${JSON.stringify(String(key))}]`;
  }
  return out;
}

/**
 * Runs `validator` on `doc`. Returns null when valid; otherwise `{ message, config }`, where `config` marks a
 * validator that is itself wrong (it returned a promise: validation must be synchronous, so that enqueues
 * keep their order).
 */
export function runValidator(validator, doc) {
  let result;
  try {
    result = typeof validator === 'function' ? validator(doc) : validator['~standard'].validate(doc);
  } catch (error) {
    return { message: `validate threw: ${error?.message ?? String(error)}` };
  }
  if (result !== null && typeof result === 'object' && typeof result.then === 'function') {
    result.then(undefined, () => {}); // it is refused either way; never an unhandled rejection
    return { message: 'validate returned a promise: it must be synchronous (enqueue order depends on it)', config: true };
  }
  if (typeof validator === 'function') {
    return result === false ? { message: 'validate returned false' } : null;
  }
  const issues = result?.issues;
  if (!issues || issues.length === 0) return null;
  const [first] = issues;
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
  return { message: `${describePath(first.path)}: ${first.message}${more}` };
}
