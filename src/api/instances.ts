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

  find(projectId: string, id: string): RegisteredInstance | undefined {
    const i = this.byId.get(id);
    return i && i.projectId === projectId ? i : undefined;
  }
}
