import { coreVersion, ready, version } from 'outbox-sync';

const status = document.getElementById('status');
try {
  await ready();
  status.textContent = `outbox-sync ${version()} loaded (engine ${coreVersion()}).`;
  status.dataset.version = version();
  status.dataset.state = 'loaded';
} catch (error) {
  status.textContent = `The WebAssembly module failed to load: ${error}`;
  status.dataset.state = 'error';
}
