-- The web platform's database as it stands after its migrations 001-023, for tests: written for this fixture from the
-- facts in /work/shared/reference/original-system.md §2-§3 (and the migration facts listed in README.md), never copied
-- from the platform. Table, column, constraint, function and trigger names, signatures, defaults, return values and
-- behaviour are the contract and match the platform; the SQL text is ours.
--
-- Left out on purpose (README.md says why): the user_body_profiles table (012), storage, comments.
-- Runs after supabase-stand-ins.sql, in one transaction, as the database owner (postgres).

-- ---------------------------------------------------------------------------------------------------------------
-- 020: time-ordered ids. Same name and result format (RFC 9562 v7: 48-bit ms timestamp, version 7, variant 10);
-- built from a v4 uuid whose first six bytes are replaced by the clock and whose version nibble 0100 becomes 0111.

CREATE FUNCTION public.uuid_generate_v7() RETURNS uuid
LANGUAGE sql VOLATILE
AS $$
  SELECT encode(
    set_bit(set_bit(
      overlay(uuid_send(gen_random_uuid())
              PLACING substring(int8send((extract(epoch FROM clock_timestamp()) * 1000)::bigint) FROM 3)
              FROM 1 FOR 6),
      52, 1), 53, 1),
    'hex')::uuid
$$;

-- 001: shared BEFORE UPDATE trigger body.
CREATE FUNCTION public.update_updated_at_column() RETURNS trigger
LANGUAGE plpgsql
AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END
$$;

-- ---------------------------------------------------------------------------------------------------------------
-- B2C tables (001, 019, 020, 021, 022, 023)

CREATE TABLE public.users (
  id uuid PRIMARY KEY REFERENCES auth.users (id) ON DELETE CASCADE,
  email text NOT NULL,
  display_name text,
  avatar_url text,
  gender text CHECK (gender IN ('male', 'female', 'other')),
  age integer CHECK (age >= 13 AND age <= 120),
  created_at timestamptz DEFAULT now(),
  updated_at timestamptz DEFAULT now()
);

CREATE TABLE public.user_credits (
  id uuid PRIMARY KEY DEFAULT public.uuid_generate_v7(),
  user_id uuid NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
  balance integer NOT NULL DEFAULT 10,
  total_earned integer DEFAULT 10,
  total_spent integer DEFAULT 0,
  updated_at timestamptz DEFAULT now(),
  UNIQUE (user_id),
  CONSTRAINT chk_user_credits_balance CHECK (balance >= 0)
);

-- B2C history. No request id, no idempotency: every call of the RPCs below adds a row.
CREATE TABLE public.credit_transactions (
  id uuid PRIMARY KEY DEFAULT public.uuid_generate_v7(),
  user_id uuid NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
  amount integer NOT NULL,
  type text NOT NULL CHECK (type IN ('signup_bonus', 'generation', 'refund')),
  description text,
  created_at timestamptz DEFAULT now()
);

CREATE TABLE public.generation_sessions (
  id uuid PRIMARY KEY DEFAULT public.uuid_generate_v7(),
  user_id uuid NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
  status text NOT NULL DEFAULT 'queued',
  model_image_url text NOT NULL,
  outfit_image_url text,
  accessories jsonb DEFAULT '[]'::jsonb,
  stitched_image_url text,
  prompt_system text NOT NULL,
  prompt_user text,
  generated_image_url text,
  credits_used integer DEFAULT 1,
  error_message text,
  processing_time_ms integer,
  created_at timestamptz DEFAULT now(),
  completed_at timestamptz,
  input_tokens integer,
  output_tokens integer,
  estimated_cost_usd numeric(10, 6),
  -- 023: 'pending' kept for old rows; the producer writes 'queued'.
  CONSTRAINT generation_sessions_status_check
    CHECK (status IN ('queued', 'pending', 'processing', 'completed', 'failed'))
) WITH (autovacuum_vacuum_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.02);

CREATE TABLE public.analytics_events (
  id uuid PRIMARY KEY DEFAULT public.uuid_generate_v7(),
  event_type text NOT NULL,
  user_id uuid REFERENCES public.users (id) ON DELETE SET NULL,
  metadata jsonb DEFAULT '{}'::jsonb,
  created_at timestamptz DEFAULT now()
) WITH (autovacuum_vacuum_scale_factor = 0.1, autovacuum_analyze_scale_factor = 0.05);

CREATE INDEX idx_generation_sessions_user_id ON public.generation_sessions (user_id);
CREATE INDEX idx_generation_sessions_created_at ON public.generation_sessions (created_at DESC);
CREATE INDEX idx_generation_sessions_status ON public.generation_sessions (status);
-- 021 as deployed: the partial index still names 'pending', not 'queued' (P-6).
CREATE INDEX idx_generation_sessions_active ON public.generation_sessions (status, created_at DESC)
  WHERE status IN ('pending', 'processing');
