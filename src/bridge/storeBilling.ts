// Billing modes through the bridge (issue 13, docs/platform-adoption.md "Billing modes"): the SQL that records a
// store's billing facts and each request's billing intent in the inbox (their handlers, which apply them to the
// store's stream through app/stores.ts: storeCommands.ts). Nothing of the platform is replaced: three triggers on its
// own writes.
//
//   stores (every store at the install; then an insert, or a change of billing_mode, subscription_tier/status/id,
//   status)  -> `store_billing`
//     status 'inactive' (the Shopify uninstall's cleanupStore) also uninstalls the store in the ledger: its queued
//     generations end failed with their holds returned (the worker's recovery meets them at once), later tasks are
//     rejected `store_uninstalled`; 'active' again (reinstall) lifts that.
//   store_generation_sessions (insert)  -> `billing_intent` (store, request_id): the pool the platform's route chose,
//     by the store's mode at that moment: `shopper` (resell, its x-shopper-email, hashed here) or `store`.
//   store_credit_transactions (insert of an `overage` row by the route, after Paddle billed it) -> `billing_intent`
//     `overage` with the Paddle reference and tier from the row's description. The ledger's own history rows
//     (ledger_event_id set) are not the route's and record nothing.
import { sqlShopperHash, type BridgePiece } from './piece.ts';

export const STORE_BILLING: BridgePiece = {
  name: 'store billing modes (facts, intents, uninstall)',
  replaces: [],
  up: `CREATE OR REPLACE FUNCTION wearon.record_store_billing() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF TG_OP = 'UPDATE' AND NEW.billing_mode IS NOT DISTINCT FROM OLD.billing_mode
     AND NEW.subscription_tier IS NOT DISTINCT FROM OLD.subscription_tier
     AND NEW.subscription_status IS NOT DISTINCT FROM OLD.subscription_status
     AND NEW.subscription_id IS NOT DISTINCT FROM OLD.subscription_id
     AND NEW.status IS NOT DISTINCT FROM OLD.status THEN
    RETURN NEW;
  END IF;
  PERFORM wearon.record_credit_command('store_billing', jsonb_build_object(
    'store_id', NEW.id, 'billing_mode', NEW.billing_mode, 'subscription_tier', NEW.subscription_tier,
    'subscription_status', NEW.subscription_status, 'subscription_id', NEW.subscription_id, 'status', NEW.status));
  RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS wearon_store_billing ON public.stores;
CREATE TRIGGER wearon_store_billing AFTER INSERT OR UPDATE ON public.stores
  FOR EACH ROW EXECUTE FUNCTION wearon.record_store_billing();
-- The stores that exist at the install: their facts once (the ledger records facts by value: a re-install adds nothing).
SELECT wearon.record_credit_command('store_billing', jsonb_build_object(
  'store_id', s.id, 'billing_mode', s.billing_mode, 'subscription_tier', s.subscription_tier,
  'subscription_status', s.subscription_status, 'subscription_id', s.subscription_id, 'status', s.status))
FROM public.stores s;

CREATE OR REPLACE FUNCTION wearon.record_session_intent() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_mode text;
  v_shopper boolean;
BEGIN
  IF NEW.request_id IS NULL THEN
    RETURN NEW;
  END IF;
  SELECT s.billing_mode INTO v_mode FROM public.stores s WHERE s.id = NEW.store_id;
  v_shopper := v_mode = 'resell_mode' AND coalesce(trim(NEW.shopper_email), '') <> '';
  PERFORM wearon.record_credit_command('billing_intent', jsonb_build_object(
    'store_id', NEW.store_id, 'request_id', NEW.request_id, 'session_id', NEW.id,
    'pool', CASE WHEN v_shopper THEN 'shopper' ELSE 'store' END,
    'shopper_hash', CASE WHEN v_shopper THEN ${sqlShopperHash('NEW.shopper_email')} END));
  RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS wearon_session_intent ON public.store_generation_sessions;
CREATE TRIGGER wearon_session_intent AFTER INSERT ON public.store_generation_sessions
  FOR EACH ROW EXECUTE FUNCTION wearon.record_session_intent();

CREATE OR REPLACE FUNCTION wearon.record_overage_intent() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- A history row the ledger wrote (ledger_event_id, when that column exists) is not the route's overage.
  IF NEW.type <> 'overage' OR NEW.request_id IS NULL OR to_jsonb(NEW) ->> 'ledger_event_id' IS NOT NULL THEN
    RETURN NEW;
  END IF;
  PERFORM wearon.record_credit_command('billing_intent', jsonb_build_object(
    'store_id', NEW.store_id, 'request_id', NEW.request_id, 'pool', 'overage',
    'paddle_reference', substring(NEW.description from 'via Paddle charge ([^ ]+)'),
    'tier', substring(NEW.description from 'Overage charge \\(([a-z]+)\\)')));
  RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS wearon_overage_intent ON public.store_credit_transactions;
CREATE TRIGGER wearon_overage_intent AFTER INSERT ON public.store_credit_transactions
  FOR EACH ROW EXECUTE FUNCTION wearon.record_overage_intent();`,
  down: `DROP TRIGGER IF EXISTS wearon_store_billing ON public.stores;
DROP TRIGGER IF EXISTS wearon_session_intent ON public.store_generation_sessions;
DROP TRIGGER IF EXISTS wearon_overage_intent ON public.store_credit_transactions;
DROP FUNCTION IF EXISTS wearon.record_store_billing();
DROP FUNCTION IF EXISTS wearon.record_session_intent();
DROP FUNCTION IF EXISTS wearon.record_overage_intent();`,
};
