import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { FromWorker, ToWorker, WorkerStart, WorkerStartCleanup, WorkerStartImport, WorkerStartVerify } from './worker-protocol.js';

/** A worker whose IPC channel closed but that has not exited after this long is killed. */
const REAP_AFTER_DISCONNECT_MS = 5_000;
/** A stop that has not ended the worker after this long: killed (draining takes seconds). */
const REAP_AFTER_STOP_MS = 30_000;

/**
 * One worker process for one task's migration. Under tsx (tests, development) the worker is
 * the .ts file run through tsx; from dist it is the compiled .js.
 */
export class TaskRunner {
  private child: ChildProcess | null = null;
  private finished = false;
  /** Resolves when the worker process has exited, with how it ended. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private resolveExited!: (v: { code: number | null; signal: NodeJS.Signals | null }) => void;

  constructor(
    private readonly start: WorkerStart | WorkerStartImport | WorkerStartVerify | WorkerStartCleanup,
    private readonly onMessage: (message: FromWorker) => void,
  ) {
    this.exited = new Promise((resolve) => (this.resolveExited = resolve));
  }

  launch(): void {
    const here = import.meta.url;
    const ts = here.endsWith('.ts');
    const entry = fileURLToPath(new URL(ts ? './worker.ts' : './worker.js', here));
    const child = fork(entry, [], {
      execArgv: ts ? ['--import', 'tsx'] : [],
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
      serialization: 'advanced', // Buffers and BigInts survive the trip
    });
    this.child = child;
    child.on('message', (m: FromWorker) => {
      if (m.type === 'finished') this.finished = true;
      this.onMessage(m);
    });
    child.on('exit', (code, signal) => {
      if (this.reaper) clearTimeout(this.reaper);
      this.resolveExited({ code, signal });
    });
    child.on('error', () => undefined); // 'exit' follows and carries the outcome
    // A worker that has closed its channel (done, or crashed) has nothing left to do: one that
    // lingers (a handle kept open) is reaped, never left idle.
    child.on('disconnect', () => this.reapAfter(REAP_AFTER_DISCONNECT_MS));
    try {
      this.send(this.start);
    } catch (e) {
      // The start message could not be sent (a value that cannot cross IPC): the worker would
      // wait for it forever.
      this.startError = `the worker could not be started: ${(e as Error).message}`;
      child.kill('SIGKILL');
    }
  }

  /** Why the worker never got its start message, if it did not. */
  startError: string | undefined;
  private reaper: NodeJS.Timeout | undefined;

  private reapAfter(ms: number): void {
    if (this.reaper || !this.child || this.child.exitCode !== null || this.child.signalCode !== null) return;
    this.reaper = setTimeout(() => this.child?.kill('SIGKILL'), ms);
    this.reaper.unref();
  }

  /** The worker's process id, once launched. */
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Whether the worker reported an outcome before exiting (otherwise it crashed). */
  get reportedOutcome(): boolean {
    return this.finished;
  }

  /** Asks the worker to stop; one that has not exited after a grace period is killed. */
  stop(): void {
    this.send({ type: 'stop' });
    this.reapAfter(REAP_AFTER_STOP_MS);
  }

  update(bandwidthLimitMb: number | null, resumeMode: 'auto' | 'manual'): void {
    this.send({ type: 'update', bandwidthLimitMb, resumeMode });
  }

  /** The node renewed the task's lease: the worker may write until `validUntil`. */
  lease(validUntil: number): void {
    this.send({ type: 'lease', validUntil });
  }

  /** Last resort, e.g. when the task is deleted while running. */
  kill(): void {
    this.child?.kill('SIGKILL');
  }

  /** A cutover request (ExchangeInstanceIp / RollbackExchangeInstanceIp) for the running migration. */
  cutover(message: Extract<ToWorker, { type: 'cutover' }>): void {
    this.send(message);
  }

  private send(message: ToWorker): void {
    if (this.child?.connected) this.child.send(message);
  }
}
