import type { Endpoint } from '../common/endpoint.js';
import { discoverDeployment } from '../cluster/topology.js';
import { slotOf } from '../common/slots.js';
import { encodeCommand } from '../resp/encode.js';
import type { Reply } from '../resp/reply-decoder.js';
import { checkNameOfCheckpoint, checkpointPattern } from './checkpoints.js';
import { openTarget } from './open-target.js';

/**
 * Removes every checkpoint key of a migration from its target (db 0 of a server, or every
 * master of a cluster): what a task that ends for good (deleted by its user) leaves behind
 * otherwise. Resolves with how many keys were removed.
 */
export async function removeAllCheckpoints(targetList: Endpoint[], name: string): Promise<number> {
  checkNameOfCheckpoint(name);
  const deployment = await discoverDeployment(targetList);
  let lost: Error | null = null;
  const target = await openTarget(deployment, { user: targetList[0]!.user, password: targetList[0]!.password, tls: targetList[0]!.tls }, (e) => (lost ??= e), 1);
  const pattern = checkpointPattern(name);
  let removed = 0;
  try {
    if (target.kind === 'standalone') {
      const lane = target.writer.lanes[0]!;
      let cursor = '0';
      do {
        const reply = await lane.call(0, ['SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000]);
        const [next, keys] = scanPage(reply);
        cursor = next;
        if (keys.length > 0) removed += Number(await lane.call(0, ['DEL', ...keys]));
      } while (cursor !== '0');
    } else {
      for (const master of target.router.masters()) {
        let cursor = '0';
        do {
          const reply = await new Promise<Reply | undefined>((resolve, reject) =>
            target.router.sendToMaster(master, encodeCommand(['SCAN', cursor, 'MATCH', pattern, 'COUNT', 1000]), (e, r) => (e ? reject(new Error(e)) : resolve(r))),
          );
          const [next, keys] = scanPage(reply ?? null);
          cursor = next;
          for (const key of keys) removed += Number(await target.router.call(slotOf(key), ['DEL', key]));
        } while (cursor !== '0');
      }
    }
    if (lost) throw lost;
    return removed;
  } finally {
    target.close();
  }
}

function scanPage(reply: Reply | undefined): [string, Buffer[]] {
  if (!Array.isArray(reply) || !Buffer.isBuffer(reply[0]) || !Array.isArray(reply[1])) throw new Error('unexpected SCAN reply');
  return [reply[0].toString('latin1'), reply[1].filter((k): k is Buffer => Buffer.isBuffer(k))];
}
