import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { FromWorker, ToWorker, WorkerStart, WorkerStartImport, WorkerStartVerify } from './worker-protocol.js';

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
    private readonly start: WorkerStart | WorkerStartImport | WorkerStartVerify,
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
    child.on('exit', (code, signal) => this.resolveExited({ code, signal }));
    child.on('error', () => undefined); // 'exit' follows and carries the outcome
    this.send(this.start);
  }

  /** Whether the worker reported an outcome before exiting (otherwise it crashed). */
  get reportedOutcome(): boolean {
    return this.finished;
  }

  stop(): void {
    this.send({ type: 'stop' });
  }

  update(bandwidthLimitMb: number | null, resumeMode: 'auto' | 'manual'): void {
    this.send({ type: 'update', bandwidthLimitMb, resumeMode });
  }

  /** Last resort, e.g. when the task is deleted while running. */
  kill(): void {
    this.child?.kill('SIGKILL');
  }

  private send(message: ToWorker): void {
    if (this.child?.connected) this.child.send(message);
  }
}
