// A transfer's state from its events (the domain's evolve), for tests that read a transfer stream.
import type { TransferEvent } from '../../src/domain/events.ts';
import { evolveTransfer, initialTransfer, type TransferState } from '../../src/domain/transfer.ts';

export const foldTransfer = (events: TransferEvent[]): TransferState => events.reduce(evolveTransfer, initialTransfer());
