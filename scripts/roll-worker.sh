#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Rolling update of the worker: start new containers beside the old ones, wait until they are healthy, then stop the
# old ones with SIGTERM (they drain in-flight generations within SHUTDOWN_GRACE_MS, compose's stop_grace_period is
# longer). Queued work is never dropped: it waits in Redis, and anything a stopped worker held is re-driven from its
# processing list once its heartbeat expires (docs/operations.md, "Rolling update").
set -euo pipefail
. "$(dirname "$0")/lib-compose.sh"

timeout_s="${ROLL_TIMEOUT_SECONDS:-180}"
old_ids="$(compose ps -q worker || true)"
want="${WORKER_REPLICAS:-$(env_value WORKER_REPLICAS)}"
want="${want:-1}"

if [ -z "$old_ids" ]; then
  log "no worker running: starting $want"
  compose up -d --no-deps --wait --scale "worker=$want" worker
  exit 0
fi

old_count="$(printf '%s\n' "$old_ids" | wc -l)"
log "starting $want new worker(s) beside $old_count running"
compose up -d --no-deps --no-recreate --scale "worker=$((old_count + want))" worker

new_ids="$(compose ps -q worker | grep -vxF -f <(printf '%s\n' "$old_ids") || true)"
[ -n "$new_ids" ] || die "no new worker container was created"

deadline=$((SECONDS + timeout_s))
for id in $new_ids; do
  while :; do
    status="$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$id")"
    [ "$status" = healthy ] && break
    if [ "$status" = unhealthy ] || [ "$SECONDS" -ge "$deadline" ]; then
      log "new worker $id is $status: removing the new containers, the old ones keep running"
      for bad in $new_ids; do docker rm -f "$bad" >/dev/null; done
      docker logs --tail 50 "$id" 2>&1 || true
      exit 1
    fi
    sleep 2
  done
done
log "new worker(s) healthy; draining the old ones"

for id in $old_ids; do
  # SIGTERM, then compose's grace (45 s) before SIGKILL.
  docker stop -t 45 "$id" >/dev/null
  docker rm "$id" >/dev/null
done
log "rolled: $(compose ps -q worker | wc -l) worker(s) running"
