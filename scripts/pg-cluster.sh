#!/usr/bin/env bash
# A throwaway PostgreSQL 15 cluster: initdb in a temp dir, a free loopback
# port, run as a non-root user, removed on exit (also on failure).
# Source it and call pg_cluster_start; it exports WXRECON_TEST_PG_URL and
# WXRECON_TEST_PG_CTL (a script taking stop|start, for restart tests).

pg_cluster_bin() {
  local d
  for d in /usr/lib/postgresql/15/bin; do [ -x "$d/initdb" ] && { echo "$d"; return; }; done
  echo "pg-cluster: PostgreSQL 15 server binaries not found" >&2
  return 1
}

pg_cluster_free_port() {
  local port
  for port in $(seq 25432 25532); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
  done
  echo "pg-cluster: no free port in 25432-25532" >&2
  return 1
}

pg_cluster_start() {
  local bin port
  bin=$(pg_cluster_bin) || return 1
  port=$(pg_cluster_free_port) || return 1
  PG_CLUSTER_DIR=$(mktemp -d "${TMPDIR:-/tmp}/wxrecon-pg.XXXXXX")
  chmod 755 "$PG_CLUSTER_DIR"
  local run_as=""
  if [ "$(id -u)" -eq 0 ]; then
    # PostgreSQL refuses to run as root: use an unprivileged account.
    chown nobody "$PG_CLUSTER_DIR"
    run_as="runuser -u nobody --"
  fi
  cat >"$PG_CLUSTER_DIR/ctl" <<CTL
#!/usr/bin/env bash
# stop | start | status the throwaway cluster
case "\$1" in
  stop) exec $run_as "$bin/pg_ctl" -D "$PG_CLUSTER_DIR/data" -m fast -w stop ;;
  start) exec $run_as "$bin/pg_ctl" -D "$PG_CLUSTER_DIR/data" -l "$PG_CLUSTER_DIR/log" -w -t 60 start \
           -o "-p $port -k $PG_CLUSTER_DIR -c listen_addresses=127.0.0.1 -c max_connections=200" ;;
  *) exec $run_as "$bin/pg_ctl" -D "$PG_CLUSTER_DIR/data" status ;;
esac
CTL
  chmod 755 "$PG_CLUSTER_DIR/ctl"
  $run_as "$bin/initdb" -D "$PG_CLUSTER_DIR/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$PG_CLUSTER_DIR/initdb.log" 2>&1 \
    || { cat "$PG_CLUSTER_DIR/initdb.log" >&2; return 1; }
  "$PG_CLUSTER_DIR/ctl" start >/dev/null || { cat "$PG_CLUSTER_DIR/log" >&2; return 1; }
  export WXRECON_TEST_PG_URL="postgresql://postgres@127.0.0.1:$port/postgres"
  export WXRECON_TEST_PG_CTL="$PG_CLUSTER_DIR/ctl"
  export PG_CLUSTER_DIR PG_CLUSTER_PORT="$port" PG_CLUSTER_BIN="$bin"
  echo "pg-cluster: PostgreSQL 15 on 127.0.0.1:$port ($PG_CLUSTER_DIR)" >&2
}

pg_cluster_stop() {
  [ -n "${PG_CLUSTER_DIR:-}" ] && [ -d "$PG_CLUSTER_DIR" ] || return 0
  "$PG_CLUSTER_DIR/ctl" stop >/dev/null 2>&1 || true
  rm -rf "$PG_CLUSTER_DIR"
  PG_CLUSTER_DIR=""
}