CREATE INDEX idx_generation_sessions_user_created ON public.generation_sessions (user_id, created_at DESC);
CREATE INDEX idx_credit_transactions_user_id ON public.credit_transactions (user_id);
CREATE INDEX idx_credit_transactions_created_at ON public.credit_transactions (created_at DESC);
CREATE INDEX idx_credit_transactions_created_at_brin ON public.credit_transactions USING brin (created_at);
CREATE INDEX idx_analytics_events_type_created ON public.analytics_events (event_type, created_at);
CREATE INDEX idx_analytics_events_created_at_brin ON public.analytics_events USING brin (created_at);

CREATE TRIGGER update_users_updated_at BEFORE UPDATE ON public.users
  FOR EACH ROW EXECUTE FUNCTION public.update_updated_at_column();
CREATE TRIGGER update_user_credits_updated_at BEFORE UPDATE ON public.user_credits
  FOR EACH ROW EXECUTE FUNCTION public.update_updated_at_column();

-- ---------------------------------------------------------------------------------------------------------------
-- RBAC (003): signup also gives the user the 'user' role (trigger on public.users); admin checks use user_has_role.

CREATE TABLE public.roles (
  id uuid PRIMARY KEY DEFAULT public.uuid_generate_v7(),
  name text NOT NULL UNIQUE,
  description text,
  created_at timestamptz DEFAULT now()
);

CREATE TABLE public.permissions (
  id uuid PRIMARY KEY DEFAULT public.uuid_generate_v7(),
  name text NOT NULL UNIQUE,
  description text,
  resource text NOT NULL,
  action text NOT NULL,
  created_at timestamptz DEFAULT now()
);

CREATE TABLE public.role_permissions (
  role_id uuid NOT NULL REFERENCES public.roles (id) ON DELETE CASCADE,
  permission_id uuid NOT NULL REFERENCES public.permissions (id) ON DELETE CASCADE,
  created_at timestamptz DEFAULT now(),
  PRIMARY KEY (role_id, permission_id)
);

CREATE TABLE public.user_roles (
  user_id uuid NOT NULL REFERENCES public.users (id) ON DELETE CASCADE,
  role_id uuid NOT NULL REFERENCES public.roles (id) ON DELETE CASCADE,
  assigned_at timestamptz DEFAULT now(),
  assigned_by uuid REFERENCES public.users (id) ON DELETE SET NULL,
  PRIMARY KEY (user_id, role_id)
);

CREATE INDEX idx_user_roles_user_id ON public.user_roles (user_id);

INSERT INTO public.roles (name, description) VALUES
  ('user', 'Regular user with standard access'),
  ('moderator', 'Moderator with limited admin access'),
  ('admin', 'Administrator with full access');

INSERT INTO public.permissions (name, resource, action, description)
SELECT p.name, split_part(p.name, ':', 1), split_part(p.name, ':', 2), p.description
FROM (VALUES
  ('users:read', 'View user profiles'), ('users:write', 'Edit user profiles'), ('users:delete', 'Delete users'),
  ('users:manage', 'Full user management'), ('generations:read', 'View generations'),
  ('generations:create', 'Create generations'), ('generations:delete', 'Delete generations'),
  ('generations:manage', 'Full generation management'), ('credits:read', 'View credit balance'),
  ('credits:grant', 'Grant credits to users'), ('credits:manage', 'Full credit management'),
  ('analytics:read', 'View analytics'), ('admin:access', 'Access admin panel'), ('roles:manage', 'Manage user roles')
) AS p (name, description);

INSERT INTO public.role_permissions (role_id, permission_id)
SELECT r.id, p.id
FROM public.roles r
JOIN public.permissions p ON
  r.name = 'admin'
  OR (r.name = 'user' AND p.name IN ('generations:read', 'generations:create', 'credits:read'))
  OR (r.name = 'moderator' AND p.name IN ('generations:read', 'generations:create', 'credits:read',
                                          'users:read', 'analytics:read', 'generations:manage'));

CREATE FUNCTION public.assign_default_role() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
AS $$
BEGIN
  INSERT INTO public.user_roles (user_id, role_id)
  SELECT NEW.id, r.id FROM public.roles r WHERE r.name = 'user'
  ON CONFLICT DO NOTHING;
  RETURN NEW;
END
$$;

CREATE TRIGGER on_user_created_assign_role AFTER INSERT ON public.users
  FOR EACH ROW EXECUTE FUNCTION public.assign_default_role();

