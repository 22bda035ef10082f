#!/usr/bin/env bash
# A real cluster on one machine, for trying the cluster path and for the `cluster` tests:
# PostgreSQL (Optuna storage and MLflow backend), an `mlflow server` with an artifact
# store, and a `ray start --head` with the job-submission dashboard. Loopback only.
#
#   deploy/local-cluster.sh up DIR     start everything under DIR, print the URLs as env lines
#   deploy/local-cluster.sh down DIR   stop everything started under DIR
#
# DIR should be short (Ray's socket paths must stay under 107 characters).
# Ports: PG_PORT (default 55432), MLFLOW_PORT (5055), RAY_PORT (6390), DASHBOARD_PORT (8275),
# AGENT_PORT (52375; the head's Ray agents use it and the next three, each worker node the
# next four). RAY_CPUS (2): the head's CPUs; RAY_WORKER_NODES (0) more nodes of
# RAY_WORKER_CPUS (1) each join it, so trials spread over several nodes.
set -euo pipefail

cmd=${1:?usage: $0 up|down DIR}
dir=$(realpath -m "${2:?usage: $0 up|down DIR}")
PG_PORT=${PG_PORT:-55432}
MLFLOW_PORT=${MLFLOW_PORT:-5055}
RAY_PORT=${RAY_PORT:-6390}
DASHBOARD_PORT=${DASHBOARD_PORT:-8275}
AGENT_PORT=${AGENT_PORT:-52375}  # Ray's default 52365 clashes with any other Ray here
VENV_BIN=${VENV_BIN:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin}
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)

as_postgres() {  # PostgreSQL refuses to run as root
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  for _ in $(seq "$limit"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  echo "local-cluster: $what did not come up in ${limit}s" >&2; return 1
}

stop_matching() {  # TERM every process whose command line names $1, KILL what is left
  pkill -TERM -f -- "$1" 2>/dev/null || true
  for _ in $(seq 10); do pgrep -f -- "$1" >/dev/null || return 0; sleep 1; done
  pkill -KILL -f -- "$1" 2>/dev/null || true
}

up() {
  mkdir -p "$dir/pg" "$dir/artifacts" "$dir/logs"
  chmod 777 "$dir" "$dir/logs"
  if [ "$(id -u)" = 0 ]; then chown postgres "$dir/pg"; fi
  as_postgres "$PG_BIN/initdb" -D "$dir/pg" -U paretotune --auth=trust >"$dir/logs/initdb.log"
  as_postgres "$PG_BIN/pg_ctl" -D "$dir/pg" -l "$dir/logs/postgres.log" -w \
    -o "-p $PG_PORT -k $dir/pg -c listen_addresses=127.0.0.1" start >/dev/null
  "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U paretotune optuna
  "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U paretotune mlflow
  local pg="postgresql+psycopg2://paretotune@127.0.0.1:$PG_PORT"

  # no GenAI job runners (six more processes on the same cores): runs need none
  MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false setsid nohup "$VENV_BIN/mlflow" server --backend-store-uri "$pg/mlflow" \
    --artifacts-destination "$dir/artifacts" --host 127.0.0.1 --port "$MLFLOW_PORT" \
    --workers 1 >"$dir/logs/mlflow.log" 2>&1 &
  echo $! >"$dir/mlflow.pid"

  # The cluster's processes (and so job drivers) use this venv, as a cluster image would.
  # `python -m paretotune.execution._loopback` is `ray` keeping every Ray server on
  # 127.0.0.1 (plain `ray start` swaps 127.0.0.1 for the host's IP and serves all
  # interfaces, unauthenticated with RAY_AUTH_MODE=disabled); see deploy/README.md.
  PATH="$VENV_BIN:$PATH" RAY_AUTH_MODE=disabled "$VENV_BIN/python" -m paretotune.execution._loopback \
    start --head --node-ip-address 127.0.0.1 \
    --port "$RAY_PORT" --temp-dir "$dir/ray" --dashboard-host 127.0.0.1 --dashboard-port "$DASHBOARD_PORT" \
    --dashboard-agent-listen-port "$AGENT_PORT" --dashboard-agent-grpc-port "$((AGENT_PORT + 1))" \
    --runtime-env-agent-port "$((AGENT_PORT + 2))" --metrics-export-port "$((AGENT_PORT + 3))" \
    --num-cpus "${RAY_CPUS:-2}" --disable-usage-stats >"$dir/logs/ray.log" 2>&1
  for node in $(seq "${RAY_WORKER_NODES:-0}"); do
    local ports=$((AGENT_PORT + 4 * node))
    PATH="$VENV_BIN:$PATH" RAY_AUTH_MODE=disabled "$VENV_BIN/python" -m paretotune.execution._loopback \
      start --address "127.0.0.1:$RAY_PORT" --node-ip-address 127.0.0.1 \
      --dashboard-agent-listen-port "$ports" --dashboard-agent-grpc-port "$((ports + 1))" \
      --runtime-env-agent-port "$((ports + 2))" --metrics-export-port "$((ports + 3))" \
      --num-cpus "${RAY_WORKER_CPUS:-1}" --disable-usage-stats >"$dir/logs/ray-worker-$node.log" 2>&1
  done

  wait_for 120 "mlflow server" curl -sf "http://127.0.0.1:$MLFLOW_PORT/health"
  wait_for 120 "ray dashboard" curl -sf "http://127.0.0.1:$DASHBOARD_PORT/api/version"
  echo "PARETOTUNE_STORAGE=$pg/optuna"
  echo "MLFLOW_TRACKING_URI=http://127.0.0.1:$MLFLOW_PORT"
  echo "RAY_DASHBOARD=http://127.0.0.1:$DASHBOARD_PORT"
  echo "RAY_ADDRESS=127.0.0.1:$RAY_PORT"
}

down() {
  # Only this cluster's Ray processes (they name its temp dir), not other Rays here.
  stop_matching "$dir/ray"
  if [ -f "$dir/mlflow.pid" ]; then  # the server runs in its own session: stop the group
    kill -TERM -- "-$(cat "$dir/mlflow.pid")" 2>/dev/null || true
    sleep 1
    kill -KILL -- "-$(cat "$dir/mlflow.pid")" 2>/dev/null || true
    rm -f "$dir/mlflow.pid"
  fi
  if [ -d "$dir/pg" ]; then
    as_postgres "$PG_BIN/pg_ctl" -D "$dir/pg" -m fast stop >/dev/null 2>&1 || true
  fi
}

case "$cmd" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down DIR" >&2; exit 2 ;;
esac
