#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# First deployment on a fresh VPS (Debian/Ubuntu with Docker Engine + compose plugin): scripts/first-deploy.sh <domain>
# Idempotent: re-running it keeps an existing .env and certificate and only fills what is missing.
set -euo pipefail
src_dir="$(cd "$(dirname "$0")/.." && pwd)"
. "$(dirname "$0")/lib-compose.sh"

domain="${1:?usage: scripts/first-deploy.sh <domain>}"

log "[1/7] checking tools"
command -v docker >/dev/null || die "docker is not installed"
docker compose version >/dev/null 2>&1 || die "the docker compose plugin (v2) is not installed"
command -v openssl >/dev/null || die "openssl is not installed"
command -v curl >/dev/null || die "curl is not installed"

log "[2/7] installing the stack files into $WEARON_DIR"
mkdir -p "$WEARON_DIR"
if [ "$(realpath "$src_dir")" != "$(realpath "$WEARON_DIR")" ]; then
  cp -r "$src_dir/docker-compose.prod.yml" "$src_dir/.env.example" "$src_dir/nginx" "$src_dir/monitoring" "$src_dir/scripts" "$WEARON_DIR/"
fi
chmod +x "$WEARON_DIR"/scripts/*.sh

log "[3/7] preparing .env"
if [ ! -f "$WEARON_DIR/.env" ]; then
  install -m 600 "$WEARON_DIR/.env.example" "$WEARON_DIR/.env"
fi
chmod 600 "$WEARON_DIR/.env"
set_env_value DOMAIN "$domain"
# Generated secrets: only where empty, never overwritten.
for name in API_TOKEN URL_SIGNING_SECRET REDIS_PASSWORD GF_SECURITY_ADMIN_PASSWORD; do
  [ -n "$(env_value "$name")" ] || set_env_value "$name" "$(openssl rand -hex 24)"
done
missing=""
for name in DOMAIN CERTBOT_EMAIL OPENAI_API_KEY SMTP_HOST SMTP_FROM ALERT_EMAIL_TO WEARON_IMAGE; do
  [ -n "$(env_value "$name")" ] || missing="$missing $name"
done
case "$(env_value WEARON_IMAGE)" in *OWNER*) missing="$missing WEARON_IMAGE(still the placeholder)" ;; esac
[ -z "$missing" ] || die "fill these in $WEARON_DIR/.env, then re-run:$missing"
compose config -q || die "docker-compose.prod.yml does not validate with this .env"

log "[4/7] pulling images"
compose pull --quiet

log "[5/7] TLS certificate"
"$WEARON_DIR/scripts/init-ssl.sh"

log "[6/7] starting the stack"
compose up -d --wait --wait-timeout 300
apply_changed_config record_only

log "[7/7] certificate renewal cron and readiness"
cron_line="17 3 * * * $WEARON_DIR/scripts/renew-certs.sh >> /var/log/wearon-cert-renewal.log 2>&1"
( crontab -l 2>/dev/null | grep -vF "$WEARON_DIR/scripts/renew-certs.sh" || true; echo "$cron_line" ) | crontab -
curl -fsS --max-time 5 --resolve "$domain:443:127.0.0.1" "https://$domain/health" || die "https://$domain/health is not ready (see: docker compose logs worker)"
echo
log "done: https://$domain/health  https://$domain/grafana/ (admin password: GF_SECURITY_ADMIN_PASSWORD in $WEARON_DIR/.env)"