CREATE FUNCTION public.user_has_permission(p_user_id uuid, p_permission_name text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
AS $$
BEGIN
  RETURN EXISTS (
    SELECT 1
    FROM public.user_roles ur
    JOIN public.role_permissions rp ON rp.role_id = ur.role_id
    JOIN public.permissions p ON p.id = rp.permission_id
    WHERE ur.user_id = p_user_id AND p.name = p_permission_name);
END
$$;

CREATE FUNCTION public.user_has_role(p_user_id uuid, p_role_name text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER
AS $$
BEGIN
  RETURN EXISTS (
    SELECT 1 FROM public.user_roles ur JOIN public.roles r ON r.id = ur.role_id
    WHERE ur.user_id = p_user_id AND r.name = p_role_name);
END
$$;

-- ---------------------------------------------------------------------------------------------------------------
-- Signup (001): SECURITY DEFINER, so it writes past RLS. users row, 10 free credits, the bonus row, analytics.

CREATE FUNCTION public.handle_new_user() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
AS $$
BEGIN
  INSERT INTO public.users (id, email, display_name, avatar_url)
  VALUES (NEW.id, NEW.email, NEW.raw_user_meta_data ->> 'display_name', NEW.raw_user_meta_data ->> 'avatar_url');

  INSERT INTO public.user_credits (user_id, balance, total_earned, total_spent)
  VALUES (NEW.id, 10, 10, 0);

  INSERT INTO public.credit_transactions (user_id, amount, type, description)
  VALUES (NEW.id, 10, 'signup_bonus', 'Welcome bonus: 10 free credits');

  INSERT INTO public.analytics_events (event_type, user_id, metadata)
  VALUES ('user_signup', NEW.id, jsonb_build_object('email', NEW.email));

  RETURN NEW;
END
$$;

CREATE TRIGGER on_auth_user_created AFTER INSERT ON auth.users
  FOR EACH ROW EXECUTE FUNCTION public.handle_new_user();

-- ---------------------------------------------------------------------------------------------------------------
-- B2C credit RPCs (001). SECURITY INVOKER: called with the user's JWT they rely on the 004 policies (P-1).

-- No check that p_amount is positive; FALSE when short, nothing written.
CREATE FUNCTION public.deduct_credits(p_user_id uuid, p_amount integer, p_description text DEFAULT 'Image generation')
RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
  v_balance integer;
BEGIN
  SELECT uc.balance INTO v_balance FROM public.user_credits uc WHERE uc.user_id = p_user_id FOR UPDATE;
  IF v_balance IS NULL THEN
    RAISE EXCEPTION 'User credits not found';
  END IF;
  IF v_balance < p_amount THEN
    RETURN false;
  END IF;

  UPDATE public.user_credits
  SET balance = balance - p_amount, total_spent = total_spent + p_amount
  WHERE user_id = p_user_id;

  INSERT INTO public.credit_transactions (user_id, amount, type, description)
  VALUES (p_user_id, -p_amount, 'generation', p_description);
  RETURN true;
END
$$;

-- Mints on every call: no idempotency, no check that anything was deducted, 0 updated rows is fine (the history row
-- is still written when the user exists).
CREATE FUNCTION public.refund_credits(p_user_id uuid, p_amount integer,
                                      p_description text DEFAULT 'Generation failed - refund')
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
  UPDATE public.user_credits
  SET balance = balance + p_amount, total_spent = total_spent - p_amount
  WHERE user_id = p_user_id;

  INSERT INTO public.credit_transactions (user_id, amount, type, description)
  VALUES (p_user_id, p_amount, 'refund', p_description);
END
$$;

-- ---------------------------------------------------------------------------------------------------------------
-- B2B tables (005-010, 014-019, 021, 022). No RLS on any of them (P-2).

CREATE TABLE public.stores (
  id uuid PRIMARY KEY DEFAULT public.uuid_generate_v7(),
  shop_domain text NOT NULL UNIQUE,
  access_token_encrypted text,
  billing_mode text NOT NULL DEFAULT 'absorb_mode' CHECK (billing_mode IN ('absorb_mode', 'resell_mode')),
  retail_credit_price numeric,
  subscription_tier text,
  subscription_id text,
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
  onboarding_completed boolean NOT NULL DEFAULT false,
  created_at timestamptz DEFAULT now(),
  updated_at timestamptz DEFAULT now(),
  paddle_customer_id text,
  subscription_status text,
  subscription_current_period_end timestamptz,
  shopify_product_id text,
  shopify_variant_id text,
  is_churn_risk boolean NOT NULL DEFAULT false,
  churn_flagged_at timestamptz,
  owner_user_id uuid REFERENCES auth.users (id) ON DELETE SET NULL
);

CREATE INDEX idx_stores_paddle_customer_id ON public.stores (paddle_customer_id);
CREATE INDEX idx_stores_subscription_status ON public.stores (subscription_status);
CREATE INDEX idx_stores_shopify_product_id ON public.stores (shopify_product_id);
CREATE INDEX idx_stores_owner_user_id ON public.stores (owner_user_id);
CREATE INDEX idx_stores_domain_covering ON public.stores (shop_domain)
  INCLUDE (id, status, billing_mode, subscription_tier);

CREATE TABLE public.store_api_keys (
  id uuid PRIMARY KEY DEFAULT public.uuid_generate_v7(),
  store_id uuid NOT NULL REFERENCES public.stores (id) ON DELETE CASCADE,
  key_hash text NOT NULL,
  allowed_domains text[] NOT NULL DEFAULT '{}',
  is_active boolean NOT NULL DEFAULT true,
  created_at timestamptz DEFAULT now(),
  key_prefix text,
  CONSTRAINT store_api_keys_key_hash_sha256_chk CHECK (key_hash ~ '^[a-f0-9]{64}$')
);

CREATE INDEX idx_store_api_keys_store_id ON public.store_api_keys (store_id);
CREATE INDEX idx_store_api_keys_hash_covering ON public.store_api_keys (key_hash) INCLUDE (store_id, is_active);

CREATE TABLE public.store_credits (
  id uuid PRIMARY KEY DEFAULT public.uuid_generate_v7(),
  store_id uuid NOT NULL REFERENCES public.stores (id) ON DELETE CASCADE,
  balance integer NOT NULL DEFAULT 0,
  total_purchased integer NOT NULL DEFAULT 0,
  total_spent integer NOT NULL DEFAULT 0,
  updated_at timestamptz DEFAULT now(),
  UNIQUE (store_id),
  CONSTRAINT chk_store_credits_balance CHECK (balance >= 0)
);

-- B2B history, store and shopper movements alike. 014: one row per (store, request_id, type); NULL request ids are
-- not constrained.
CREATE TABLE public.store_credit_transactions (
  id uuid PRIMARY KEY DEFAULT public.uuid_generate_v7(),
  store_id uuid NOT NULL REFERENCES public.stores (id) ON DELETE CASCADE,
  amount integer NOT NULL,
  type text NOT NULL CHECK (type IN ('deduction', 'refund', 'purchase', 'subscription', 'overage')),
  request_id text,
  description text,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT unique_credit_transaction_request UNIQUE (store_id, request_id, type)
);

CREATE INDEX idx_store_credit_transactions_store_id ON public.store_credit_transactions (store_id);
CREATE INDEX idx_store_credit_transactions_request_lookup ON public.store_credit_transactions (store_id, request_id, type);
CREATE INDEX idx_store_credit_transactions_created_at_brin ON public.store_credit_transactions USING brin (created_at);

CREATE TABLE public.store_shopper_credits (
  id uuid PRIMARY KEY DEFAULT public.uuid_generate_v7(),
  store_id uuid NOT NULL REFERENCES public.stores (id) ON DELETE CASCADE,
  shopper_email text NOT NULL,
  balance integer NOT NULL DEFAULT 0,
  total_purchased integer NOT NULL DEFAULT 0,
  total_spent integer NOT NULL DEFAULT 0,
  created_at timestamptz DEFAULT now(),
  updated_at timestamptz DEFAULT now(),
  UNIQUE (store_id, shopper_email),
  CONSTRAINT chk_store_shopper_credits_balance CHECK (balance >= 0)
);

CREATE INDEX idx_store_shopper_credits_store_email ON public.store_shopper_credits (store_id, shopper_email);

-- The Shopify order id is the idempotency key, across all stores.
CREATE TABLE public.store_shopper_purchases (
  id uuid PRIMARY KEY DEFAULT public.uuid_generate_v7(),
  store_id uuid NOT NULL REFERENCES public.stores (id) ON DELETE CASCADE,
  shopper_email text NOT NULL,
  shopify_order_id text NOT NULL UNIQUE,
  credits_purchased integer NOT NULL,
  amount_paid numeric NOT NULL,
  currency text NOT NULL DEFAULT 'USD',
  created_at timestamptz DEFAULT now()
);

CREATE INDEX idx_store_shopper_purchases_store_id ON public.store_shopper_purchases (store_id);

-- 006 + 019: no updated_at, no metadata column (the create route writes one anyway: BUG-14).
CREATE TABLE public.store_generation_sessions (
  id uuid PRIMARY KEY DEFAULT public.uuid_generate_v7(),
  store_id uuid NOT NULL REFERENCES public.stores (id) ON DELETE CASCADE,
  shopper_email text,
  status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'processing', 'completed', 'failed')),
  model_image_url text NOT NULL,
  outfit_image_url text,
  prompt_system text NOT NULL,
  prompt_user text,
  generated_image_url text,
  credits_used integer NOT NULL DEFAULT 1,
  error_message text,
  processing_time_ms integer,
  request_id text,
  created_at timestamptz NOT NULL DEFAULT now(),
  completed_at timestamptz,
  input_tokens integer,
  output_tokens integer,
  estimated_cost_usd numeric(10, 6)
) WITH (autovacuum_vacuum_scale_factor = 0.05, autovacuum_analyze_scale_factor = 0.02);

