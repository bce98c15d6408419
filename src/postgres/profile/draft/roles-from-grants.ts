// The roles part: the owner from the chosen tables' owners, the worker and the
// tenant-scoped reader from their grants (aclexplode), refusing a reader that would
// bypass row-level security.
import { type Drafter, list, type Spec } from './drafter.js';
import type { CatalogTable } from './pg-catalog.js';

export function draftRoles(d: Drafter): Spec {
  const roles: Spec = {};
  const byName = new Map(d.catalog.roles.map((role) => [role.name, role]));
  const tables = [...d.chosen.values()];
  const owners = [...new Set(tables.map((table) => table.owner))];
  let owner: string | undefined;
  if (tables.length === 0) d.todo(roles, 'roles.owner', 'no table was decided; write the role that owns the tables');
  else if (owners.length === 1) {
    owner = owners[0];
    d.set(roles, 'roles.owner', owner, `owns ${list(tables.map((table) => table.name))}`);
  } else {
    d.todo(roles, 'roles.owner', `the tables have ${owners.length} owners (${list(owners.map((name) => `${name}: ${list(tables.filter((table) => table.owner === name).map((table) => table.name))}`))}); write the role that owns the schema's tables`);
  }

  const expenses = d.chosen.get('expenses');
  const pending = d.chosen.get('pending_transactions');
  const granted = (table: CatalogTable | undefined, privilege: string) =>
    new Set((table?.grants ?? []).filter((grant) => grant.privilege === privilege && grant.role !== 'PUBLIC' && grant.role !== owner && grant.role !== table?.owner).map((grant) => grant.role));
  if (!expenses || !pending) {
    d.todo(roles, 'roles.worker', 'decide expenses.table and pending_transactions.table first, then write the role that has INSERT on the one and UPDATE on the other');
  } else {
    const updates = granted(pending, 'UPDATE');
    const workers = [...granted(expenses, 'INSERT')].filter((role) => updates.has(role)).sort();
    if (workers.length === 1) d.set(roles, 'roles.worker', workers[0], `granted INSERT on ${expenses.name} and UPDATE on ${pending.name}, and owns neither`);
    else if (workers.length === 0) d.todo(roles, 'roles.worker', `no role but the owner is granted INSERT on ${expenses.name} and UPDATE on ${pending.name}; write the role the Worker's tool server connects as`);
    else d.todo(roles, 'roles.worker', `${list(workers)} are each granted INSERT on ${expenses.name} and UPDATE on ${pending.name}; write the one the Worker's tool server connects as`);
  }

  if (!expenses) {
    d.todo(roles, 'roles.reader', 'decide expenses.table first, then write the tenant-scoped reader');
  } else {
    const inserts = granted(expenses, 'INSERT');
    const selecting = [...granted(expenses, 'SELECT')].filter((role) => !inserts.has(role)).sort();
    const why = (name: string) => {
      const role = byName.get(name);
      if (!role) return 'is not a role of this server';
      if (role.superuser) return 'is a superuser (bypasses RLS)';
      if (role.bypassRls) return 'has BYPASSRLS';
      const member = role.memberOf.find((other) => other === owner || other === expenses.owner);
      return member ? `is a member of the owner ${member} (bypasses RLS as it does)` : undefined;
    };
    const readers = selecting.filter((name) => why(name) === undefined);
    const refused = selecting.filter((name) => why(name) !== undefined).map((name) => `${name} ${why(name)}`);
    const also = refused.length > 0 ? ` (not ${list(refused)})` : '';
    if (readers.length === 1) d.set(roles, 'roles.reader', readers[0], `granted SELECT on ${expenses.name} without INSERT; neither superuser, BYPASSRLS nor a member of the owner${also}`);
    else if (readers.length === 0) {
      d.todo(roles, 'roles.reader', `no role is granted SELECT on ${expenses.name} without INSERT that is neither superuser, BYPASSRLS nor a member of the owner${also}; create one, grant it SELECT, and write it here`);
    } else d.todo(roles, 'roles.reader', `${list(readers)} are each granted SELECT on ${expenses.name} without INSERT; write the tenant-scoped reader`);
  }
  return { worker: roles.worker, reader: roles.reader, owner: roles.owner };
}
