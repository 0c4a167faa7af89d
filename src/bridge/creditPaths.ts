// The platform's credit functions and signup trigger, bridged (original-system.md §2.2, docs/platform-adoption.md):
// same names, signatures and return values; every body records a ledger command in the inbox instead of moving
// credits. Grants (signup, Paddle, merchant plans) and the Shopify transfer become commands; the deduct functions
// become checks (the ledger deducts at intake, by session id, which does not exist yet when they are called); the
// refund functions move nothing and are recorded for audit (the ledger refunds failed generations itself).
import { sqlShopperHash, type BridgePiece } from './piece.ts';

const IGNORED_REFUND = "'the ledger settles every generation itself: a platform refund moves no credit'";

const SIGNUP: BridgePiece = {
  name: 'signup (handle_new_user)',
  replaces: ['public.handle_new_user()'],
  // The non-credit statements are the platform's as of migration 023 (users row, analytics event); the credit part is
  // the grant command, and the balance row shows the pending grant at once (the app reads it right after signup).
  up: `CREATE OR REPLACE FUNCTION public.handle_new_user() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
  INSERT INTO public.users (id, email, display_name, avatar_url)
  VALUES (NEW.id, NEW.email, NEW.raw_user_meta_data ->> 'display_name', NEW.raw_user_meta_data ->> 'avatar_url');

  INSERT INTO public.user_credits (user_id, balance, total_earned, total_spent) VALUES (NEW.id, 10, 10, 0)
  ON CONFLICT (user_id) DO NOTHING;
  PERFORM wearon.record_credit_command('grant', jsonb_build_object(
    'account', 'user:' || NEW.id::text, 'amount', 10, 'reason', 'signup_bonus', 'reference', 'signup:' || NEW.id::text));

  INSERT INTO public.analytics_events (event_type, user_id, metadata)
  VALUES ('user_signup', NEW.id, jsonb_build_object('email', NEW.email));
  RETURN NEW;
END
$$;`,
  down: '',
};

const B2C: BridgePiece = {
  name: 'B2C deduct/refund',
  replaces: ['public.deduct_credits(uuid, integer, text)', 'public.refund_credits(uuid, integer, text)'],
  // SECURITY INVOKER as before: called with the user's JWT, the balance row is visible only to its owner (RLS).
  up: `CREATE OR REPLACE FUNCTION public.deduct_credits(p_user_id uuid, p_amount integer, p_description text DEFAULT 'Image generation')
RETURNS boolean
LANGUAGE plpgsql SECURITY INVOKER SET search_path = public, pg_temp
AS $$
DECLARE
  v_balance integer;
BEGIN
  -- A check only: the ledger takes the hold when the generation arrives, by its session id.
  SELECT uc.balance INTO v_balance FROM public.user_credits uc WHERE uc.user_id = p_user_id;
  IF v_balance IS NULL THEN
    RAISE EXCEPTION 'User credits not found';
  END IF;
  RETURN v_balance - wearon.promised_credits('user', p_user_id) >= p_amount;
END
$$;

CREATE OR REPLACE FUNCTION public.refund_credits(p_user_id uuid, p_amount integer, p_description text DEFAULT 'Generation failed - refund')
RETURNS void
LANGUAGE plpgsql SECURITY INVOKER SET search_path = public, pg_temp
AS $$
BEGIN
  PERFORM wearon.record_credit_command('refund_ignored', jsonb_build_object(
    'function', 'refund_credits', 'account', 'user:' || p_user_id::text, 'amount', p_amount, 'description', p_description),
    ${IGNORED_REFUND});
END
$$;`,
  down: '',
};

