// Drill 9, forensics_drill: the drill (drill.ts), the run it makes fail
// (failing-run.ts), the four queries and the six-line report (report.ts), and its
// verdict (verdict.ts).
export { forensicsDrill } from './drill.js';
export { failingInput, runWorkerToExit, type WorkerOutcome } from './failing-run.js';
export { sentenceCount } from './verdict.js';
export {
  buildReport,
  forensicQueries,
  nextAction,
  referenceReportNames,
  type CallRow,
  type EventRow,
  type ForensicReport,
  type ReportNames,
  type RunRow,
  type SideEffects,
} from './report.js';
