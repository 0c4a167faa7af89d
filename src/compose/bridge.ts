// The platform bridge's inbox consumer (src/bridge/consumer.ts), started and stopped as a resource of the service.
import { InboxConsumer } from '../bridge/consumer.ts';
import type { InboxDeps } from '../bridge/commands.ts';
import type { Resource } from './scope.ts';

export async function startInbox(connectionString: string, pollMs: number, deps: InboxDeps): Promise<Resource<InboxConsumer>> {
  const consumer = new InboxConsumer({ connectionString, deps, logger: deps.logger.child({ component: 'bridge_inbox' }), pollMs });
  await consumer.start();
  return { value: consumer, close: () => consumer.stop() };
}
