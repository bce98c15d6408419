// The roles the Reconciler schema uses. The reference migrations create them
// with these names; a target whose schema was installed another way can name
// its own with --worker-role, --reader-role and --owner-role.
export interface Roles {
  /** What the tool server connects as: INSERT/SELECT, no UPDATE/DELETE on agent_events. */
  worker: string;
  /** The tenant-scoped reader of the RLS drill: neither superuser nor BYPASSRLS. */
  reader: string;
  /** Owns the tables. */
  owner: string;
}

export const defaultRoles: Roles = {
  worker: 'worker_write',
  reader: 'tenant_reader',
  owner: 'reconciler_owner',
};

/** The tables of the reference schema, in dependency order. */
export const reconcilerTables = [
  'tenants',
  'expenses',
  'pending_transactions',
  'runs',
  'turns',
  'tool_calls',
  'outbox',
  'agent_events',
] as const;
