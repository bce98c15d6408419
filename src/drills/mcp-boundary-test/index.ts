// Drill 8, mcp_boundary_test: the drill (drill.ts), its verdict (verdict.ts), the
// tool surface as a client sees it (tool-surface.ts) and the statement log of its
// window (statement-log.ts, server-log.ts).
export { mcpBoundaryTest } from './drill.js';
export { describeCatalog, describeEnvironment, describeRefusal, describeRogue } from './verdict.js';
export { allowedTools, sqlLookingStrings, toolSurface, type ToolSurface } from './tool-surface.js';
export { analyseWindow, parseServerLog, statementText, type LogEntry, type WindowReport } from './server-log.js';
export type { EnvironmentRead } from '../../reconciler/proc-env.js';