CREATE INDEX idx_store_generation_sessions_store_id ON public.store_generation_sessions (store_id);
CREATE INDEX idx_store_generation_sessions_created_at ON public.store_generation_sessions (created_at DESC);
CREATE INDEX idx_store_generation_sessions_active ON public.store_generation_sessions (status, created_at DESC)
  WHERE status IN ('queued', 'processing');
CREATE INDEX idx_store_generation_sessions_store_created ON public.store_generation_sessions (store_id, created_at DESC);
CREATE INDEX idx_store_generation_sessions_shopper ON public.store_generation_sessions (store_id, shopper_email)
  WHERE shopper_email IS NOT NULL;

CREATE TABLE public.store_analytics_events (
  id uuid PRIMARY KEY DEFAULT public.uuid_generate_v7(),
  store_id uuid NOT NULL REFERENCES public.stores (id) ON DELETE CASCADE,
  event_type text NOT NULL,
  shopper_email text,
  metadata jsonb DEFAULT '{}'::jsonb,
  created_at timestamptz NOT NULL DEFAULT now()
) WITH (autovacuum_vacuum_scale_factor = 0.1, autovacuum_analyze_scale_factor = 0.05);

CREATE INDEX idx_store_analytics_events_store_id ON public.store_analytics_events (store_id);
CREATE INDEX idx_store_analytics_events_type_created ON public.store_analytics_events (event_type, created_at);

