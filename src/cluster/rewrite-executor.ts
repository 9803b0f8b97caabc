import type { Arg } from '../resp/encode.js';
import type { Reply } from '../resp/reply-decoder.js';
import type { Operand, RewriteStep } from './split.js';

type Register = { payload: Buffer; pttl: number } | 'absent' | Reply;

/**
 * Runs a rewrite plan's steps against a cluster target (contract in split.ts RewriteStep):
 * one step at a time, each awaited; an error or a failed guard stops the plan, only `always`
 * steps (cleanup) still run; the stop is thrown so the caller reports it like a refused write.
 * The caller has drained every earlier write and sends nothing else until this resolves.
 */
/** Sends one command to the owner of a slot and resolves with its reply (rejects with the error). */
export interface SlotCaller {
  call(slot: number, args: readonly Arg[]): Promise<Reply>;
}

export async function executeRewrite(steps: readonly RewriteStep[], router: SlotCaller): Promise<void> {
  const registers = new Map<string, Register>();
  let stopped: string | null = null;
  const operand = (o: Operand): Arg => {
    if (Buffer.isBuffer(o)) return o;
    const v = registers.get(o.register);
    if (Buffer.isBuffer(v) || typeof v === 'number' || typeof v === 'bigint') return v;
    throw new Error(`rewrite register ${o.register} holds no value`);
  };
  for (const step of steps) {
    if (stopped !== null && !(step.op === 'call' && step.always)) continue;
    try {
      switch (step.op) {
        case 'dump': {
          // Sent back to back on the slot's connection: nothing else runs between them.
          const [payload, pttl] = await Promise.all([router.call(step.slot, ['DUMP', step.key]), router.call(step.slot, ['PTTL', step.key])]);
          if (!Buffer.isBuffer(payload) || pttl === -2) {
            registers.set(step.into, 'absent');
            if (step.required) stopped = `the target has no key ${step.key.toString('latin1')}, which the source had when it ran the command`;
          } else registers.set(step.into, { payload, pttl: typeof pttl === 'number' ? pttl : -1 });
          break;
        }
        case 'restore': {
          const value = registers.get(step.from);
          if (value === 'absent' || value === undefined) {
            if (step.replace) await router.call(step.slot, ['DEL', step.key]);
            break;
          }
          const dumped = value as { payload: Buffer; pttl: number };
          // PTTL 0 means "expires within the millisecond", not "persistent" (-1): keep it volatile.
          const ttl = step.ttl === 'keep' && dumped.pttl !== -1 ? Math.max(1, dumped.pttl) : 0;
          await router.call(step.slot, step.replace ? ['RESTORE', step.key, ttl, dumped.payload, 'REPLACE'] : ['RESTORE', step.key, ttl, dumped.payload]);
          break;
        }
        case 'call': {
          const reply = await router.call(step.slot, step.args.map(operand));
          if (step.expect === 'nonNil' && reply === null) stopped ??= `${step.args[0]?.toString()} found nothing on the target`;
          if (step.expect === 'nonZero' && reply === 0) stopped ??= `${step.args[0]?.toString()} changed nothing on the target`;
          if (step.into) registers.set(step.into, reply);
          break;
        }
      }
    } catch (e) {
      stopped ??= (e as Error).message;
    }
  }
  if (stopped !== null) throw new Error(`rewritten for the cluster and stopped: ${stopped}`);
}
