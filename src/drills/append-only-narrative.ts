// The replay half of the append-only drill: a run told in plain English from its
// agent_events rows alone, one sentence per event, as an operator reads it in the
// bundle. Nothing here queries: the drill reads the rows, this narrates them.

export interface EventRow {
  id: string;
  turn_no: number | null;
  event_type: string;
  detail: Record<string, unknown>;
}

/** One plain-English sentence per event, from the row alone. */
export function narrate(run: string, events: EventRow[]): string[] {
  return events.map((event) => {
    const d = event.detail;
    const text = (key: string) => (d[key] === undefined || d[key] === null ? undefined : String(d[key]));
    const money = (cents: unknown) => (typeof cents === 'number' ? (cents / 100).toFixed(2) : undefined);
    switch (event.event_type) {
      case 'run_started':
        return `Run ${run} started for tenant ${text('tenant_id') ?? '?'} on worker ${text('worker') ?? '?'}, planning ${text('total_turns') ?? '?'} turns.`;
      case 'tool_called': {
        const tool = text('tool');
        const turn = `In turn ${event.turn_no ?? '?'}`;
        if (tool === 'claim') {
          return text('transaction_id')
            ? `${turn} it claimed pending transaction ${text('transaction_id')} (${money(d.amount_cents) ?? '?'}, "${text('description') ?? ''}").`
            : `${turn} it tried to claim a pending transaction and found none.`;
        }
        if (tool === 'write') {
          return `${turn} it wrote transaction ${text('transaction_id') ?? '?'} as an expense with idempotency key ${text('idempotency_key') ?? '?'}${d.inserted === false ? ', which was already there (no-op)' : ''}.`;
        }
        if (tool === 'queue') {
          return `${turn} it queued outbox message ${text('outbox_id') ?? '?'} to ${text('recipient') ?? '?'} with dedup key ${text('dedup_key') ?? '?'}.`;
        }
        return `${turn} it called ${tool ?? 'a tool'} (${text('status') ?? 'status unknown'}).`;
      }
      case 'turn_completed':
        return `Turn ${event.turn_no ?? '?'} completed${text('tool_calls') ? ` after ${text('tool_calls')} tool calls` : ''}.`;
      case 'tool_failed':
        return `In turn ${event.turn_no ?? '?'} the ${text('tool') ?? '?'} call failed: ${text('error') ?? 'no error recorded'}.`;
      case 'run_finished':
        return `Run ${run} finished with status ${text('status') ?? '?'} after turn ${event.turn_no ?? '?'}.`;
      case 'run_failed':
        return `Run ${run} failed: ${text('error') ?? 'no error recorded'}.`;
      default:
        return `Event ${event.event_type} in turn ${event.turn_no ?? '-'}: ${JSON.stringify(d)}.`;
    }
  });
}
