// Drill 9, forensics_drill: the drill (drill.ts), the run it makes fail
// (failing-run.ts), the four queries and the six-line report (report.ts), and its
// verdict (verdict.ts).
export { forensicsDrill } from './drill.js';
export { failingInput } from './failing-run.js';
export { sentenceCount } from './verdict.js';
export {
  buildReport,
  forensicQueries,
  nextAction,
  type CallRow,
  type EventRow,
  type ForensicReport,
  type RunRow,
  type SideEffects,
} from './report.js';