const B2B: BridgePiece = {
  name: 'B2B deduct/refund',
  replaces: [
    'public.deduct_store_credits(uuid, integer, text, text)',
    'public.refund_store_credits(uuid, integer, text, text)',
    'public.deduct_store_shopper_credits(uuid, text, integer, text, text)',
    'public.refund_store_shopper_credits(uuid, text, integer, text, text)',
  ],
  up: `CREATE OR REPLACE FUNCTION public.deduct_store_credits(p_store_id uuid, p_amount integer, p_request_id text,
                                                       p_description text DEFAULT 'Generation credit deduction')
RETURNS boolean
LANGUAGE plpgsql SECURITY INVOKER SET search_path = public, pg_temp
AS $$
DECLARE
  v_balance integer;
BEGIN
  IF p_amount IS NULL OR p_amount <= 0 THEN
    RAISE EXCEPTION 'Amount must be a positive integer, got: %', p_amount;
  END IF;
  SELECT sc.balance INTO v_balance FROM public.store_credits sc WHERE sc.store_id = p_store_id;
  IF v_balance IS NULL THEN
    RAISE EXCEPTION 'Store credits not found for store_id: %', p_store_id;
  END IF;
  RETURN v_balance - wearon.promised_credits('store', p_store_id) >= p_amount;
END
$$;

CREATE OR REPLACE FUNCTION public.refund_store_credits(p_store_id uuid, p_amount integer, p_request_id text,
                                                       p_description text DEFAULT 'Generation failed - refund')
RETURNS void
LANGUAGE plpgsql SECURITY INVOKER SET search_path = public, pg_temp
AS $$
BEGIN
  IF p_amount IS NULL OR p_amount <= 0 THEN
    RAISE EXCEPTION 'Amount must be a positive integer, got: %', p_amount;
  END IF;
  PERFORM wearon.record_credit_command('refund_ignored', jsonb_build_object(
    'function', 'refund_store_credits', 'account', 'store:' || p_store_id::text, 'amount', p_amount,
    'request_id', p_request_id, 'description', p_description), ${IGNORED_REFUND});
END
$$;

CREATE OR REPLACE FUNCTION public.deduct_store_shopper_credits(p_store_id uuid, p_shopper_email text, p_amount integer,
                                                               p_request_id text,
                                                               p_description text DEFAULT 'B2B shopper generation')
RETURNS boolean
LANGUAGE plpgsql SECURITY INVOKER SET search_path = public, pg_temp
AS $$
DECLARE
  v_email text;
  v_balance integer;
BEGIN
  IF p_amount <= 0 THEN
    RAISE EXCEPTION 'Deduction amount must be positive';
  END IF;
  v_email := lower(trim(p_shopper_email));
  IF v_email = '' THEN
    RAISE EXCEPTION 'Shopper email is required';
  END IF;
  -- A pool the ledger created first carries only the hash (the plain email never enters the ledger).
  SELECT c.balance INTO v_balance FROM public.store_shopper_credits c
  WHERE c.store_id = p_store_id AND (c.shopper_email = v_email OR c.shopper_hash = ${sqlShopperHash('v_email')})
  ORDER BY c.shopper_hash IS NULL LIMIT 1;
  IF v_balance IS NULL THEN
    RETURN false;
  END IF;
  RETURN v_balance - wearon.promised_credits('shopper', p_store_id, v_email) >= p_amount;
END
$$;

CREATE OR REPLACE FUNCTION public.refund_store_shopper_credits(p_store_id uuid, p_shopper_email text, p_amount integer,
                                                               p_request_id text,
                                                               p_description text DEFAULT 'B2B shopper generation failed - refund')
RETURNS void
LANGUAGE plpgsql SECURITY INVOKER SET search_path = public, pg_temp
AS $$
BEGIN
  IF p_amount <= 0 THEN
    RAISE EXCEPTION 'Refund amount must be positive';
  END IF;
  IF trim(p_shopper_email) = '' THEN
    RAISE EXCEPTION 'Shopper email is required';
  END IF;
  PERFORM wearon.record_credit_command('refund_ignored', jsonb_build_object(
    'function', 'refund_store_shopper_credits', 'account', 'shopper:' || p_store_id::text || '.' || ${sqlShopperHash('p_shopper_email')},
    'amount', p_amount, 'request_id', p_request_id, 'description', p_description), ${IGNORED_REFUND});
END
$$;`,
  down: '',
};

