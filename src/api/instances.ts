/**
 * Redis deployments registered in the configuration, addressable by id like DCS instances
 * (`source_instance.id`). Each belongs to one project; another project cannot use it.
 */
export interface RegisteredInstance {
  id: string;
  projectId: string;
  name: string;
  addrs: string;
  password?: string;
  /** TLS settings (files on this host), an extension. */
  tls?: import('../common/endpoint.js').EndpointTls;
  /** Sentinel's own password, for `sentinel://` addrs. */
  sentinelPassword?: string;
}

export class InstanceRegistry {
  private readonly byId = new Map<string, RegisteredInstance>();

  constructor(instances: readonly RegisteredInstance[] = []) {
    for (const i of instances) this.byId.set(i.id, i);
  }

  /** Every `host:port` the project's instances name (the `registered` address policy). */
  addressesOf(projectId: string): string[] {
    const out: string[] = [];
    for (const i of this.byId.values()) {
      if (i.projectId !== projectId) continue;
      for (const a of i.addrs.split(',')) if (a.trim() !== '') out.push(normalizeAddress(a));
    }
    return out;
  }

  find(projectId: string, id: string): RegisteredInstance | undefined {
    const i = this.byId.get(id);
    return i && i.projectId === projectId ? i : undefined;
  }
}

/** `host:port` compared as text: trimmed, host in lower case, IPv6 in brackets as given. */
export function normalizeAddress(a: string): string {
  const t = a.trim();
  const colon = t.lastIndexOf(':');
  return colon < 0 ? t.toLowerCase() : `${t.slice(0, colon).toLowerCase()}${t.slice(colon)}`;
}
