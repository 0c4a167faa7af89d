#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# First Let's Encrypt certificate for DOMAIN, before nginx can start (its config needs the files). Uses certbot in
# standalone mode on port 80, so nothing else may listen there yet. Renewals afterwards go through nginx's ACME
# webroot (certbot service + scripts/renew-certs.sh).
set -euo pipefail
. "$(dirname "$0")/lib-compose.sh"

domain="$(env_value DOMAIN)"
email="$(env_value CERTBOT_EMAIL)"
[ -n "$domain" ] || die "DOMAIN is empty in $WEARON_DIR/.env"
[ -n "$email" ] || die "CERTBOT_EMAIL is empty in $WEARON_DIR/.env"

if compose run --rm --no-deps --entrypoint sh certbot -c "test -s /etc/letsencrypt/live/$domain/fullchain.pem"; then
  log "certificate for $domain already present"
  exit 0
fi

log "requesting a certificate for $domain (standalone, port 80)"
compose stop nginx >/dev/null 2>&1 || true
compose run --rm --no-deps -p 80:80 --entrypoint certbot certbot \
  certonly --standalone --non-interactive --agree-tos --email "$email" -d "$domain" ${CERTBOT_STAGING:+--staging}
log "certificate issued"
