// One piece of the bridge migration (migration.ts): SQL installed in the platform's database and how it is removed.
export interface BridgePiece {
  name: string;
  /** platform functions (regprocedure signatures) the piece replaces: saved by the up migration, restored by the down */
  replaces: readonly string[];
  up: string;
  /** what the down migration drops besides restoring the saved functions (triggers, wearon helpers), run first */
  down: string;
}

/** sha256(lower(trim(email)))[0:32] in SQL, as hashShopperEmail (src/domain/streams.ts) computes it. */
export const sqlShopperHash = (email: string) => `left(encode(sha256(convert_to(lower(trim(${email})), 'UTF8')), 'hex'), 32)`;