const STORE_GRANTS: BridgePiece = {
  name: 'store grants (add_store_credits)',
  replaces: ['public.add_store_credits(uuid, integer, text, text, text)'],
  // Idempotent by (store, request id, type) as before: a grant recorded before the cut-over (a history row) or since
  // (an inbox command) is not recorded again; the ledger's reference paddle:<type>:<request id> makes it exact.
  up: `CREATE OR REPLACE FUNCTION public.add_store_credits(p_store_id uuid, p_amount integer, p_type text, p_request_id text,
                                                    p_description text DEFAULT 'Store credit purchase')
RETURNS void
LANGUAGE plpgsql SECURITY INVOKER SET search_path = public, pg_temp
AS $$
DECLARE
  v_reference text := CASE WHEN p_request_id IS NULL THEN NULL ELSE 'paddle:' || p_type || ':' || p_request_id END;
BEGIN
  IF p_amount <= 0 THEN
    RAISE EXCEPTION 'Credit amount must be positive';
  END IF;
  IF p_type NOT IN ('purchase', 'subscription') THEN
    RAISE EXCEPTION 'Unsupported credit transaction type: %', p_type;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM public.store_credits sc WHERE sc.store_id = p_store_id) THEN
    RAISE EXCEPTION 'Store credits not found for store_id: %', p_store_id;
  END IF;
  IF EXISTS (SELECT 1 FROM public.store_credit_transactions t
             WHERE t.store_id = p_store_id AND t.request_id = p_request_id AND t.type = p_type) THEN
    RETURN;
  END IF;
  -- Serialises two deliveries of one grant so the second sees the first's command.
  PERFORM pg_advisory_xact_lock(hashtext('wearon:grant:' || p_store_id::text || ':' || coalesce(v_reference, '')));
  IF v_reference IS NOT NULL AND wearon.command_recorded('grant', 'store:' || p_store_id::text, v_reference) THEN
    RETURN;
  END IF;
  PERFORM wearon.record_credit_command('grant', jsonb_build_object(
    'account', 'store:' || p_store_id::text, 'amount', p_amount, 'reason', p_type, 'reference', v_reference,
    'description', p_description));
END
$$;`,
  down: '',
};

const SHOPPER_PURCHASE: BridgePiece = {
  name: 'Shopify shopper purchase (process_store_shopper_purchase)',
  replaces: ['public.process_store_shopper_purchase(uuid, text, text, integer, numeric, text, text)'],
  // Answers at once from the published balances (minus what is promised) as the platform's webhook needs; the ledger's
  // transfer (both legs or neither, by order id) follows in milliseconds. A transfer the ledger refuses after all
  // (a race) is a rejected inbox command with its reason, which finance sees (docs/platform-adoption.md).
  up: `CREATE OR REPLACE FUNCTION public.process_store_shopper_purchase(p_store_id uuid, p_shopper_email text, p_shopify_order_id text,
                                                                 p_credits_purchased integer, p_amount_paid numeric,
                                                                 p_currency text DEFAULT 'USD', p_request_id text DEFAULT NULL)
RETURNS TABLE (status text, purchase_id uuid, store_id uuid, shopper_email text, shopify_order_id text,
               credits_purchased integer, amount_paid numeric, currency text)
LANGUAGE plpgsql SECURITY INVOKER SET search_path = public, pg_temp
AS $$
#variable_conflict use_column
DECLARE
  v_email text := lower(trim(p_shopper_email));
  v_balance integer;
  v_found public.store_shopper_purchases%ROWTYPE;
  v_new public.store_shopper_purchases%ROWTYPE;
BEGIN
  IF p_credits_purchased <= 0 THEN
    RAISE EXCEPTION 'Credits purchased must be positive';
  END IF;
  IF p_shopper_email IS NULL OR length(trim(p_shopper_email)) = 0 THEN
    RAISE EXCEPTION 'Shopper email is required';
  END IF;

  SELECT * INTO v_found FROM public.store_shopper_purchases p WHERE p.shopify_order_id = p_shopify_order_id;
  IF FOUND THEN
    RETURN QUERY SELECT 'duplicate'::text, v_found.id, v_found.store_id, v_found.shopper_email,
                        v_found.shopify_order_id, v_found.credits_purchased, v_found.amount_paid, v_found.currency;
    RETURN;
  END IF;

  -- The row lock serialises purchases from one store pool, so each sees the transfers recorded before it.
  SELECT sc.balance INTO v_balance FROM public.store_credits sc WHERE sc.store_id = p_store_id FOR UPDATE;
  IF v_balance IS NULL THEN
    RAISE EXCEPTION 'Store credits not found for store_id: %', p_store_id;
  END IF;
  IF v_balance - wearon.promised_credits('store', p_store_id) < p_credits_purchased THEN
    RETURN QUERY SELECT 'insufficient'::text, NULL::uuid, p_store_id, p_shopper_email, p_shopify_order_id,
                        p_credits_purchased, p_amount_paid, coalesce(p_currency, 'USD');
    RETURN;
  END IF;

  INSERT INTO public.store_shopper_purchases AS p (store_id, shopper_email, shopify_order_id, credits_purchased,
                                                   amount_paid, currency)
  VALUES (p_store_id, v_email, p_shopify_order_id, p_credits_purchased, p_amount_paid, coalesce(p_currency, 'USD'))
  ON CONFLICT (shopify_order_id) DO NOTHING
  RETURNING * INTO v_new;
  IF NOT FOUND THEN
    SELECT * INTO v_found FROM public.store_shopper_purchases p WHERE p.shopify_order_id = p_shopify_order_id;
    RETURN QUERY SELECT 'duplicate'::text, v_found.id, v_found.store_id, v_found.shopper_email,
                        v_found.shopify_order_id, v_found.credits_purchased, v_found.amount_paid, v_found.currency;
    RETURN;
  END IF;

  -- The shopper's pool exists at once (lower-cased, as every lookup is); its balance is the ledger's from here.
  INSERT INTO public.store_shopper_credits (store_id, shopper_email, shopper_hash, balance, total_purchased, total_spent)
  VALUES (p_store_id, v_email, ${sqlShopperHash('v_email')}, 0, 0, 0)
  ON CONFLICT DO NOTHING;
  PERFORM wearon.record_credit_command('transfer', jsonb_build_object(
    'from', 'store:' || p_store_id::text, 'to', 'shopper:' || p_store_id::text || '.' || ${sqlShopperHash('v_email')},
    'amount', p_credits_purchased, 'transferId', p_shopify_order_id, 'reference', 'shopify:' || p_shopify_order_id));

  RETURN QUERY SELECT 'processed'::text, v_new.id, v_new.store_id, v_new.shopper_email, v_new.shopify_order_id,
                      v_new.credits_purchased, v_new.amount_paid, v_new.currency;
END
$$;`,
  down: '',
};

