// outbox-sync/worker, as an app's service worker and its pages use it; and what the tabs see of roles.
import { Outbox, type SyncErrorCode, type SyncStatus } from "outbox-sync";
import { drainOutbox, handleSync, requestSync, SYNC_TAG, SyncError, type WorkerDrainResult } from "outbox-sync/worker";

type Notes = { notes: { title: string } };

const stop: () => void = handleSync<Notes>({ options: { name: "notes", endpoint: "/api" }, tag: SYNC_TAG });
stop();
handleSync({ options: { name: "notes", endpoint: "/api", auth: async () => ({ authorization: "Bearer t" }) } });

export async function once(): Promise<WorkerDrainResult> {
  const result = await drainOutbox<Notes>({ name: "notes", endpoint: "/api" });
  const leader: boolean = result.leader;
  const acked: number | undefined = result.report?.acked;
  void leader;
  void acked;
  return result;
}

export async function ask(): Promise<"registered" | "unsupported"> {
  return requestSync("my-tag");
}

export async function roles(): Promise<void> {
  const outbox = await Outbox.open({ name: "notes", endpoint: "/api" });
  const status: SyncStatus = outbox.status();
  const role: "leader" | "follower" | "uncoordinated" = status.role;
  void role;
  // @ts-expect-error: not a role
  const wrong: typeof status.role = "primary";
  void wrong;
  const codes: SyncErrorCode[] = ["ALREADY_OPEN", "SYNC_INCOMPLETE"];
  void codes;
  const error: Error = new SyncError("SYNC_INCOMPLETE", "later");
  void error;
}

// @ts-expect-error: handleSync needs the outbox options
handleSync({});
