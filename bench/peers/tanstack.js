// Entry point of the @tanstack/offline-transactions bundle the benchmark page loads (bench/run.mjs bundles it
// with esbuild into the staged page, so the browser needs no import map for the library's dependencies).
export { IndexedDBAdapter, NonRetriableError, startOfflineExecutor } from '@tanstack/offline-transactions';
// @tanstack/db is offline-transactions' own dependency (pinned by it); bundled once, so it is the same instance.
export { createCollection, localOnlyCollectionOptions } from '@tanstack/db';
