// The replay half of the append-only drill: a run told in plain English from its
// event rows alone, one sentence per event, as an operator reads it in the
// bundle. Nothing here queries: the drill reads the rows, this narrates them.
//
// The sentences know the payloads the reference tool server writes (run_started
// with tenant_id, worker and total_turns; tool_called with the tool's own keys;
// ...). A target's own events carry other payloads: an event or a key this does
// not know is told as it is (its type and payload), never guessed at and never an
// error.

export interface EventRow {
  id: string;
  /** The turn the event belongs to; null when the row has none (or the target records none). */
  turn_no: number | null;
  event_type: string;
  /** The payload as stored: an object for the reference tool server's events, anything for a target's own. */
  detail: unknown;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** One plain-English sentence per event, from the row alone. */
export function narrate(run: string, events: EventRow[]): string[] {
  return events.map((event) => {
    if (!isObject(event.detail)) return generic(event);
    const d = event.detail;
    const has = (key: string) => Object.hasOwn(d, key);
    const text = (key: string) => (d[key] === undefined || d[key] === null ? undefined : String(d[key]));
    const money = (cents: unknown) => (typeof cents === 'number' ? (cents / 100).toFixed(2) : undefined);
    const turnNo = event.turn_no ?? (typeof d.turn_no === 'number' ? d.turn_no : undefined);
    const inTurn = turnNo === undefined ? 'It' : `In turn ${turnNo} it`;
    switch (event.event_type) {
      case 'run_started': {
        const tenant = text('tenant_id');
        // worker_id: the name a target's own events often give it.
        const worker = text('worker') ?? text('worker_id');
        const turns = text('total_turns');
        if (tenant === undefined && worker === undefined && turns === undefined) return generic(event);
        return (
          `Run ${run} started${tenant === undefined ? '' : ` for tenant ${tenant}`}${worker === undefined ? '' : ` on worker ${worker}`}` +
          `${turns === undefined ? '' : `, planning ${turns} turns`}.`
        );
      }
      case 'tool_called': {
        const tool = text('tool');
        // A claim that found nothing says so with transaction_id null; a payload without the key says nothing about it.
        if (tool === 'claim' && has('transaction_id')) {
          return text('transaction_id')
            ? `${inTurn} claimed pending transaction ${text('transaction_id')} (${money(d.amount_cents) ?? '?'}, "${text('description') ?? ''}").`
            : `${inTurn} tried to claim a pending transaction and found none.`;
        }
        if (tool === 'write' && (has('transaction_id') || has('idempotency_key'))) {
          return `${inTurn} wrote transaction ${text('transaction_id') ?? '?'} as an expense with idempotency key ${text('idempotency_key') ?? '?'}${d.inserted === false ? ', which was already there (no-op)' : ''}.`;
        }
        if (tool === 'queue' && (has('outbox_id') || has('dedup_key'))) {
          return `${inTurn} queued outbox message ${text('outbox_id') ?? '?'} to ${text('recipient') ?? '?'} with dedup key ${text('dedup_key') ?? '?'}.`;
        }
        if (tool === undefined) return generic(event);
        // A tool the sentences do not know: its status when the payload has one, else the payload as it is.
        const rest = Object.fromEntries(Object.entries(d).filter(([key]) => key !== 'tool'));
        const said = text('status') ?? (Object.keys(rest).length > 0 ? JSON.stringify(rest) : 'status unknown');
        return `${inTurn} called ${tool} (${said}).`;
      }
      case 'turn_completed':
        return `${turnNo === undefined ? 'A turn' : `Turn ${turnNo}`} completed${text('tool_calls') ? ` after ${text('tool_calls')} tool calls` : ''}.`;
      case 'tool_failed':
        return `${turnNo === undefined ? 'The' : `In turn ${turnNo} the`} ${text('tool') ?? '?'} call failed: ${text('error') ?? 'no error recorded'}.`;
      case 'run_finished':
        return `Run ${run} finished with status ${text('status') ?? '?'}${turnNo === undefined ? '' : ` after turn ${turnNo}`}.`;
      case 'run_failed':
        return `Run ${run} failed: ${text('error') ?? 'no error recorded'}.`;
      default:
        return generic(event);
    }
  });
}

/** An event told as it is: its type, its turn when it has one, and its payload. */
function generic(event: EventRow): string {
  return `Event ${event.event_type} in turn ${event.turn_no ?? '-'}: ${JSON.stringify(event.detail ?? null)}.`;
}