CREATE TABLE public.billing_webhook_events (
  id uuid PRIMARY KEY DEFAULT public.uuid_generate_v7(),
  provider text NOT NULL CHECK (provider IN ('paddle')),
  event_id text NOT NULL,
  event_type text NOT NULL,
  request_id text,
  store_id uuid REFERENCES public.stores (id) ON DELETE SET NULL,
  payload jsonb NOT NULL,
  processed_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (provider, event_id)
);

CREATE INDEX idx_billing_webhook_events_store_id ON public.billing_webhook_events (store_id);

CREATE TRIGGER update_stores_updated_at BEFORE UPDATE ON public.stores
  FOR EACH ROW EXECUTE FUNCTION public.update_updated_at_column();
CREATE TRIGGER update_store_credits_updated_at BEFORE UPDATE ON public.store_credits
  FOR EACH ROW EXECUTE FUNCTION public.update_updated_at_column();
CREATE TRIGGER update_store_shopper_credits_updated_at BEFORE UPDATE ON public.store_shopper_credits
  FOR EACH ROW EXECUTE FUNCTION public.update_updated_at_column();

-- 005: every new store gets an empty pool. AFTER INSERT only: an upsert that hits an existing shop_domain (reinstall)
-- keeps the old pool.
CREATE FUNCTION public.handle_new_store() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
AS $$
BEGIN
  INSERT INTO public.store_credits (store_id, balance, total_purchased, total_spent) VALUES (NEW.id, 0, 0, 0);
  RETURN NEW;
END
$$;

CREATE TRIGGER on_store_created AFTER INSERT ON public.stores
  FOR EACH ROW EXECUTE FUNCTION public.handle_new_store();

-- ---------------------------------------------------------------------------------------------------------------
-- B2B credit RPCs, final definitions (005, 014, 016, 011). All SECURITY INVOKER; the platform calls them with the
-- service role.

-- FALSE when short. A second deduction with the same (store, request_id) breaks 014's unique constraint: the call
-- raises and everything it did rolls back.
CREATE FUNCTION public.deduct_store_credits(p_store_id uuid, p_amount integer, p_request_id text,
                                            p_description text DEFAULT 'Generation credit deduction')
RETURNS boolean
LANGUAGE plpgsql
AS $$
DECLARE
  v_balance integer;
BEGIN
  IF p_amount IS NULL OR p_amount <= 0 THEN
    RAISE EXCEPTION 'Amount must be a positive integer, got: %', p_amount;
  END IF;

  SELECT sc.balance INTO v_balance FROM public.store_credits sc WHERE sc.store_id = p_store_id FOR UPDATE;
  IF v_balance IS NULL THEN
    RAISE EXCEPTION 'Store credits not found for store_id: %', p_store_id;
  END IF;
  IF v_balance < p_amount THEN
    RETURN false;
  END IF;

  UPDATE public.store_credits
  SET balance = balance - p_amount, total_spent = total_spent + p_amount
  WHERE store_id = p_store_id;

  INSERT INTO public.store_credit_transactions (store_id, amount, type, request_id, description)
  VALUES (p_store_id, -p_amount, 'deduction', p_request_id, p_description);
  RETURN true;
END
$$;

-- p_request_id has no default: required. No check that the store or a deduction exists; a second refund with the
-- same request id raises (unique constraint).
CREATE FUNCTION public.refund_store_credits(p_store_id uuid, p_amount integer, p_request_id text,
                                            p_description text DEFAULT 'Generation failed - refund')
RETURNS void
LANGUAGE plpgsql
AS $$
BEGIN
  IF p_amount IS NULL OR p_amount <= 0 THEN
    RAISE EXCEPTION 'Amount must be a positive integer, got: %', p_amount;
  END IF;

  UPDATE public.store_credits
  SET balance = balance + p_amount, total_spent = total_spent - p_amount
  WHERE store_id = p_store_id;

  INSERT INTO public.store_credit_transactions (store_id, amount, type, request_id, description)
  VALUES (p_store_id, p_amount, 'refund', p_request_id, p_description);
END
$$;

-- 014: idempotent by (store, request_id, type), checked before the row lock (two concurrent calls with one request id:
-- the second raises on the unique constraint instead of returning). A NULL request id is never deduplicated.
CREATE FUNCTION public.add_store_credits(p_store_id uuid, p_amount integer, p_type text, p_request_id text,
                                         p_description text DEFAULT 'Store credit purchase')
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
  v_balance integer;
