#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Daily from cron (installed by first-deploy.sh). Renews certificates due within 30 days through nginx's ACME webroot
# and reloads nginx so renewed certificates are served. Safe to run any time: renew is a no-op when nothing is due.
set -euo pipefail
. "$(dirname "$0")/lib-compose.sh"

compose exec -T certbot certbot renew --webroot -w /var/www/certbot --quiet
compose exec -T nginx nginx -t -q
compose exec -T nginx nginx -s reload
log "certificates checked, nginx reloaded"
