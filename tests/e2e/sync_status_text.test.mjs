// The indicator's words for every status, checked in Node: the element module imports without a DOM (it then
// defines nothing), so server-side rendering and tests can use describeSyncStatus too.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SyncStatusElement, describeSyncStatus, syncStatusState } from '../../pkg/sync-status.js';

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
  ];
  for (const [patch, state, text] of cases) {
    const status = { ...base, ...patch };
    assert.equal(syncStatusState(status), state, JSON.stringify(patch));
    assert.equal(describeSyncStatus(status, at), text, JSON.stringify(patch));
  }
});

test('the module imports without a DOM and defines nothing there', () => {
  assert.equal(typeof SyncStatusElement, 'function');
  assert.equal(globalThis.customElements, undefined);
});
