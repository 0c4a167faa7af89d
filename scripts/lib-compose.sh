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