BEGIN
  IF p_amount <= 0 THEN
    RAISE EXCEPTION 'Credit amount must be positive';
  END IF;
  IF p_type NOT IN ('purchase', 'subscription') THEN
    RAISE EXCEPTION 'Unsupported credit transaction type: %', p_type;
  END IF;

  IF EXISTS (SELECT 1 FROM public.store_credit_transactions t
             WHERE t.store_id = p_store_id AND t.request_id = p_request_id AND t.type = p_type) THEN
    RETURN;
  END IF;

  SELECT sc.balance INTO v_balance FROM public.store_credits sc WHERE sc.store_id = p_store_id FOR UPDATE;
  IF v_balance IS NULL THEN
    RAISE EXCEPTION 'Store credits not found for store_id: %', p_store_id;
  END IF;

  UPDATE public.store_credits
  SET balance = balance + p_amount, total_purchased = total_purchased + p_amount
  WHERE store_id = p_store_id;

  INSERT INTO public.store_credit_transactions (store_id, amount, type, request_id, description)
  VALUES (p_store_id, p_amount, p_type, p_request_id, p_description);
END
$$;

-- 016: the email is matched lower(trim()); a missing shopper row is FALSE, like a short balance. The history row
-- carries the plain email in its description (P-4).
CREATE FUNCTION public.deduct_store_shopper_credits(p_store_id uuid, p_shopper_email text, p_amount integer,
                                                    p_request_id text,
                                                    p_description text DEFAULT 'B2B shopper generation')
RETURNS boolean
LANGUAGE plpgsql
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

  SELECT c.balance INTO v_balance
  FROM public.store_shopper_credits c
  WHERE c.store_id = p_store_id AND c.shopper_email = v_email
  FOR UPDATE;
  IF v_balance IS NULL OR v_balance < p_amount THEN
    RETURN false;
  END IF;

  UPDATE public.store_shopper_credits
  SET balance = balance - p_amount, total_spent = total_spent + p_amount
  WHERE store_id = p_store_id AND shopper_email = v_email;

  INSERT INTO public.store_credit_transactions (store_id, amount, type, request_id, description)
  VALUES (p_store_id, -p_amount, 'deduction', p_request_id, concat(p_description, ' (shopper=', v_email, ')'));
  RETURN true;
END
$$;

-- 016: raises when the shopper row is missing (013 created it instead).
CREATE FUNCTION public.refund_store_shopper_credits(p_store_id uuid, p_shopper_email text, p_amount integer,
                                                    p_request_id text,
                                                    p_description text DEFAULT 'B2B shopper generation failed - refund')
RETURNS void
LANGUAGE plpgsql
AS $$
DECLARE
  v_email text;
BEGIN
  IF p_amount <= 0 THEN
    RAISE EXCEPTION 'Refund amount must be positive';
  END IF;
  v_email := lower(trim(p_shopper_email));
  IF v_email = '' THEN
    RAISE EXCEPTION 'Shopper email is required';
  END IF;

  UPDATE public.store_shopper_credits
  SET balance = balance + p_amount, total_spent = greatest(total_spent - p_amount, 0)
  WHERE store_id = p_store_id AND shopper_email = v_email;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'Shopper credits not found for store_id: %, shopper_email: %', p_store_id, v_email;
  END IF;

  INSERT INTO public.store_credit_transactions (store_id, amount, type, request_id, description)
  VALUES (p_store_id, p_amount, 'refund', p_request_id, concat(p_description, ' (shopper=', v_email, ')'));
END
$$;

-- 011: Shopify order -> credits move from the store pool to the shopper, both legs in this one transaction.
-- Answers 'duplicate' (order already recorded, nothing moves), 'insufficient' (store pool short, nothing moves) or
-- 'processed'. The store leg is a deduct_store_credits 'deduction' row keyed coalesce(p_request_id, order id).
-- The email is stored as given (NOT lower-cased, unlike the 016 lookups).
CREATE FUNCTION public.process_store_shopper_purchase(p_store_id uuid, p_shopper_email text, p_shopify_order_id text,
                                                      p_credits_purchased integer, p_amount_paid numeric,
                                                      p_currency text DEFAULT 'USD', p_request_id text DEFAULT NULL)
RETURNS TABLE (status text, purchase_id uuid, store_id uuid, shopper_email text, shopify_order_id text,
               credits_purchased integer, amount_paid numeric, currency text)
LANGUAGE plpgsql
AS $$
-- The output columns share names with table columns. The deployed 011 body leaves those references unqualified, and
-- stock PL/pgSQL (variable_conflict = error) refuses them: on Postgres 15 the real RPC raises `column reference
-- "shopify_order_id" is ambiguous` on every call. The next line resolves them to the columns, which gives the
-- behaviour original-system.md describes; createPlatformDatabase({ shopperPurchaseRpc: 'as-deployed' }) removes it
-- to reproduce the deployed failure.
#variable_conflict use_column
DECLARE
  v_request_id text := coalesce(p_request_id, p_shopify_order_id);
  v_found public.store_shopper_purchases%ROWTYPE;
  v_new public.store_shopper_purchases%ROWTYPE;
