import type { Endpoint } from '../common/endpoint.js';

/** A contiguous range of hash slots, both ends included. */
export type SlotRange = readonly [start: number, end: number];

export interface Shard {
  /** The master that owns the slots (where writes go, and what a replica link follows). */
  master: Endpoint;
  replicas: Endpoint[];
  slots: SlotRange[];
  /** Cluster node id of the master. */
  id: string;
}

/** What an address list turned out to be. Credentials of the input apply to every node. */
export type Deployment =
  | { kind: 'standalone'; master: Endpoint }
  | { kind: 'cluster'; shards: Shard[] };
