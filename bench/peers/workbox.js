// Entry point of the workbox-background-sync bundle the benchmark page loads (see bench/peers/tanstack.js).
export { Queue } from 'workbox-background-sync';
