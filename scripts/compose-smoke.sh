#!/usr/bin/env bash
# Compose smoke test: build, start exchange + bot, wait (bounded) until the bot has quoted AND filled
# and docker reports it healthy (its HEALTHCHECK calls /health), stop it with SIGTERM, check it shut down cleanly (exit code 0, `session.summary` with
# open_orders_at_exit == 0), and always clean up (down -v). Exit 0 only if all of that held.
#
#   scripts/compose-smoke.sh                 # SMOKE_TIMEOUT_S=240 by default
#   scripts/compose-smoke.sh sim-testnet     # the Bybit dialect server + the bot on config/bybit-testnet.toml
#                                            # (ccxt's own client, no keys, no internet); also waits for a hedge fill
#
# Uses `docker compose` when the plugin is present, else `docker-compose` (1.29+). Needs python3 on
# the host to read the JSON logs.
set -euo pipefail

cd "$(dirname "$0")/.."
TIMEOUT_S=${SMOKE_TIMEOUT_S:-240}
STOP_TIMEOUT_S=${SMOKE_STOP_TIMEOUT_S:-30}
HEALTH_TIMEOUT_S=${SMOKE_HEALTH_TIMEOUT_S:-90}
PROJECT=${SMOKE_PROJECT:-mmbotsmoke$$}
STACK=${1:-default}
case "$STACK" in
  default) SERVICES=(exchange bot); BOT=bot; PROFILE=(); EVENTS=(quote.updated order.filled) ;;
  sim-testnet) SERVICES=(exchange-bybit bot-sim-testnet); BOT=bot-sim-testnet; PROFILE=(--profile sim-testnet)
               EVENTS=(quote.updated order.filled hedge.filled) ;;
  *) echo "compose-smoke: unknown stack '$STACK' (default, sim-testnet)" >&2; exit 2 ;;
esac

if docker compose version >/dev/null 2>&1; then
  DC=(docker compose -p "$PROJECT" -f docker-compose.yml ${PROFILE[@]+"${PROFILE[@]}"})
elif command -v docker-compose >/dev/null 2>&1; then
  DC=(docker-compose -p "$PROJECT" -f docker-compose.yml ${PROFILE[@]+"${PROFILE[@]}"})
else
  echo "compose-smoke: neither 'docker compose' nor 'docker-compose' is installed" >&2
  exit 2
fi

log() { printf 'compose-smoke: %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

cleanup() {
  local rc=$?
  if [[ $rc -ne 0 && -n "${BOT_CID:-}" ]]; then
    log "last bot log lines:"
    docker logs --tail 20 "$BOT_CID" 2>&1 | sed 's/^/  /' >&2 || true
  fi
  "${DC[@]}" down -v --remove-orphans >/dev/null 2>&1 || log "warning: 'down -v' failed"
  exit "$rc"
}
trap cleanup EXIT

# Event names seen in a container's JSON log lines (non-JSON lines are skipped).
events_of() {
  docker logs "$1" 2>&1 | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        doc = json.loads(line)
    except ValueError:
        continue
    if isinstance(doc, dict) and "event" in doc:
        print(doc["event"])
'
}

log "building the image"
"${DC[@]}" build >/dev/null
log "starting ${SERVICES[*]} (stack $STACK, project $PROJECT)"
"${DC[@]}" up -d "${SERVICES[@]}"
BOT_CID=$("${DC[@]}" ps -q "$BOT")
[[ -n "$BOT_CID" ]] || fail "the bot container did not start"

log "waiting up to ${TIMEOUT_S}s for ${EVENTS[*]}"
deadline=$((SECONDS + TIMEOUT_S))
while :; do
  seen=$(events_of "$BOT_CID" | sort -u)
  missing=()
  for event in "${EVENTS[@]}"; do grep -qx "$event" <<<"$seen" || missing+=("$event"); done
  if (( ${#missing[@]} == 0 )); then
    log "the bot has ${EVENTS[*]}"
    break
  fi
  state=$(docker inspect -f '{{.State.Status}}' "$BOT_CID")
  [[ "$state" == "running" ]] || fail "the bot container is '$state' before ${missing[*]}"
  (( SECONDS < deadline )) || fail "no ${missing[*]} within ${TIMEOUT_S}s"
  sleep 2
done
# /health answers 200 once the book is synced and the bot quotes: docker's HEALTHCHECK must agree
log "waiting up to ${HEALTH_TIMEOUT_S}s for the container's HEALTHCHECK (GET /health) to report healthy"
deadline=$((SECONDS + HEALTH_TIMEOUT_S))
while :; do
  health=$(docker inspect -f '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' "$BOT_CID")
  [[ "$health" == "healthy" ]] && break
  [[ "$health" != "unhealthy" && "$health" != "none" ]] || fail "docker health of the bot: $health"
  (( SECONDS < deadline )) || fail "the bot is still '$health' after ${HEALTH_TIMEOUT_S}s"
  sleep 2
done
log "docker health of the bot: $health"

log "stopping the bot with SIGTERM (SIGKILL after ${STOP_TIMEOUT_S}s)"
"${DC[@]}" stop -t "$STOP_TIMEOUT_S" "$BOT" >/dev/null
exit_code=$(docker inspect -f '{{.State.ExitCode}}' "$BOT_CID")
summary=$(docker logs "$BOT_CID" 2>&1 | python3 -c '
import json, sys
last = None
for line in sys.stdin:
    try:
        doc = json.loads(line)
    except ValueError:
        continue
    if isinstance(doc, dict) and doc.get("event") == "session.summary":
        last = doc
print(json.dumps(last) if last else "")
')
[[ -n "$summary" ]] || fail "no session.summary in the bot's logs (exit code $exit_code)"
open_orders=$(python3 -c 'import json, sys; print(json.loads(sys.argv[1]).get("open_orders_at_exit", "missing"))' "$summary")
log "exit code $exit_code, open_orders_at_exit $open_orders"
[[ "$exit_code" == "0" ]] || fail "the bot exited with code $exit_code (137 = killed after the grace period)"
[[ "$open_orders" == "0" ]] || fail "open_orders_at_exit is $open_orders, not 0"
log "PASS"
