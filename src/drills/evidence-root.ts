// Where the drills write their evidence unless told, kept apart from the drills: the
// headless run checks it before anything starts, and the drills' own modules (every
// drill, the oracle, the MCP SDK) then load while the cluster initialises.
import path from 'node:path';

/** `.agent-history/oracle` under the working directory. */
export function defaultEvidenceRoot(): string {
  return path.resolve('.agent-history', 'oracle');
}
