#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests (an Optuna study on PostgreSQL), in a folder of its own.
#   .ci/postgres.sh start DIR [--install]   initdb + start in DIR (created if missing); prints the SQLAlchemy
#                                           URL on stdout, logs on stderr; exit != 0 with the reason on failure
#   .ci/postgres.sh stop DIR                stop the server in DIR and remove DIR (quiet if none)
# --install: apt-get install postgresql (Debian) when no initdb/pg_ctl is found (CI runs as root).
# REWARDSOUP_PG_BINDIR=/path/bin: use the initdb/pg_ctl/postgres there (e.g. Homebrew) instead of searching.
# As root the server runs as the `postgres` user (initdb and postgres refuse root). It listens on 127.0.0.1 only,
# on a free port, with the socket in DIR; user/password/database are fixed, test-only values.
set -euo pipefail

PG_USER=rewardsoup PG_PASSWORD=rewardsoup PG_DB=rewardsoup_test

log() { echo "[postgres.sh] $*" >&2; }

find_bindir() {  # the folder holding initdb + pg_ctl + postgres: PATH first, then Debian's versioned folders
    local d
    if [ -n "${REWARDSOUP_PG_BINDIR:-}" ]; then
        d=$REWARDSOUP_PG_BINDIR
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then echo "$d"; return 0; fi
        log "REWARDSOUP_PG_BINDIR=$d holds no initdb/pg_ctl/postgres"; return 1
    fi
    if d=$(command -v pg_ctl 2>/dev/null) && d=$(dirname "$(readlink -f "$d")") && [ -x "$d/initdb" ]; then
        echo "$d"; return 0
    fi
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/postgres" ]; then echo "$d"; return 0; fi
    done
    return 1
}

install_postgres() {  # Debian: the server package, without the `main` cluster on 5432 that it would start
    [ "$(id -u)" = 0 ] || { log "not root: cannot apt-get install postgresql"; return 1; }
    command -v apt-get >/dev/null || { log "no apt-get: cannot install postgresql"; return 1; }
    if [ ! -e /etc/postgresql-common/createcluster.conf ]; then
        mkdir -p /etc/postgresql-common
        echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf
    fi
    log "apt-get install postgresql"
    export DEBIAN_FRONTEND=noninteractive
    timeout 300 apt-get update -qq >&2
    timeout 600 apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confold \
        postgresql >&2
}

as_owner() {  # run a server binary as the folder's owner (postgres when we are root)
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
    local dir=$1 install=${2:-} bin port
    [ -z "${REWARDSOUP_PG_BINDIR:-}" ] || install=""  # a given folder is used as is, never installed into
    bin=$(find_bindir) || { [ "$install" = --install ] && install_postgres && bin=$(find_bindir); } \
        || { log "no initdb/pg_ctl found (Debian: apt-get install postgresql)"; return 1; }
    if [ "$(id -u)" = 0 ]; then
        id postgres >/dev/null 2>&1 || { log "running as root and there is no 'postgres' user"; return 1; }
    fi
    mkdir -p "$dir"
    dir=$(readlink -f "$dir")
    [ ! -e "$dir/data" ] || { log "$dir/data exists: stop that server first"; return 1; }
    printf '%s\n' "$PG_PASSWORD" > "$dir/pwfile"
    [ "$(id -u)" != 0 ] || chown -R postgres: "$dir"
    chmod 700 "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -U "$PG_USER" --pwfile="$dir/pwfile" -E UTF8 --locale=C \
        --auth-local=trust --auth-host=scram-sha-256 >"$dir/initdb.log" 2>&1 \
        || { log "initdb failed: $(tail -n 3 "$dir/initdb.log" | tr '\n' ' ')"; return 1; }
    port=$(free_port)
    echo "$bin" > "$dir/bindir"  # before the start: `stop` finds pg_ctl even if the start timed out
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >&2 \
        || { log "server did not start: $(tail -n 3 "$dir/server.log" | tr '\n' ' ')"; return 1; }
    as_owner "$bin/createdb" -h "$dir" -p "$port" -U "$PG_USER" "$PG_DB" >&2 \
        || { log "createdb $PG_DB failed"; stop "$dir"; return 1; }
    log "$("$bin/pg_ctl" --version) on 127.0.0.1:$port (data in $dir/data)"
    echo "postgresql+psycopg://$PG_USER:$PG_PASSWORD@127.0.0.1:$port/$PG_DB"
}

stop() {
    local dir=$1
    [ -d "$dir" ] || return 0
    if [ -f "$dir/bindir" ] && [ -f "$dir/data/postmaster.pid" ]; then
        as_owner "$(cat "$dir/bindir")/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >&2 || log "pg_ctl stop failed"
    fi
    rm -rf "$dir"
}

case "${1:-}" in
    start) start "${2:?usage: postgres.sh start DIR [--install]}" "${3:-}" ;;
    stop) stop "${2:?usage: postgres.sh stop DIR}" ;;
    *) echo "usage: $0 start DIR [--install] | stop DIR" >&2; exit 2 ;;
esac
