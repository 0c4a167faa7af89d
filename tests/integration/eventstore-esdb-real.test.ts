// The port contract and the ESDB specifics against a REAL EventStoreDB / KurrentDB server, e.g.
//   docker compose -f docker-compose.dev.yml up -d kurrentdb
//   EVENTSTORE_TEST_URL='esdb://127.0.0.1:2113?tls=false' npx vitest run tests/integration/eventstore-esdb-real.test.ts
// No server can run on machines without Docker, so this file is the one env-gated exception: without
// EVENTSTORE_TEST_URL it skips with a printed reason, under CI too. .github/workflows/eventstore.yml sets it.
// Streams are named uniquely per test, so a shared server needs no reset; nothing is deleted afterwards.
import { describe } from 'vitest';
import { openEsdbEventStore } from '../../src/adapters/eventstore/esdb/esdbEventStore.ts';
import { silentLogger } from '../../src/logger.ts';
import { describeEventStoreContract } from '../support/eventStoreContract.ts';
import { describeEsdbSpecifics } from '../support/esdbSpecifics.ts';

const url = process.env.EVENTSTORE_TEST_URL?.trim();
if (!url) {
  console.warn(
    'SKIP: EVENTSTORE_TEST_URL is not set; the real EventStoreDB suite needs a server ' +
      '(docker compose -f docker-compose.dev.yml up -d kurrentdb; EVENTSTORE_TEST_URL=esdb://127.0.0.1:2113?tls=false)',
  );
}

describe.skipIf(!url)('real EventStoreDB server', () => {
  describeEventStoreContract('esdb (real server)', async () => {
    const store = openEsdbEventStore({ connectionString: url!, logger: silentLogger() });
    return { store, cleanup: () => store.close() };
  });
  describeEsdbSpecifics('esdb (real server)', async () => ({ connectionString: url!, cleanup: async () => undefined }));
});
