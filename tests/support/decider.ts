// Given/when/then for pure deciders: given past events, when a command, then the new events or a rejection code.
import { expect } from 'vitest';

type Decision<E> = { ok: true; events: E[] } | { ok: false; code: string; message: string };

export interface DeciderSpec<S, E, C> {
  initial: () => S;
  /** `at`: event time in epoch ms (the account ages settled ids by it) */
  evolve: (state: S, event: E, at: number) => S;
  decide: (state: S, command: C) => Decision<E>;
}

/** An event alone (time 0) or with its time. */
export type Given<E> = E | { event: E; at: number };

const isTimed = <E>(g: Given<E>): g is { event: E; at: number } =>
  typeof g === 'object' && g !== null && 'event' in g && 'at' in g;

export function decider<S, E, C>(spec: DeciderSpec<S, E, C>) {
  return {
    given(...history: Given<E>[]) {
      const state = () => history.reduce((s, g) => (isTimed(g) ? spec.evolve(s, g.event, g.at) : spec.evolve(s, g, 0)), spec.initial());
      return {
        /** the folded state, for assertions on evolve */
        state,
        when(command: C) {
          const decision = spec.decide(state(), command);
          return {
            decision,
            then(...expected: E[]) {
              expect(decision, decision.ok ? '' : `rejected: ${decision.code} ${decision.message}`).toMatchObject({ ok: true });
              expect((decision as { events: E[] }).events).toEqual(expected);
            },
            /** accepted with no event: the command was already applied, or there is nothing to do */
            thenNothing() {
              expect(decision).toEqual({ ok: true, events: [] });
            },
            thenRejects(code: string) {
              expect(decision.ok, `expected rejection ${code}, got ${JSON.stringify(decision)}`).toBe(false);
              expect((decision as { code: string }).code).toBe(code);
            },
          };
        },
      };
    },
  };
}