BEGIN
  IF p_credits_purchased <= 0 THEN
    RAISE EXCEPTION 'Credits purchased must be positive';
  END IF;
  IF p_shopper_email IS NULL OR length(trim(p_shopper_email)) = 0 THEN
    RAISE EXCEPTION 'Shopper email is required';
  END IF;

  SELECT * INTO v_found FROM public.store_shopper_purchases WHERE shopify_order_id = p_shopify_order_id;
  IF FOUND THEN
    RETURN QUERY SELECT 'duplicate'::text, v_found.id, v_found.store_id, v_found.shopper_email,
                        v_found.shopify_order_id, v_found.credits_purchased, v_found.amount_paid, v_found.currency;
    RETURN;
  END IF;

  IF NOT public.deduct_store_credits(p_store_id, p_credits_purchased, v_request_id,
                                     format('Shopper credit purchase for order %s', p_shopify_order_id)) THEN
    RETURN QUERY SELECT 'insufficient'::text, NULL::uuid, p_store_id, p_shopper_email, p_shopify_order_id,
                        p_credits_purchased, p_amount_paid, coalesce(p_currency, 'USD');
    RETURN;
  END IF;

  INSERT INTO public.store_shopper_purchases (store_id, shopper_email, shopify_order_id, credits_purchased,
                                              amount_paid, currency)
  VALUES (p_store_id, p_shopper_email, p_shopify_order_id, p_credits_purchased, p_amount_paid,
          coalesce(p_currency, 'USD'))
  ON CONFLICT (shopify_order_id) DO NOTHING
  RETURNING * INTO v_new;

  IF NOT FOUND THEN
    -- Another call recorded the order between our check and our insert: give the store its credits back.
    PERFORM public.refund_store_credits(p_store_id, p_credits_purchased, v_request_id,
                                        format('Race-condition refund for order %s', p_shopify_order_id));
    SELECT * INTO v_found FROM public.store_shopper_purchases WHERE shopify_order_id = p_shopify_order_id;
    RETURN QUERY SELECT 'duplicate'::text, v_found.id, v_found.store_id, v_found.shopper_email,
                        v_found.shopify_order_id, v_found.credits_purchased, v_found.amount_paid, v_found.currency;
    RETURN;
  END IF;

  INSERT INTO public.store_shopper_credits AS c (store_id, shopper_email, balance, total_purchased, total_spent)
  VALUES (p_store_id, p_shopper_email, p_credits_purchased, p_credits_purchased, 0)
  ON CONFLICT (store_id, shopper_email) DO UPDATE
  SET balance = c.balance + excluded.balance,
      total_purchased = c.total_purchased + excluded.total_purchased,
      updated_at = now();

  RETURN QUERY SELECT 'processed'::text, v_new.id, v_new.store_id, v_new.shopper_email, v_new.shopify_order_id,
                      v_new.credits_purchased, v_new.amount_paid, v_new.currency;
END
$$;

-- ---------------------------------------------------------------------------------------------------------------
-- 022 aggregation RPCs (plain SQL, STABLE).

CREATE FUNCTION public.get_user_generation_stats(p_user_id uuid)
RETURNS TABLE (total bigint, completed bigint, failed bigint)
LANGUAGE sql STABLE
AS $$
  SELECT count(*), count(*) FILTER (WHERE g.status = 'completed'), count(*) FILTER (WHERE g.status = 'failed')
  FROM public.generation_sessions g WHERE g.user_id = p_user_id
$$;

CREATE FUNCTION public.get_processing_metrics()
RETURNS TABLE (avg_ms numeric, min_ms integer, max_ms integer, total bigint)
LANGUAGE sql STABLE
AS $$
  SELECT round(avg(g.processing_time_ms)::numeric, 0), min(g.processing_time_ms), max(g.processing_time_ms), count(*)
  FROM public.generation_sessions g WHERE g.status = 'completed' AND g.processing_time_ms IS NOT NULL
$$;

CREATE FUNCTION public.get_store_generation_counts()
RETURNS TABLE (store_id uuid, total bigint, completed bigint, failed bigint)
LANGUAGE sql STABLE
AS $$
  SELECT s.store_id, count(*), count(*) FILTER (WHERE s.status = 'completed'), count(*) FILTER (WHERE s.status = 'failed')
  FROM public.store_generation_sessions s GROUP BY s.store_id
$$;

CREATE FUNCTION public.get_generation_status_counts()
RETURNS TABLE (status text, count bigint)
LANGUAGE sql STABLE
AS $$
  SELECT g.status, count(*) FROM public.generation_sessions g GROUP BY g.status
$$;

-- ---------------------------------------------------------------------------------------------------------------
-- Row level security as the migrations define it (002, 003, 004). Only these tables have it; the B2B tables do not.
-- The "service role" policies test the JWT claim; the real service_role also has BYPASSRLS.

ALTER TABLE public.users ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.user_credits ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.credit_transactions ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.generation_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.analytics_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.roles ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.permissions ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.role_permissions ENABLE ROW LEVEL SECURITY;
ALTER TABLE public.user_roles ENABLE ROW LEVEL SECURITY;

