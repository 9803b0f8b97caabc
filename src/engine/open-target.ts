import type { Endpoint } from '../common/endpoint.js';
import type { Deployment } from '../cluster/topology-types.js';
import { ClusterRouter } from '../cluster/router.js';
import { ClusterTarget } from '../cluster/cluster-target.js';
import { RedisConnection } from '../resp/connection.js';
import { StandaloneTarget } from '../target/target.js';
import { TargetWriter, probeTarget } from '../target/writer.js';

export type OpenedTarget = StandaloneTarget | ClusterTarget;

/** Connects to what the target deployment turned out to be: lanes to a server, or a slot router. */
export async function openTarget(deployment: Deployment, credentials: Pick<Endpoint, 'user' | 'password' | 'tls'>, onConnectionLost: (e: Error) => void, lanes = 4, replyTimeoutMs?: number): Promise<OpenedTarget> {
  if (deployment.kind === 'standalone') {
    return new StandaloneTarget(await TargetWriter.open(deployment.master, { lanes, onConnectionLost, replyTimeoutMs }));
  }
  const router = new ClusterRouter(credentials, deployment.shards, onConnectionLost, replyTimeoutMs);
  const first = deployment.shards[0]!.master;
  const probe = await RedisConnection.connect({ host: first.host, port: first.port, ...credentials, name: 'ferry-probe' });
  try {
    const info = await probeTarget(probe);
    await router.connectAll();
    return new ClusterTarget(router, info);
  } catch (e) {
    router.close();
    throw e;
  } finally {
    void probe.close().catch(() => undefined);
  }
}