/** The credit paths of original-system.md §2.2 and the signup trigger, in install order. */
export const CREDIT_PATHS: readonly BridgePiece[] = [SIGNUP, B2C, B2B, STORE_GRANTS, SHOPPER_PURCHASE];

/**
 * One owner of a session's fate: once the ledger knows a session, a status another writer sets (the stuck-job cron,
 * a store uninstall, a user through PostgREST) is not applied; the projection's own writes match the projected status
 * in the same transaction and pass. Sessions the ledger never saw (a failed LPUSH) stay the platform's.
 */
export const SESSION_OWNERSHIP: BridgePiece = {
  name: 'session ownership',
  replaces: [],
  up: `CREATE OR REPLACE FUNCTION wearon.keep_ledger_session_status() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_status text;
BEGIN
  IF NEW.status IS NOT DISTINCT FROM OLD.status OR to_regclass('public.projected_sessions') IS NULL THEN
    RETURN NEW;
  END IF;
  SELECT p.status INTO v_status FROM public.projected_sessions p WHERE p.session_id = NEW.id::text;
  IF NOT FOUND OR NEW.status = v_status THEN
    RETURN NEW;
  END IF;
  NEW.status := OLD.status;
  NEW.error_message := OLD.error_message;
  NEW.completed_at := OLD.completed_at;
  RETURN NEW;
END
$$;
DROP TRIGGER IF EXISTS wearon_ledger_owns_status ON public.generation_sessions;
CREATE TRIGGER wearon_ledger_owns_status BEFORE UPDATE ON public.generation_sessions
  FOR EACH ROW EXECUTE FUNCTION wearon.keep_ledger_session_status();
DROP TRIGGER IF EXISTS wearon_ledger_owns_status ON public.store_generation_sessions;
CREATE TRIGGER wearon_ledger_owns_status BEFORE UPDATE ON public.store_generation_sessions
  FOR EACH ROW EXECUTE FUNCTION wearon.keep_ledger_session_status();`,
  down: `DROP TRIGGER IF EXISTS wearon_ledger_owns_status ON public.generation_sessions;
DROP TRIGGER IF EXISTS wearon_ledger_owns_status ON public.store_generation_sessions;
DROP FUNCTION IF EXISTS wearon.keep_ledger_session_status();`,
};
