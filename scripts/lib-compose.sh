# Sourced by the deploy scripts: one place for the stack directory and the compose command.
# shellcheck shell=bash
WEARON_DIR="${WEARON_DIR:-/opt/wearon}"
COMPOSE_FILE_NAME="docker-compose.prod.yml"

compose() {
  docker compose --project-directory "$WEARON_DIR" -f "$WEARON_DIR/$COMPOSE_FILE_NAME" --env-file "$WEARON_DIR/.env" "$@"
}

env_value() { # env_value NAME -> value from .env (last assignment wins), empty when absent
  sed -n "s/^$1=//p" "$WEARON_DIR/.env" | tail -n 1
}

set_env_value() { # set_env_value NAME VALUE: replace or append in .env, keeping everything else
  local name="$1" value="$2" tmp
  tmp="$(mktemp)"
  if grep -q "^$name=" "$WEARON_DIR/.env"; then
    # Value through the environment: awk -v would interpret backslash escapes in it.
    WEARON_SET_VALUE="$value" awk -v n="$name" 'BEGIN{FS="="} $1==n{print n "=" ENVIRON["WEARON_SET_VALUE"]; next} {print}' "$WEARON_DIR/.env" > "$tmp"
  else
    cat "$WEARON_DIR/.env" > "$tmp"
    printf '%s=%s\n' "$name" "$value" >> "$tmp"
  fi
  cat "$tmp" > "$WEARON_DIR/.env"   # keep the file's owner and mode (600)
  rm -f "$tmp"
}

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Bind-mounted config files do not restart their container when they change. After a deploy copied new stack files,
# apply what changed since the last deploy (checksums kept in .deployed-config.sha256):
#   nginx: re-render the templates (the image's own envsubst step), test, reload (no dropped connections)
#   prometheus: SIGHUP (reloads config and rules)
#   grafana, loki, alloy: restart (provisioning and these configs are read at start)
# `record_only` stores the checksums without applying anything (first deploy: everything just started).
CONFIG_SUMS_FILE=".deployed-config.sha256"

config_sum() { # config_sum <paths...> (relative to WEARON_DIR)
  (cd "$WEARON_DIR" && find "$@" -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}

apply_changed_config() { # apply_changed_config [record_only]
  local mode="${1:-apply}" sums="$WEARON_DIR/$CONFIG_SUMS_FILE" entry key paths now before
  : > "$sums.new"
  for entry in "nginx:nginx" "prometheus:monitoring/prometheus" "grafana:monitoring/grafana" "loki:monitoring/loki" "alloy:monitoring/alloy"; do
    key="${entry%%:*}"
    paths="${entry#*:}"
    now="$(config_sum "$paths")"
    before="$(sed -n "s/^$key //p" "$sums" 2>/dev/null || true)"
    printf '%s %s\n' "$key" "$now" >> "$sums.new"
    [ "$mode" = record_only ] && continue
    [ "$now" = "$before" ] && continue
    log "config of $key changed: applying"
    case "$key" in
      nginx) compose exec -T nginx sh -c '/docker-entrypoint.d/20-envsubst-on-templates.sh >/dev/null && nginx -t -q && nginx -s reload' ;;
      prometheus) compose kill -s SIGHUP prometheus ;;
      *) compose restart "$key" ;;
    esac
  done
  mv "$sums.new" "$sums"
}
