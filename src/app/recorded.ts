// Stored events as the application reads them: decoded by the domain's decoder for their stream type (never cast),
// and their time. Every reader of the log (repository, pending index, projections, verify, statement, HTTP views)
// goes through here or through the per-stream decoders.
import { decodeLedgerEvent, UndecodableEventError, type DecodedLedgerEvent } from '../domain/decode.ts';
import { formatPosition, type RecordedEvent } from './ports/eventStore.ts';

/** A decoded event of one of the ledger's streams, with its stored envelope. */
export type LedgerRecord = DecodedLedgerEvent & { recorded: RecordedEvent };

/** Epoch ms of an event: its own occurredAt (the same on every replica), else when it was stored. */
export const eventTime = (e: RecordedEvent): number => Date.parse(e.metadata.occurredAt) || e.recordedAt.getTime();

/** Null for an event outside the ledger's streams (e.g. EventStoreDB system streams); throws when undecodable. */
export function decodeRecorded(e: RecordedEvent): LedgerRecord | null {
  let decoded: DecodedLedgerEvent | null;
  try {
    decoded = decodeLedgerEvent(e.streamId, e);
  } catch (err) {
    if (!(err instanceof UndecodableEventError)) throw err;
    throw new UndecodableEventError(`${e.streamId}@${e.revision} (position ${formatPosition(e.position)}): ${err.message}`, { cause: err });
  }
  if (!decoded) return null;
  // Completed in place (the decoded object is fresh): a spread per event costs more than the decoding itself.
  const record = decoded as LedgerRecord;
  record.recorded = e;
  return record;
}
