// The one error class of outbox-sync. Rust constructs it (see src/error.rs) and the package entry point
// re-exports this same module, so `error instanceof SyncError` holds for every error the library throws.
export class SyncError extends Error {
  /**
   * @param {string} code a stable SyncErrorCode, e.g. "QUOTA_EXCEEDED"
   * @param {string} message a human-readable message naming the field or cause
   * @param {{ cause?: unknown }} [options]
   */
  constructor(code, message, options) {
    super(message, options);
    this.name = 'SyncError';
    this.code = code;
  }
}