CREATE POLICY "Users can view own profile" ON public.users FOR SELECT USING (auth.uid() = id);
CREATE POLICY "Users can update own profile" ON public.users FOR UPDATE
  USING (auth.uid() = id) WITH CHECK (auth.uid() = id);
CREATE POLICY "Service role has full access to users" ON public.users FOR ALL
  USING (auth.jwt() ->> 'role' = 'service_role');

CREATE POLICY "Users can view own credits" ON public.user_credits FOR SELECT USING (auth.uid() = user_id);
CREATE POLICY "Service role has full access to credits" ON public.user_credits FOR ALL
  USING (auth.jwt() ->> 'role' = 'service_role');
-- 004: lets the SECURITY INVOKER RPCs run with the user's JWT, and lets any user set their own balance (P-1).
CREATE POLICY "Users can update own credits" ON public.user_credits FOR UPDATE
  USING (auth.uid() = user_id) WITH CHECK (auth.uid() = user_id);

CREATE POLICY "Users can view own transactions" ON public.credit_transactions FOR SELECT USING (auth.uid() = user_id);
CREATE POLICY "Service role has full access to transactions" ON public.credit_transactions FOR ALL
  USING (auth.jwt() ->> 'role' = 'service_role');
CREATE POLICY "Users can insert own transactions" ON public.credit_transactions FOR INSERT
  WITH CHECK (auth.uid() = user_id);

CREATE POLICY "Users can view own generation sessions" ON public.generation_sessions FOR SELECT
  USING (auth.uid() = user_id);
CREATE POLICY "Users can create own generation sessions" ON public.generation_sessions FOR INSERT
  WITH CHECK (auth.uid() = user_id);
CREATE POLICY "Users can update own generation sessions" ON public.generation_sessions FOR UPDATE
  USING (auth.uid() = user_id) WITH CHECK (auth.uid() = user_id);
CREATE POLICY "Service role has full access to generation sessions" ON public.generation_sessions FOR ALL
  USING (auth.jwt() ->> 'role' = 'service_role');

-- No INSERT policy for users: the B2C route's `generation_started` insert (user JWT) is refused.
CREATE POLICY "Users can view own analytics events" ON public.analytics_events FOR SELECT USING (auth.uid() = user_id);
CREATE POLICY "Service role has full access to analytics" ON public.analytics_events FOR ALL
  USING (auth.jwt() ->> 'role' = 'service_role');
CREATE POLICY "Admin can view all analytics" ON public.analytics_events FOR SELECT
  USING (auth.jwt() ->> 'role' = 'service_role' OR (auth.jwt() -> 'user_metadata' ->> 'role') = 'admin');

CREATE POLICY "Anyone can view roles" ON public.roles FOR SELECT USING (true);
CREATE POLICY "Only admins can insert roles" ON public.roles FOR INSERT
  WITH CHECK (public.user_has_permission(auth.uid(), 'roles:manage'));
CREATE POLICY "Only admins can update roles" ON public.roles FOR UPDATE
  USING (public.user_has_permission(auth.uid(), 'roles:manage'));
CREATE POLICY "Only admins can delete roles" ON public.roles FOR DELETE
  USING (public.user_has_permission(auth.uid(), 'roles:manage'));
CREATE POLICY "Anyone can view permissions" ON public.permissions FOR SELECT USING (true);
CREATE POLICY "Only admins can insert permissions" ON public.permissions FOR INSERT
  WITH CHECK (public.user_has_permission(auth.uid(), 'roles:manage'));
CREATE POLICY "Only admins can update permissions" ON public.permissions FOR UPDATE
  USING (public.user_has_permission(auth.uid(), 'roles:manage'));
CREATE POLICY "Only admins can delete permissions" ON public.permissions FOR DELETE
  USING (public.user_has_permission(auth.uid(), 'roles:manage'));
CREATE POLICY "Anyone can view role_permissions" ON public.role_permissions FOR SELECT USING (true);
CREATE POLICY "Only admins can insert role_permissions" ON public.role_permissions FOR INSERT
  WITH CHECK (public.user_has_permission(auth.uid(), 'roles:manage'));
CREATE POLICY "Only admins can delete role_permissions" ON public.role_permissions FOR DELETE
  USING (public.user_has_permission(auth.uid(), 'roles:manage'));
CREATE POLICY "Users can view their own roles" ON public.user_roles FOR SELECT
  USING (user_id = auth.uid() OR public.user_has_permission(auth.uid(), 'roles:manage'));
CREATE POLICY "Only admins can assign roles" ON public.user_roles FOR INSERT
  WITH CHECK (public.user_has_permission(auth.uid(), 'roles:manage'));
CREATE POLICY "Only admins can remove roles" ON public.user_roles FOR DELETE
  USING (public.user_has_permission(auth.uid(), 'roles:manage'));

-- ---------------------------------------------------------------------------------------------------------------
-- Realtime (001, 006): the clients watch status changes of both session tables.
ALTER PUBLICATION supabase_realtime ADD TABLE public.generation_sessions, public.store_generation_sessions;
