#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Deploy (or roll back to) one image tag on the server: scripts/deploy.sh <tag>.
# Records the tag it replaces in .env (WEARON_PREVIOUS_TAG), rolls the worker without dropping queued work, brings
# every other service to its declared state with `docker compose up -d --wait`, applies changed nginx/monitoring
# config (reload or restart), then checks readiness through nginx.
set -euo pipefail
. "$(dirname "$0")/lib-compose.sh"

tag="${1:?usage: scripts/deploy.sh <image tag>}"
current="$(env_value WEARON_TAG)"
domain="$(env_value DOMAIN)"

compose config -q || die "docker-compose.prod.yml does not validate with this .env"
if [ "$current" != "$tag" ]; then
  set_env_value WEARON_PREVIOUS_TAG "$current"
  set_env_value WEARON_TAG "$tag"
fi
log "deploying tag $tag (previous: ${current:-none})"

compose pull --quiet
"$(dirname "$0")/roll-worker.sh"
compose up -d --wait --wait-timeout "${DEPLOY_WAIT_SECONDS:-300}" --remove-orphans
apply_changed_config apply

# Readiness through the public path (nginx, TLS), resolved to this host.
for _ in 1 2 3 4 5 6; do
  if body="$(curl -fsS --max-time 5 --resolve "$domain:443:127.0.0.1" "https://$domain/health")"; then
    log "ready: $body"
    exit 0
  fi
  sleep 5
done
log "readiness check failed: https://$domain/health"
curl -sS --max-time 5 --resolve "$domain:443:127.0.0.1" "https://$domain/health" || true
exit 1
