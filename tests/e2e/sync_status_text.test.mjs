// The indicator's words for every status, checked in Node: the element module imports without a DOM (it then
// defines nothing), so server-side rendering and tests can use describeSyncStatus too.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SYNC_STATUS_LABELS, SyncStatusElement, describeSyncStatus, formatLabel, syncStatusState } from '../../pkg/sync-status.js';

const base = {
  state: 'idle',
  pending: 0,
  inFlight: 0,
  failed: 0,
  conflicts: 0,
  nextAttemptAt: null,
  blockedUntil: null,
  lastSyncedAt: null,
  lastError: null,
  online: true,
};
const at = (ms) => `T${ms}`;

test('describeSyncStatus and syncStatusState cover every state', () => {
  const cases = [
    [{}, 'synced', 'Synced'],
    [{ state: 'syncing', pending: 2, inFlight: 1 }, 'syncing', 'Syncing 3'],
    [{ state: 'syncing', pending: 4, nextAttemptAt: 5000 }, 'retrying', 'Retrying at T5000 · 4 pending'],
    [{ state: 'blocked', pending: 1, blockedUntil: 9000 }, 'blocked', 'Blocked until T9000 · 1 pending'],
    [{ state: 'offline', online: false, pending: 3 }, 'offline', 'Offline · 3 pending'],
    [{ state: 'offline', online: false }, 'offline', 'Offline'],
    [{ state: 'paused', pending: 20 }, 'paused', 'Paused · 20 pending'],
    [{ state: 'error', failed: 1 }, 'failed', '1 failed'],
    [{ state: 'error', conflicts: 2 }, 'conflict', '2 conflicts'],
    [{ state: 'error', failed: 1, conflicts: 1 }, 'failed', '1 failed · 1 conflict'],
    [{ state: 'syncing', pending: 2, inFlight: 1, failed: 1 }, 'syncing', 'Syncing 3 · 1 failed'],
    [{ state: 'error', lastError: { code: 'DB_UPGRADE_BLOCKED', message: 'reload this tab' } }, 'error', 'Sync error: reload this tab'],
    // Heard by options.onStatus while the stored queue is read: records read of stored.
    [{ state: 'restoring', pending: 10, failed: 1, progress: { current: 11, total: 3000 } }, 'restoring', 'Restoring 11 of 3000 · 1 failed'],
    [{ state: 'restoring', progress: null }, 'restoring', 'Restoring 0 of 0'],
  ];
  for (const [patch, state, text] of cases) {
    const status = { ...base, ...patch };
    assert.equal(syncStatusState(status), state, JSON.stringify(patch));
    assert.equal(describeSyncStatus(status, at), text, JSON.stringify(patch));
  }
});

test('progress, the runtime\'s own "retrying" state, and translated labels', () => {
  const cases = [
    // status.progress (newer runtimes) counts the drain: "Syncing 40 of 200" instead of the queue length.
    [{ state: 'syncing', pending: 150, inFlight: 10, progress: { current: 40, total: 200 } }, 'syncing', 'Syncing 40 of 200'],
    [{ state: 'syncing', pending: 2, inFlight: 1, progress: null }, 'syncing', 'Syncing 3'],
    [{ state: 'retrying', pending: 4, nextAttemptAt: 5000 }, 'retrying', 'Retrying at T5000 · 4 pending'],
    [{ state: 'retrying', pending: 4, inFlight: 0 }, 'retrying', 'Retrying · 4 pending'],
    [{ state: 'retrying', pending: 1, failed: 1, nextAttemptAt: 7 }, 'retrying', 'Retrying at T7 · 1 pending · 1 failed'],
  ];
  for (const [patch, state, text] of cases) {
    const status = { ...base, ...patch };
    assert.equal(syncStatusState(status), state, JSON.stringify(patch));
    assert.equal(describeSyncStatus(status, at), text, JSON.stringify(patch));
  }
  const de = { synced: 'Synchronisiert', syncingProgress: 'Synchronisiere {current} von {total}', pending: '{count} ausstehend', paused: 'Pausiert' };
  assert.equal(describeSyncStatus(base, at, de), 'Synchronisiert');
  assert.equal(describeSyncStatus({ ...base, state: 'syncing', progress: { current: 3, total: 9 } }, at, de), 'Synchronisiere 3 von 9');
  assert.equal(describeSyncStatus({ ...base, state: 'paused', pending: 2 }, at, de), 'Pausiert · 2 ausstehend');
  // Keys not given keep the English default; a label may be a function (for plural rules).
  const plural = { conflictsOther: ({ count }) => `${count} Konflikte`, conflictsOne: 'ein Konflikt' };
  assert.equal(describeSyncStatus({ ...base, state: 'error', conflicts: 3, failed: 1 }, at, plural), '1 failed · 3 Konflikte');
  assert.equal(describeSyncStatus({ ...base, state: 'error', conflicts: 1 }, at, plural), 'ein Konflikt');
  assert.equal(formatLabel('{a} and {b}', { a: 1 }), '1 and {b}', 'an unknown placeholder stays visible');
  assert.ok(Object.isFrozen(SYNC_STATUS_LABELS));
  for (const key of ['keepMine', 'keepServer', 'useMerged', 'retry', 'discard', 'retryAll', 'empty', 'syncingProgress']) {
    assert.equal(typeof SYNC_STATUS_LABELS[key], 'string', key);
  }
});

test('the module imports without a DOM and defines nothing there', () => {
  assert.equal(typeof SyncStatusElement, 'function');
  assert.equal(globalThis.customElements, undefined);
});
