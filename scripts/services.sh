#!/usr/bin/env bash
# Real services for weft's test suite, on loopback only: Redis, a three-master Redis Cluster,
# Apache Cassandra 5.0.8, a single OpenSearch 2.19.6 node, SeaweedFS as the S3 server and
# Mailpit as the SMTP server.
#
#   bash scripts/services.sh up       install what is missing, start (or reuse) them all, wait until they answer
#   bash scripts/services.sh down     stop what `up` started (by pid file), wait until it is gone
#   bash scripts/services.sh env      print `export WEFT_TEST_...` lines: eval "$(bash scripts/services.sh env)"
#   bash scripts/services.sh status   say what answers (exit 1 if something does not)
#   bash scripts/services.sh logs     free disk and the last lines of each service's log (a failed CI run prints them)
#
# `down` takes optional names (redis, redis-cluster, cassandra, opensearch, seaweedfs, mailpit) to
# stop only those.
#
# Environment (all optional):
#   WEFT_SVC_REDIS_PORT (6379), WEFT_SVC_REDIS_CLUSTER_PORT (6380: the cluster uses it and the
#   next two; their cluster bus is at +10000), WEFT_SVC_CQL_PORT (9042), WEFT_CASSANDRA_STORAGE_PORT (7000),
#   WEFT_CASSANDRA_JMX_PORT (7199), WEFT_CASSANDRA_HEAP (2G), WEFT_CASSANDRA_START_TIMEOUT (240 s),
#   WEFT_CASSANDRA_KEEP_DATA (0: a freshly started node gets empty data dirs),
#   WEFT_CASSANDRA_PRUNE_AGE (3600 s: a reused node drops test keyspaces older than this),
#   WEFT_SVC_OPENSEARCH_PORT (9200), WEFT_OPENSEARCH_TRANSPORT_PORT (9300), WEFT_OPENSEARCH_HEAP (512m),
#   WEFT_OPENSEARCH_START_TIMEOUT (180 s),
#   WEFT_SVC_S3_PORT (8333: SeaweedFS's S3 API), WEFT_SEAWEEDFS_PORT_BASE (18330: its master, volume,
#   filer and admin ports are this and the next nine),
#   WEFT_SVC_SMTP_PORT (1025: Mailpit's SMTP), WEFT_SVC_MAILPIT_PORT (8025: Mailpit's web UI and API),
#   WEFT_SERVICES_DIR (~/.cache/weft-services: download cache), WEFT_STATE_DIR (<services dir>/state),
#   WEFT_SERVICES_STARTED_FILE (if set, `up` appends the name of each service it started itself).
#
# Cassandra runs from Maven Central's cassandra-all jars on JDK 17 as a separate JVM
# (org.apache.cassandra.service.CassandraDaemon). Its pom, yaml template, logback config
# and CQL check live in scripts/cassandra/.
#
# OpenSearch is the integ-test zip from Maven Central (org.opensearch.distribution.integ-test-zip,
# the real minimal distribution without a JDK or plugins) plus analysis-common installed by hand as
# a module, run by its own bin/opensearch on the same JDK 17 with the config in scripts/opensearch/.
# It refuses to run as root, so as root it runs in a user namespace (`unshare --user`, where it is
# uid 65534) or, failing that, as nobody (`setpriv`). Every start gets empty data.
#
# SeaweedFS (Apache-2.0) is built from its Go module source: `go install` of it fails (its go.mod
# has a replace directive), so the module is downloaded, copied and built with `go build`; the
# source, the Go module cache and the Go build cache live under the services dir, so a second run
# reuses the binary. It runs as `weed mini` with every port on loopback, one identity from
# scripts/seaweedfs/s3.json and the bucket `weft-test`. Every start gets empty data.
#
# Mailpit (MIT) is `go install`ed from its module into the services dir (about a minute the first
# time; its Go caches are emptied afterwards, the 24 MiB binary stays). It takes any mail on its SMTP
# port (and any login, also without TLS) and shows it through its HTTP API, where the email tests
# read it back. Every start gets an empty mailbox.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CASS_SRC=$SCRIPT_DIR/cassandra

REDIS_PORT=${WEFT_SVC_REDIS_PORT:-6379}
RC_BASE=${WEFT_SVC_REDIS_CLUSTER_PORT:-6380}
RC_PORTS=("$RC_BASE" $((RC_BASE + 1)) $((RC_BASE + 2)))
CQL_PORT=${WEFT_SVC_CQL_PORT:-9042}
STORAGE_PORT=${WEFT_CASSANDRA_STORAGE_PORT:-7000}
JMX_PORT=${WEFT_CASSANDRA_JMX_PORT:-7199}
CASS_HEAP=${WEFT_CASSANDRA_HEAP:-2G}
CASS_START_TIMEOUT=${WEFT_CASSANDRA_START_TIMEOUT:-240}
CASS_KEEP_DATA=${WEFT_CASSANDRA_KEEP_DATA:-0}
# Test keyspaces older than this (seconds) are dropped when `up` reuses a running node.
CASS_PRUNE_AGE=${WEFT_CASSANDRA_PRUNE_AGE:-3600}
SERVICES_DIR=${WEFT_SERVICES_DIR:-$HOME/.cache/weft-services}
STATE_DIR=${WEFT_STATE_DIR:-$HOME/.cache/weft-services/state}

CASS_VERSION=5.0.8
CASS_HOME=$SERVICES_DIR/cassandra-$CASS_VERSION
CASS_LIB=$CASS_HOME/lib
CASS_MARKER=$CASS_HOME/lib.complete
REDIS_DIR=$STATE_DIR/redis
REDIS_PIDFILE=$REDIS_DIR/redis.pid
REDIS_LOG=$REDIS_DIR/redis.log
RC_DIR=$STATE_DIR/redis-cluster
CASS_DIR=$STATE_DIR/cassandra
CASS_PIDFILE=$CASS_DIR/cassandra.pid
CASS_LOG=$CASS_DIR/logs/cassandra.log
# The CA and keystore of Cassandra's optional client TLS (same port, plaintext still accepted).
CASS_TLS_DIR=$STATE_DIR/cassandra-tls

OS_VERSION=2.19.6
OS_SRC=$SCRIPT_DIR/opensearch
OS_PORT=${WEFT_SVC_OPENSEARCH_PORT:-9200}
OS_TRANSPORT_PORT=${WEFT_OPENSEARCH_TRANSPORT_PORT:-9300}
OS_HEAP=${WEFT_OPENSEARCH_HEAP:-512m}
OS_START_TIMEOUT=${WEFT_OPENSEARCH_START_TIMEOUT:-180}
OS_CACHE=$SERVICES_DIR/opensearch-$OS_VERSION
OS_HOME=$OS_CACHE/home
OS_MARKER=$OS_CACHE/home.complete
OS_DIR=$STATE_DIR/opensearch
OS_PIDFILE=$OS_DIR/opensearch.pid
OS_LOG=$OS_DIR/logs/stdout.log
OS_URL=http://127.0.0.1:$OS_PORT
OS_MAIN=org.opensearch.bootstrap.OpenSearch

SW_MODULE=github.com/seaweedfs/seaweedfs
SW_VERSION=v0.0.0-20261109003541-7506e5f91cd6
SW_SRC_CONF=$SCRIPT_DIR/seaweedfs
SW_CACHE=$SERVICES_DIR/seaweedfs-$SW_VERSION
SW_BIN=$SW_CACHE/weed
SW_DIR=$STATE_DIR/seaweedfs
SW_PIDFILE=$SW_DIR/weed.pid
SW_LOG=$SW_DIR/weed.log
S3_PORT=${WEFT_SVC_S3_PORT:-8333}
SW_BASE=${WEFT_SEAWEEDFS_PORT_BASE:-18330}
S3_URL=http://127.0.0.1:$S3_PORT
S3_BUCKET=weft-test
S3_REGION=us-east-1
# Test-only credentials of a loopback server (they match scripts/seaweedfs/s3.json).
S3_ACCESS_KEY=weft-test
S3_SECRET_KEY=weft-test-secret

MP_MODULE=github.com/axllent/mailpit
MP_VERSION=v1.33.1
MP_CACHE=$SERVICES_DIR/mailpit-$MP_VERSION
MP_BIN=$MP_CACHE/bin/mailpit
MP_DIR=$STATE_DIR/mailpit
MP_PIDFILE=$MP_DIR/mailpit.pid
MP_LOG=$MP_DIR/mailpit.log
SMTP_PORT=${WEFT_SVC_SMTP_PORT:-1025}
MP_PORT=${WEFT_SVC_MAILPIT_PORT:-8025}
MP_URL=http://127.0.0.1:$MP_PORT

# ---------------------------------------------------------------------------------------------
# helpers

log() { printf '[services] %s\n' "$*" >&2; }

die() {
    log "ERROR: $*"
    exit 1
}

# die_log FILE MESSAGE: print the tail of FILE, then fail with MESSAGE.
die_log() {
    local file=$1
    shift
    if [ -f "$file" ]; then
        log "---- last 60 lines of $file ----"
        tail -n 60 "$file" >&2 || true
        log "---- end of $file ----"
    fi
    die "$*"
}

now_ms() { date +%s%3N; }

# secs_since START_MS -> "12.3"
secs_since() {
    local d=$(($(now_ms) - $1))
    printf '%d.%d' $((d / 1000)) $(((d % 1000) / 100))
}

SUDO=
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 && SUDO=sudo
fi

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
    timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# redis_ping PORT: a Redis answers PING on 127.0.0.1:PORT (no redis-cli needed).
redis_ping() {
    # shellcheck disable=SC2016 # expanded by the inner bash
    timeout 3 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "PING\r\n" >&3
        IFS= read -r -t 2 line <&3 || exit 1
        [[ $line == +PONG* ]]' _ "$1" 2>/dev/null
}

python_bin() {
    command -v python3 2>/dev/null || { [ -x /usr/bin/python3 ] && echo /usr/bin/python3; } || true
}

# cql_check PORT: prints the server's release_version if STARTUP + a SELECT work.
cql_check() {
    local py
    py=$(python_bin)
    [ -n "$py" ] || return 1
    "$py" "$CASS_SRC/cql_ping.py" 127.0.0.1 "$1" 5
}

# pid_is PIDFILE PATTERN: the pid in PIDFILE is alive and its command line matches PATTERN.
pid_is() {
    local pid
    [ -s "$1" ] || return 1
    pid=$(cat "$1")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [ -r "/proc/$pid/cmdline" ] || return 1
    local cmd
    cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ $cmd == *"$2"* ]]
}

rss_mib() {
    awk '/^VmRSS:/ { printf "%d MiB", $2 / 1024 }' "/proc/$1/status" 2>/dev/null || echo "?"
}

# apt_install PKG... (scripts/lib/apt.sh)
# shellcheck source=scripts/lib/apt.sh
source "$SCRIPT_DIR/lib/apt.sh"

# java_major JAVA -> "17"
java_major() {
    "$1" -version 2>&1 | sed -n 's/.* version "\(1\.\)\{0,1\}\([0-9]*\).*/\2/p' | head -n 1
}

# find_java17: path of a JDK 17 `java` (Cassandra 5.0 runs on 11 or 17 only).
find_java17() {
    local cand
    for cand in "${WEFT_JAVA:-}" "${JAVA_HOME:+$JAVA_HOME/bin/java}" "$(command -v java 2>/dev/null || true)" \
        /usr/lib/jvm/java-17-openjdk-*/bin/java /usr/lib/jvm/*17*/bin/java; do
        [ -n "$cand" ] && [ -x "$cand" ] || continue
        if [ "$(java_major "$cand")" = 17 ]; then
            readlink -f "$cand"
            return 0
        fi
    done
    return 1
}

ensure_tools() {
    local pkgs=()
    command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 || pkgs+=(redis-server redis-tools)
    find_java17 >/dev/null || pkgs+=(openjdk-17-jdk-headless)
    command -v mvn >/dev/null 2>&1 || pkgs+=(maven)
    [ -n "$(python_bin)" ] || pkgs+=(python3-minimal)
    command -v curl >/dev/null 2>&1 || pkgs+=(curl)
    command -v unzip >/dev/null 2>&1 || pkgs+=(unzip)
    command -v openssl >/dev/null 2>&1 || pkgs+=(openssl)
    if [ ${#pkgs[@]} -gt 0 ]; then
        local t0
        t0=$(now_ms)
        apt_install "${pkgs[@]}"
        log "installed ${pkgs[*]} in $(secs_since "$t0") s"
    fi
    JAVA17=$(find_java17) || die "no JDK 17 found after installing openjdk-17-jdk-headless"
    JAVA17_HOME=$(dirname "$(dirname "$JAVA17")")
    command -v redis-server >/dev/null 2>&1 || die "redis-server still missing after apt-get install"
    command -v mvn >/dev/null 2>&1 || die "mvn still missing after apt-get install"
    command -v curl >/dev/null 2>&1 || die "curl still missing after apt-get install"
    command -v unzip >/dev/null 2>&1 || die "unzip still missing after apt-get install"
    command -v openssl >/dev/null 2>&1 || die "openssl still missing after apt-get install"
}

note_started() {
    if [ -n "${WEFT_SERVICES_STARTED_FILE:-}" ]; then
        echo "$1" >>"$WEFT_SERVICES_STARTED_FILE"
    fi
}

# ---------------------------------------------------------------------------------------------
# Redis

start_redis() {
    if redis_ping "$REDIS_PORT"; then
        if pid_is "$REDIS_PIDFILE" redis-server; then
            log "redis: already running on 127.0.0.1:$REDIS_PORT (pid $(cat "$REDIS_PIDFILE"))"
        else
            log "redis: something already answers PING on 127.0.0.1:$REDIS_PORT; reusing it (not ours, 'down' leaves it)"
        fi
        return 0
    fi
    port_open "$REDIS_PORT" && die "port 127.0.0.1:$REDIS_PORT is taken by something that is not Redis (set WEFT_SVC_REDIS_PORT)"
    mkdir -p "$REDIS_DIR/data"
    rm -f "$REDIS_PIDFILE"
    local t0
    t0=$(now_ms)
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --protected-mode yes \
        --daemonize yes --pidfile "$REDIS_PIDFILE" --logfile "$REDIS_LOG" --dir "$REDIS_DIR/data" \
        --save "" --appendonly no </dev/null >"$REDIS_DIR/redis.start.log" 2>&1 9>&- ||
        die_log "$REDIS_DIR/redis.start.log" "redis-server failed to start"
    local i
    for i in $(seq 1 100); do
        redis_ping "$REDIS_PORT" && break
        [ "$i" = 100 ] && die_log "$REDIS_LOG" "redis did not answer PING on 127.0.0.1:$REDIS_PORT within 10 s"
        sleep 0.1
    done
    for i in $(seq 1 50); do
        [ -s "$REDIS_PIDFILE" ] && break
        sleep 0.1
    done
    note_started redis
    log "redis: started on 127.0.0.1:$REDIS_PORT (pid $(cat "$REDIS_PIDFILE" 2>/dev/null || echo '?')) in $(secs_since "$t0") s"
}

# ---------------------------------------------------------------------------------------------
# Redis Cluster: three masters, no replicas (tests need the slot routing, not failover)

rc_ok() {
    local info
    info=$(redis-cli -p "$1" cluster info 2>/dev/null) || return 1
    [[ $info == *cluster_state:ok* ]]
}

start_redis_cluster() {
    local port t0 i
    t0=$(now_ms)
    for port in "${RC_PORTS[@]}"; do
        if redis_ping "$port"; then
            continue
        fi
        port_open "$port" && die "port 127.0.0.1:$port is taken by something that is not Redis (set WEFT_SVC_REDIS_CLUSTER_PORT)"
        mkdir -p "$RC_DIR/$port"
        rm -f "$RC_DIR/$port/redis.pid"
        redis-server --bind 127.0.0.1 --port "$port" --protected-mode yes \
            --cluster-enabled yes --cluster-config-file "nodes-$port.conf" --cluster-node-timeout 5000 \
            --daemonize yes --pidfile "$RC_DIR/$port/redis.pid" --logfile "$RC_DIR/$port/redis.log" \
            --dir "$RC_DIR/$port" --save "" --appendonly no </dev/null >"$RC_DIR/$port/start.log" 2>&1 9>&- ||
            die_log "$RC_DIR/$port/start.log" "redis-server (cluster node $port) failed to start"
        for i in $(seq 1 100); do
            redis_ping "$port" && break
            [ "$i" = 100 ] && die_log "$RC_DIR/$port/redis.log" "redis cluster node $port did not answer PING within 10 s"
            sleep 0.1
        done
        note_started redis-cluster
    done
    if rc_ok "${RC_PORTS[0]}"; then
        log "redis cluster: 127.0.0.1:${RC_PORTS[0]}-${RC_PORTS[2]} is up (cluster_state:ok)"
        return 0
    fi
    # Not formed, or formed from a state that no longer holds: start it afresh (test data only).
    log "redis cluster: forming 127.0.0.1:${RC_PORTS[0]}-${RC_PORTS[2]}"
    for port in "${RC_PORTS[@]}"; do
        redis-cli -p "$port" flushall >/dev/null 2>&1 || true
        redis-cli -p "$port" cluster reset hard >/dev/null 2>&1 || true
    done
    redis-cli --cluster create "${RC_PORTS[@]/#/127.0.0.1:}" --cluster-replicas 0 --cluster-yes \
        >"$RC_DIR/create.log" 2>&1 || die_log "$RC_DIR/create.log" "redis-cli --cluster create failed"
    for i in $(seq 1 200); do
        if rc_ok "${RC_PORTS[0]}" && rc_ok "${RC_PORTS[1]}" && rc_ok "${RC_PORTS[2]}"; then
            log "redis cluster: formed in $(secs_since "$t0") s"
            return 0
        fi
        sleep 0.1
    done
    die_log "$RC_DIR/create.log" "redis cluster did not reach cluster_state:ok within 20 s"
}

stop_redis_cluster() {
    local port
    for port in "${RC_PORTS[@]}"; do
        stop_pid "redis-cluster:$port" "$RC_DIR/$port/redis.pid" redis-server 30
    done
}

# ---------------------------------------------------------------------------------------------
# Cassandra

cass_lib_complete() {
    [ -f "$CASS_MARKER" ] || return 1
    grep -qx "pom-sha256=$1" "$CASS_MARKER" || return 1
    local jar n=0
    while IFS= read -r jar; do
        [ -s "$CASS_LIB/$jar" ] || return 1
        n=$((n + 1))
    done < <(sed -n 's/^jar=//p' "$CASS_MARKER")
    [ "$n" -gt 50 ]
}

ensure_cassandra_jars() {
    local sum
    sum=$(sha256sum "$CASS_SRC/pom.xml" | cut -d' ' -f1)
    if cass_lib_complete "$sum"; then
        log "cassandra: $CASS_VERSION jars cached in $CASS_LIB"
        return 0
    fi
    log "cassandra: resolving cassandra-all:$CASS_VERSION runtime jars with mvn (cache missing or incomplete)..."
    local t0 build=$CASS_HOME/build
    t0=$(now_ms)
    rm -rf "$build" "$CASS_LIB.tmp"
    mkdir -p "$build" "$CASS_LIB.tmp"
    cp "$CASS_SRC/pom.xml" "$build/pom.xml"
    # The ERROR about ${jmc5.path} (systemPath in cassandra-parent) is expected and harmless.
    if ! (cd "$build" && JAVA_HOME=$JAVA17_HOME mvn -B -ntp -f "$build/pom.xml" \
        dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$CASS_LIB.tmp") \
        >"$CASS_HOME/mvn.log" 2>&1; then
        die_log "$CASS_HOME/mvn.log" "mvn could not resolve org.apache.cassandra:cassandra-all:$CASS_VERSION"
    fi
    ls "$CASS_LIB.tmp"/cassandra-all-*.jar "$CASS_LIB.tmp"/jamm-*.jar >/dev/null 2>&1 ||
        die_log "$CASS_HOME/mvn.log" "mvn finished but cassandra-all/jamm jars are missing"
    rm -rf "$CASS_LIB"
    mv "$CASS_LIB.tmp" "$CASS_LIB"
    rm -rf "$build"
    {
        echo "pom-sha256=$sum"
        (cd "$CASS_LIB" && ls -1 -- *.jar) | sed 's/^/jar=/'
    } >"$CASS_MARKER.tmp"
    mv "$CASS_MARKER.tmp" "$CASS_MARKER"
    log "cassandra: $(grep -c '^jar=' "$CASS_MARKER") jars ($(du -sm "$CASS_LIB" | cut -f1) MiB) downloaded in $(secs_since "$t0") s"
}

# JVM options for Cassandra 5.0 on JDK 17: conf/jvm17-server.options + cassandra-unit's additions.
cassandra_jvm_opts() {
    local d=$CASS_DIR jamms jamm
    jamms=("$CASS_LIB"/jamm-*.jar)
    jamm=${jamms[0]}
    CASS_JVM_OPTS=(
        -Xms"$CASS_HEAP" -Xmx"$CASS_HEAP" -Xss256k
        -XX:+UseG1GC -XX:+ParallelRefProcEnabled -XX:MaxTenuringThreshold=1 -XX:G1HeapRegionSize=16m
        -XX:MaxGCPauseMillis=300 -XX:+PerfDisableSharedMem -XX:+ExitOnOutOfMemoryError
        -ea -da:net.openhft...
        -Djava.net.preferIPv4Stack=true
        -javaagent:"$jamm" -Djdk.attach.allowAttachSelf=true
        --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
        --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
        --add-exports java.management/com.sun.jmx.remote.security=ALL-UNNAMED
        --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED
        --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
        --add-exports java.sql/java.sql=ALL-UNNAMED
        --add-exports java.base/java.lang.ref=ALL-UNNAMED
        --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED
        --add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED
        --add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED
        --add-opens java.base/java.lang.module=ALL-UNNAMED
        --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
        --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
        --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
        --add-opens java.base/jdk.internal.math=ALL-UNNAMED
        --add-opens java.base/jdk.internal.module=ALL-UNNAMED
        --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
        --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
        --add-opens java.base/sun.nio.ch=ALL-UNNAMED
        --add-opens java.base/java.io=ALL-UNNAMED
        --add-opens java.base/java.lang.reflect=ALL-UNNAMED
        --add-opens java.base/java.lang=ALL-UNNAMED
        --add-opens java.base/java.util=ALL-UNNAMED
        --add-opens java.base/java.nio=ALL-UNNAMED
        --add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED
        -Dio.netty.tryReflectionSetAccessible=true
        -Dio.netty.allocator.useCacheForAllThreads=true
        -Dio.netty.allocator.maxOrder=11
        -Dchronicle.analytics.disable=true
        -Dcassandra.config=file://"$d"/conf/cassandra.yaml
        -Dcassandra.storagedir="$d"
        -Dcassandra.logdir="$d"/logs
        -Dcassandra.triggers_dir="$d"/triggers
        -Dcassandra-foreground=yes
        -Dcassandra.jmx.local.port="$JMX_PORT"
        -Dcassandra.skip_wait_for_gossip_to_settle=0
        -Dcassandra.ring_delay_ms=1000
        -Dcassandra.unsafesystem=true
        -Dlogback.configurationFile="$d"/conf/logback.xml
        -cp "$d/conf:$CASS_LIB/*"
        org.apache.cassandra.service.CassandraDaemon
    )
}

# wait_cassandra PID|"" T0: until the CQL port answers a real query (or the JVM dies / time runs out).
wait_cassandra() {
    local pid=$1 t0=$2 deadline version
    deadline=$(($(date +%s) + CASS_START_TIMEOUT))
    while :; do
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$CASS_PIDFILE"
            die_log "$CASS_LOG" "Cassandra JVM (pid $pid) exited during startup"
        fi
        if port_open "$CQL_PORT" && version=$(cql_check "$CQL_PORT" 2>/dev/null); then
            CASS_VERSION_SEEN=$version
            return 0
        fi
        if [ "$(date +%s)" -ge "$deadline" ]; then
            die_log "$CASS_LOG" "Cassandra did not answer CQL on 127.0.0.1:$CQL_PORT within ${CASS_START_TIMEOUT} s"
        fi
        sleep 1
    done
}

# ensure_cassandra_tls: a test CA and a node certificate for 127.0.0.1 in a PKCS12 keystore, made
# once and kept (tests/tls.rs trusts $CASS_TLS_DIR/ca.pem, exported as WEFT_TEST_CQL_CA).
ensure_cassandra_tls() {
    local d=$CASS_TLS_DIR
    [ -s "$d/keystore.p12" ] && [ -s "$d/ca.pem" ] && return 0
    rm -rf "$d.tmp" && mkdir -p "$d.tmp"
    (
        cd "$d.tmp"
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
            -subj "/CN=weft test Cassandra CA" -keyout ca.key -out ca.pem \
            -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=127.0.0.1" \
            -keyout node.key -out node.csr
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' >node.ext
        openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
            -extfile node.ext -out node.pem
        openssl pkcs12 -export -in node.pem -inkey node.key -certfile ca.pem -name cassandra \
            -passout pass:weft-test -out keystore.p12
        rm -f node.csr node.ext ca.srl ca.key
    ) >"$STATE_DIR/cassandra-tls.log" 2>&1 || die_log "$STATE_DIR/cassandra-tls.log" "cannot make Cassandra's test TLS keystore"
    rm -rf "$d" && mv "$d.tmp" "$d"
    log "cassandra: test TLS CA and keystore made in $d"
}

# cassandra_conf: the node's cassandra.yaml, rendered from the template.
cassandra_conf() {
    sed -e "s#@DIR@#$CASS_DIR#g" -e "s#@CQL_PORT@#$CQL_PORT#g" -e "s#@STORAGE_PORT@#$STORAGE_PORT#g" \
        -e "s#@TLS_DIR@#$CASS_TLS_DIR#g" "$CASS_SRC/cassandra.yaml"
}

start_cassandra() {
    local t0 pid version keep=$CASS_KEEP_DATA
    ensure_cassandra_tls
    # A node of ours started from an older template is restarted once, keeping its data.
    if pid_is "$CASS_PIDFILE" CassandraDaemon && ! cassandra_conf | cmp -s - "$CASS_DIR/conf/cassandra.yaml"; then
        log "cassandra: scripts/cassandra/cassandra.yaml changed since the node started; restarting it (data kept)"
        stop_pid cassandra "$CASS_PIDFILE" CassandraDaemon 90
        keep=1
    fi
    if port_open "$CQL_PORT"; then
        t0=$(now_ms)
        if pid_is "$CASS_PIDFILE" CassandraDaemon; then
            pid=$(cat "$CASS_PIDFILE")
            log "cassandra: already running (pid $pid); checking CQL on 127.0.0.1:$CQL_PORT"
        else
            pid=
            log "cassandra: something already listens on 127.0.0.1:$CQL_PORT; reusing it (not ours, 'down' leaves it)"
        fi
        wait_cassandra "$pid" "$t0"
        log "cassandra: CQL on 127.0.0.1:$CQL_PORT answers (release_version $CASS_VERSION_SEEN)"
        # Each test process makes a keyspace of its own; a node that keeps every earlier run's
        # runs out of heap. Runs last well under CASS_PRUNE_AGE, so no live run loses its own.
        log "cassandra: $("$(python_bin)" "$CASS_SRC/cql_ping.py" 127.0.0.1 "$CQL_PORT" 5 --prune "$CASS_PRUNE_AGE" 2>&1)"
        return 0
    fi
    if pid_is "$CASS_PIDFILE" CassandraDaemon; then
        pid=$(cat "$CASS_PIDFILE")
        log "cassandra: our JVM (pid $pid) is still starting; waiting for CQL on 127.0.0.1:$CQL_PORT"
        t0=$(now_ms)
        wait_cassandra "$pid" "$t0"
        log "cassandra: ready after $(secs_since "$t0") s more (release_version $CASS_VERSION_SEEN)"
        return 0
    fi
    rm -f "$CASS_PIDFILE"

    ensure_cassandra_jars

    port_open "$STORAGE_PORT" && die "port 127.0.0.1:$STORAGE_PORT (Cassandra storage) is taken (set WEFT_CASSANDRA_STORAGE_PORT)"
    port_open "$JMX_PORT" && die "port 127.0.0.1:$JMX_PORT (Cassandra JMX) is taken (set WEFT_CASSANDRA_JMX_PORT)"

    local d=$CASS_DIR
    if [ "$keep" != 1 ]; then
        rm -rf "$d"/data "$d"/commitlog "$d"/saved_caches "$d"/hints "$d"/cdc_raw
    fi
    mkdir -p "$d"/conf "$d"/data "$d"/commitlog "$d"/saved_caches "$d"/hints "$d"/cdc_raw "$d"/logs "$d"/triggers
    cassandra_conf >"$d/conf/cassandra.yaml"
    cp "$CASS_SRC/logback.xml" "$d/conf/logback.xml"
    [ -f "$CASS_LOG" ] && mv -f "$CASS_LOG" "$CASS_LOG.1"

    cassandra_jvm_opts
    t0=$(now_ms)
    log "cassandra: starting $CASS_VERSION (heap $CASS_HEAP) on 127.0.0.1:$CQL_PORT, log $CASS_LOG"
    # Own session (setsid) and no inherited stdio, so the JVM outlives this script and never holds
    # the caller's pipes open. Run from the state dir: the JVM may write files into its cwd.
    # fd 9 (the state lock) must not leak into the daemon, or the next `up` would wait for it.
    (cd "$d" && exec setsid "$JAVA17" "${CASS_JVM_OPTS[@]}" </dev/null >>"$CASS_LOG" 2>&1 9>&-) &
    pid=$!
    # (No job control in this script, so the subshell is no process group leader and setsid
    # does not fork: $! is the JVM's own pid.)
    echo "$pid" >"$CASS_PIDFILE"
    note_started cassandra
    wait_cassandra "$pid" "$t0"
    log "cassandra: ready on 127.0.0.1:$CQL_PORT (pid $pid, release_version $CASS_VERSION_SEEN) after $(secs_since "$t0") s, RSS $(rss_mib "$pid")"
}

# ---------------------------------------------------------------------------------------------
# OpenSearch

# os_answers: the HTTP port answers the cluster health API (any status).
os_answers() {
    curl -sf -m 3 "$OS_URL/_cluster/health" >/dev/null 2>&1
}

# os_green: the node reports green (waits up to 2 s on the server side).
os_green() {
    curl -sf -m 4 "$OS_URL/_cluster/health?wait_for_status=green&timeout=2s" 2>/dev/null |
        grep -q '"status":"green"'
}

ensure_opensearch_home() {
    local sum
    sum=$(cat "$OS_SRC/pom.xml" "$OS_SRC/plugin-descriptor.properties" | sha256sum | cut -d' ' -f1)
    if [ -f "$OS_MARKER" ] && grep -qx "sha256=$sum" "$OS_MARKER" && [ -x "$OS_HOME/bin/opensearch" ] &&
        [ -s "$OS_HOME/modules/analysis-common/analysis-common-$OS_VERSION.jar" ]; then
        log "opensearch: $OS_VERSION installed in $OS_HOME"
        return 0
    fi
    log "opensearch: resolving the $OS_VERSION integ-test zip and analysis-common with mvn (cache missing or incomplete)..."
    local t0 art=$OS_CACHE/artifacts
    t0=$(now_ms)
    rm -rf "$art" "$OS_HOME" "$OS_HOME.tmp" "$OS_MARKER"
    mkdir -p "$art" "$OS_HOME.tmp"
    if ! (cd "$OS_CACHE" && JAVA_HOME=$JAVA17_HOME mvn -B -ntp -f "$OS_SRC/pom.xml" \
        dependency:copy-dependencies -DexcludeTransitive=true -DoutputDirectory="$art") \
        >"$OS_CACHE/mvn.log" 2>&1; then
        die_log "$OS_CACHE/mvn.log" "mvn could not resolve org.opensearch artifacts $OS_VERSION"
    fi
    if [ ! -s "$art/opensearch-$OS_VERSION.zip" ] || [ ! -s "$art/analysis-common-$OS_VERSION.jar" ]; then
        die_log "$OS_CACHE/mvn.log" "mvn finished but opensearch-$OS_VERSION.zip / analysis-common-$OS_VERSION.jar are missing"
    fi
    unzip -q "$art/opensearch-$OS_VERSION.zip" -d "$OS_HOME.tmp" || die "could not unzip $art/opensearch-$OS_VERSION.zip"
    mv "$OS_HOME.tmp/opensearch-$OS_VERSION" "$OS_HOME"
    rm -rf "$OS_HOME.tmp"
    chmod +x "$OS_HOME"/bin/*
    mkdir -p "$OS_HOME/modules/analysis-common" "$OS_HOME/plugins"
    cp "$art/analysis-common-$OS_VERSION.jar" "$OS_HOME/modules/analysis-common/"
    sed "s#@VERSION@#$OS_VERSION#g" "$OS_SRC/plugin-descriptor.properties" \
        >"$OS_HOME/modules/analysis-common/plugin-descriptor.properties"
    rm -rf "$art"
    echo "sha256=$sum" >"$OS_MARKER"
    log "opensearch: $OS_VERSION ($(du -sm "$OS_HOME" | cut -f1) MiB) installed in $(secs_since "$t0") s"
}

# opensearch_launch: reuse a node that answers, or start ours in the background (not waiting:
# Cassandra starts meanwhile). Sets OS_WAIT_PID (our pid, or "" for someone else's node) and OS_T0.
opensearch_launch() {
    OS_T0=$(now_ms)
    if os_answers; then
        if pid_is "$OS_PIDFILE" "$OS_MAIN"; then
            OS_WAIT_PID=$(cat "$OS_PIDFILE")
            log "opensearch: already running (pid $OS_WAIT_PID) on $OS_URL"
        else
            OS_WAIT_PID=
            log "opensearch: something already answers on $OS_URL; reusing it (not ours, 'down' leaves it)"
        fi
        OS_REUSED=1
        return 0
    fi
    if pid_is "$OS_PIDFILE" "$OS_MAIN"; then
        OS_WAIT_PID=$(cat "$OS_PIDFILE")
        log "opensearch: our node (pid $OS_WAIT_PID) is still starting; waiting for $OS_URL"
        OS_REUSED=1
        return 0
    fi
    rm -f "$OS_PIDFILE"
    ensure_opensearch_home
    OS_T0=$(now_ms)
    port_open "$OS_PORT" && die "port 127.0.0.1:$OS_PORT is taken by something that is not OpenSearch (set WEFT_SVC_OPENSEARCH_PORT)"
    port_open "$OS_TRANSPORT_PORT" && die "port 127.0.0.1:$OS_TRANSPORT_PORT (OpenSearch transport) is taken (set WEFT_OPENSEARCH_TRANSPORT_PORT)"

    local d=$OS_DIR
    rm -rf "$d"
    mkdir -p "$d/config" "$d/data" "$d/logs" "$d/tmp"
    cp -R "$OS_HOME/config/." "$d/config/"
    sed -e "s#@DIR@#$d#g" -e "s#@HEAP@#$OS_HEAP#g" "$OS_SRC/jvm.options" >"$d/config/jvm.options"
    sed -e "s#@DIR@#$d#g" -e "s#@HTTP_PORT@#$OS_PORT#g" -e "s#@TRANSPORT_PORT@#$OS_TRANSPORT_PORT#g" \
        "$OS_SRC/opensearch.yml" >"$d/config/opensearch.yml"

    # OpenSearch refuses to run as root. In a user namespace it is uid 65534 to itself while the
    # kernel still sees root's files as its own; without user namespaces, run as nobody.
    local wrap=()
    if [ "$(id -u)" -eq 0 ]; then
        if unshare --user true 2>/dev/null; then
            wrap=(unshare --user)
        elif command -v setpriv >/dev/null 2>&1; then
            chown -R 65534:65534 "$d"
            wrap=(setpriv --reuid=65534 --regid=65534 --clear-groups)
            "${wrap[@]}" test -r "$OS_HOME/bin/opensearch" ||
                die "opensearch: nobody cannot read $OS_HOME (set WEFT_SERVICES_DIR to a world-readable place)"
        else
            die "opensearch: running as root and neither 'unshare --user' nor setpriv works"
        fi
    fi
    log "opensearch: starting $OS_VERSION (heap $OS_HEAP) on $OS_URL, log $OS_LOG"
    # As for Cassandra: own session, no inherited stdio or lock fd. setsid, env, unshare/setpriv
    # and bin/opensearch all exec, so $! is the JVM's pid.
    (cd "$d" && exec setsid env -u OPENSEARCH_JAVA_OPTS -u JAVA_OPTS -u JAVA_HOME \
        OPENSEARCH_JAVA_HOME="$JAVA17_HOME" OPENSEARCH_PATH_CONF="$d/config" OPENSEARCH_TMPDIR="$d/tmp" \
        ${wrap[@]+"${wrap[@]}"} "$OS_HOME/bin/opensearch" </dev/null >>"$OS_LOG" 2>&1 9>&-) &
    OS_WAIT_PID=$!
    OS_REUSED=0
    echo "$OS_WAIT_PID" >"$OS_PIDFILE"
    note_started opensearch
}

# opensearch_wait: until the node is green (or its JVM dies / time runs out).
opensearch_wait() {
    local pid=$OS_WAIT_PID deadline
    deadline=$(($(date +%s) + OS_START_TIMEOUT))
    until os_green; do
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$OS_PIDFILE"
            die_log "$OS_LOG" "OpenSearch JVM (pid $pid) exited during startup"
        fi
        if [ "$(date +%s)" -ge "$deadline" ]; then
            die_log "$OS_LOG" "OpenSearch on $OS_URL was not green within ${OS_START_TIMEOUT} s"
        fi
        sleep 0.3
    done
    if [ "$OS_REUSED" = 1 ]; then
        log "opensearch: $OS_URL is green"
    else
        log "opensearch: green on $OS_URL (pid $pid) $(secs_since "$OS_T0") s after launch, RSS $(rss_mib "$pid")"
    fi
}

# ---------------------------------------------------------------------------------------------
# SeaweedFS (S3)

# s3_curl ARGS...: curl signed with the test identity (SigV4, path style). curl 7.x signs
# no payload hash by itself; the header makes it sign an unsigned payload, as S3 expects.
s3_curl() {
    curl -sf -m 10 --aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$S3_ACCESS_KEY:$S3_SECRET_KEY" \
        -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" "$@"
}

# s3_answers: the S3 API lists our buckets with our credentials.
s3_answers() {
    s3_curl "$S3_URL/" >/dev/null 2>&1
}

ensure_seaweedfs_bin() {
    if [ -x "$SW_BIN" ] && "$SW_BIN" version >/dev/null 2>&1; then
        log "seaweedfs: $SW_VERSION built in $SW_BIN"
        return 0
    fi
    command -v go >/dev/null 2>&1 || die "seaweedfs: no 'go' on PATH (Go >= 1.24 builds SeaweedFS; install it from go.dev)"
    local t0 dir
    t0=$(now_ms)
    mkdir -p "$SW_CACHE/gomod" "$SW_CACHE/gocache"
    export GOMODCACHE=$SW_CACHE/gomod GOCACHE=$SW_CACHE/gocache GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
    log "seaweedfs: building $SW_MODULE@$SW_VERSION with $(go version | cut -d' ' -f3) (a few minutes the first time)..."
    if [ ! -f "$SW_CACHE/src.complete" ]; then
        dir=$(go mod download -json "$SW_MODULE@$SW_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
        [ -n "$dir" ] && [ -d "$dir" ] || die "seaweedfs: go mod download $SW_MODULE@$SW_VERSION gave no source dir"
        rm -rf "$SW_CACHE/src"
        cp -r "$dir" "$SW_CACHE/src"
        chmod -R u+w "$SW_CACHE/src"
        touch "$SW_CACHE/src.complete"
    fi
    (cd "$SW_CACHE/src" && go mod download && go build -ldflags="-s -w" -o "$SW_BIN.tmp" ./weed) \
        >"$SW_CACHE/build.log" 2>&1 || die_log "$SW_CACHE/build.log" "seaweedfs: go build failed"
    mv "$SW_BIN.tmp" "$SW_BIN"
    log "seaweedfs: built in $(secs_since "$t0") s"
}

start_seaweedfs() {
    local t0 pid i p
    if s3_answers; then
        if pid_is "$SW_PIDFILE" "weed mini"; then
            log "seaweedfs: already running (pid $(cat "$SW_PIDFILE")) on $S3_URL"
        else
            log "seaweedfs: something already answers S3 with our keys on $S3_URL; reusing it (not ours, 'down' leaves it)"
        fi
        s3_curl -X PUT "$S3_URL/$S3_BUCKET" >/dev/null 2>&1 || true
        return 0
    fi
    ensure_seaweedfs_bin
    port_open "$S3_PORT" && die "port 127.0.0.1:$S3_PORT is taken by something that is not our S3 (set WEFT_SVC_S3_PORT)"
    for p in $(seq "$SW_BASE" $((SW_BASE + 9))); do
        port_open "$p" && die "port 127.0.0.1:$p (SeaweedFS internal) is taken (set WEFT_SEAWEEDFS_PORT_BASE)"
    done
    local d=$SW_DIR
    rm -rf "$d"
    mkdir -p "$d/data"
    cp "$SW_SRC_CONF/s3.json" "$d/s3.json"
    t0=$(now_ms)
    log "seaweedfs: starting weed mini, S3 on $S3_URL, log $SW_LOG"
    (cd "$d" && exec setsid "$SW_BIN" mini -dir="$d/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
        -master.port=$SW_BASE -master.port.grpc=$((SW_BASE + 1)) -master.telemetry=false \
        -master.volumeSizeLimitMB=64 -volume.max=32 \
        -volume.port=$((SW_BASE + 2)) -volume.port.grpc=$((SW_BASE + 3)) \
        -filer.port=$((SW_BASE + 4)) -filer.port.grpc=$((SW_BASE + 5)) -filer.localSocket="$d/filer.sock" \
        -s3.port="$S3_PORT" -s3.port.grpc=$((SW_BASE + 6)) -s3.localSocket="$d/s3.sock" \
        -s3.port.iceberg=0 -s3.port.lance=0 -s3.config="$d/s3.json" -webdav=false -admin.ui=false \
        -admin.port=$((SW_BASE + 7)) -admin.port.grpc=$((SW_BASE + 8)) -admin.port.legacy=0 \
        </dev/null >>"$SW_LOG" 2>&1 9>&-) &
    pid=$!
    echo "$pid" >"$SW_PIDFILE"
    note_started seaweedfs
    for i in $(seq 1 600); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$SW_PIDFILE"; die_log "$SW_LOG" "weed mini (pid $pid) exited during startup"; }
        s3_answers && break
        [ "$i" = 600 ] && die_log "$SW_LOG" "SeaweedFS S3 on $S3_URL did not answer within 60 s"
        sleep 0.1
    done
    # The first write waits for a volume: do it here, not in a test. (Small volumes, a
    # fixed count: the automatic sizing finds no writable volume on a nearly full disk.)
    for i in $(seq 1 300); do
        if s3_curl -X PUT "$S3_URL/$S3_BUCKET" >/dev/null 2>&1 || s3_curl "$S3_URL/$S3_BUCKET?list-type=2" >/dev/null 2>&1; then
            if s3_curl -X PUT --data-binary warm "$S3_URL/$S3_BUCKET/warm-up" >/dev/null 2>&1 &&
                [ "$(s3_curl "$S3_URL/$S3_BUCKET/warm-up" 2>/dev/null)" = warm ]; then
                break
            fi
        fi
        [ "$i" = 300 ] && die_log "$SW_LOG" "SeaweedFS on $S3_URL did not take a warm-up PUT within 60 s"
        sleep 0.2
    done
    log "seaweedfs: ready on $S3_URL (pid $pid, bucket $S3_BUCKET) after $(secs_since "$t0") s, RSS $(rss_mib "$pid")"
}

# ---------------------------------------------------------------------------------------------
# Mailpit (SMTP)

# mailpit_answers: the HTTP API says ready and the SMTP port accepts connections.
mailpit_answers() {
    curl -sf -m 3 "$MP_URL/readyz" >/dev/null 2>&1 && port_open "$SMTP_PORT"
}

ensure_mailpit_bin() {
    # (No `mailpit version` check: it asks GitHub for the latest release and fails offline.)
    if [ -x "$MP_BIN" ] && grep -qx "$MP_MODULE@$MP_VERSION" "$MP_CACHE/installed" 2>/dev/null; then
        log "mailpit: $MP_VERSION installed in $MP_BIN"
        return 0
    fi
    command -v go >/dev/null 2>&1 || die "mailpit: no 'go' on PATH (Go >= 1.24 builds Mailpit; install it from go.dev)"
    local t0
    t0=$(now_ms)
    rm -f "$MP_CACHE/installed"
    mkdir -p "$MP_CACHE/gomod" "$MP_CACHE/gocache"
    log "mailpit: go install $MP_MODULE@$MP_VERSION with $(go version | cut -d' ' -f3) (about a minute the first time)..."
    # Its own Go caches under the services dir (not SeaweedFS's), emptied once the binary is
    # there: ~800 MB that only a reinstall would use.
    local goenv=(env GOBIN="$MP_CACHE/bin" GOMODCACHE="$MP_CACHE/gomod" GOCACHE="$MP_CACHE/gocache"
        GOFLAGS=-buildvcs=false GOTOOLCHAIN=local CGO_ENABLED=0)
    "${goenv[@]}" go install -ldflags="-s -w -X $MP_MODULE/config.Version=$MP_VERSION" "$MP_MODULE@$MP_VERSION" \
        >"$MP_CACHE/install.log" 2>&1 || die_log "$MP_CACHE/install.log" "mailpit: go install $MP_MODULE@$MP_VERSION failed"
    [ -x "$MP_BIN" ] || die_log "$MP_CACHE/install.log" "mailpit: go install finished but $MP_BIN is missing"
    "${goenv[@]}" go clean -cache -modcache >>"$MP_CACHE/install.log" 2>&1 || log "mailpit: could not empty its Go caches (harmless)"
    echo "$MP_MODULE@$MP_VERSION" >"$MP_CACHE/installed"
    log "mailpit: installed in $(secs_since "$t0") s ($(du -sm "$MP_BIN" | cut -f1) MiB)"
}

start_mailpit() {
    local t0 pid i
    if mailpit_answers; then
        if pid_is "$MP_PIDFILE" "bin/mailpit"; then
            log "mailpit: already running (pid $(cat "$MP_PIDFILE")), SMTP 127.0.0.1:$SMTP_PORT, API $MP_URL"
        else
            log "mailpit: something already answers on $MP_URL and 127.0.0.1:$SMTP_PORT; reusing it (not ours, 'down' leaves it)"
        fi
        return 0
    fi
    if pid_is "$MP_PIDFILE" "bin/mailpit"; then
        # Ours, but not answering (still starting, or wedged): start afresh.
        stop_pid mailpit "$MP_PIDFILE" "bin/mailpit" 10
    fi
    rm -f "$MP_PIDFILE"
    ensure_mailpit_bin
    port_open "$SMTP_PORT" && die "port 127.0.0.1:$SMTP_PORT is taken by something that is not Mailpit (set WEFT_SVC_SMTP_PORT)"
    port_open "$MP_PORT" && die "port 127.0.0.1:$MP_PORT is taken by something that is not Mailpit (set WEFT_SVC_MAILPIT_PORT)"
    local d=$MP_DIR
    rm -rf "$d"
    mkdir -p "$d"
    t0=$(now_ms)
    log "mailpit: starting $MP_VERSION, SMTP 127.0.0.1:$SMTP_PORT, API $MP_URL, log $MP_LOG"
    # As for the others: own session, no inherited stdio or lock fd; setsid execs, so $! is Mailpit.
    (cd "$d" && exec setsid "$MP_BIN" --smtp "127.0.0.1:$SMTP_PORT" --listen "127.0.0.1:$MP_PORT" \
        --database "$d/mailpit.db" --disable-version-check --smtp-disable-rdns \
        --smtp-auth-accept-any --smtp-auth-allow-insecure \
        </dev/null >>"$MP_LOG" 2>&1 9>&-) &
    pid=$!
    echo "$pid" >"$MP_PIDFILE"
    note_started mailpit
    for i in $(seq 1 300); do
        kill -0 "$pid" 2>/dev/null || { rm -f "$MP_PIDFILE"; die_log "$MP_LOG" "mailpit (pid $pid) exited during startup"; }
        mailpit_answers && break
        [ "$i" = 300 ] && die_log "$MP_LOG" "Mailpit on $MP_URL / 127.0.0.1:$SMTP_PORT did not answer within 30 s"
        sleep 0.1
    done
    log "mailpit: ready, SMTP 127.0.0.1:$SMTP_PORT, API $MP_URL (pid $pid) after $(secs_since "$t0") s, RSS $(rss_mib "$pid")"
}

# ---------------------------------------------------------------------------------------------
# stop

# stop_pid NAME PIDFILE PATTERN TIMEOUT_S
stop_pid() {
    local name=$1 pidfile=$2 pattern=$3 limit=$4 pid i
    if ! pid_is "$pidfile" "$pattern"; then
        [ -f "$pidfile" ] && log "$name: stale pid file $pidfile removed"
        [ -f "$pidfile" ] || log "$name: nothing started by services.sh is running"
        rm -f "$pidfile"
        return 0
    fi
    pid=$(cat "$pidfile")
    log "$name: stopping pid $pid"
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 $((limit * 10))); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name: pid $pid still alive after ${limit} s; SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for i in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    kill -0 "$pid" 2>/dev/null && die "$name: pid $pid did not exit"
    rm -f "$pidfile"
    log "$name: stopped"
}

# ---------------------------------------------------------------------------------------------
# commands

lock_state() {
    mkdir -p "$STATE_DIR"
    exec 9>"$STATE_DIR/.lock"
    flock -w 600 9 || die "another services.sh holds $STATE_DIR/.lock"
}

# SeaweedFS turns its volumes read-only (S3 PUTs answer 500) and Cassandra stops flushing on a
# nearly full disk; a test failing there says so only in their logs. Say it up front.
warn_low_disk() {
    local free_kib
    mkdir -p "$STATE_DIR"
    free_kib=$(df -Pk "$STATE_DIR" | awk 'NR == 2 { print $4 }')
    if [ -n "$free_kib" ] && [ "$free_kib" -lt $((8 * 1024 * 1024)) ]; then
        log "WARNING: only $((free_kib / 1024)) MiB free under $STATE_DIR: the stores may refuse writes (S3 PUTs answering 500); free some disk (cargo clean, old target/ dirs)"
    fi
}

cmd_up() {
    local t0
    t0=$(now_ms)
    lock_state
    ensure_tools
    warn_low_disk
    start_redis
    start_redis_cluster
    # OpenSearch's JVM starts while Cassandra's does; both are waited for.
    opensearch_launch
    start_cassandra
    opensearch_wait
    start_seaweedfs
    start_mailpit
    log "up: redis 127.0.0.1:$REDIS_PORT, redis cluster 127.0.0.1:${RC_PORTS[0]}-${RC_PORTS[2]}, cassandra CQL 127.0.0.1:$CQL_PORT, opensearch $OS_URL, s3 $S3_URL, smtp 127.0.0.1:$SMTP_PORT (mailpit $MP_URL) ready in $(secs_since "$t0") s total"
}

cmd_down() {
    local names=("$@") n
    [ ${#names[@]} -gt 0 ] || names=(redis redis-cluster cassandra opensearch seaweedfs mailpit)
    lock_state
    for n in "${names[@]}"; do
        case $n in
        redis) stop_pid redis "$REDIS_PIDFILE" redis-server 30 ;;
        redis-cluster) stop_redis_cluster ;;
        cassandra) stop_pid cassandra "$CASS_PIDFILE" CassandraDaemon 90 ;;
        opensearch) stop_pid opensearch "$OS_PIDFILE" "$OS_MAIN" 60 ;;
        seaweedfs) stop_pid seaweedfs "$SW_PIDFILE" "weed mini" 30 ;;
        mailpit) stop_pid mailpit "$MP_PIDFILE" "bin/mailpit" 10 ;;
        *) die "down: unknown service '$n' (redis, redis-cluster, cassandra, opensearch, seaweedfs, mailpit)" ;;
        esac
    done
}

cmd_env() {
    echo "export WEFT_TEST_REDIS_URL=redis://127.0.0.1:$REDIS_PORT"
    echo "export WEFT_TEST_REDIS_CLUSTER_NODES=redis://127.0.0.1:${RC_PORTS[0]},redis://127.0.0.1:${RC_PORTS[1]},redis://127.0.0.1:${RC_PORTS[2]}"
    echo "export WEFT_TEST_CQL_NODES=127.0.0.1:$CQL_PORT"
    echo "export WEFT_TEST_CQL_CA=$CASS_TLS_DIR/ca.pem"
    echo "export WEFT_TEST_OPENSEARCH_URL=$OS_URL"
    echo "export WEFT_TEST_S3_URL=$S3_URL"
    echo "export WEFT_TEST_S3_BUCKET=$S3_BUCKET"
    echo "export WEFT_TEST_S3_REGION=$S3_REGION"
    echo "export WEFT_TEST_S3_ACCESS_KEY=$S3_ACCESS_KEY"
    echo "export WEFT_TEST_S3_SECRET_KEY=$S3_SECRET_KEY"
    echo "export WEFT_TEST_SMTP_URL=smtp://127.0.0.1:$SMTP_PORT"
    echo "export WEFT_TEST_MAILPIT_URL=$MP_URL"
}

cmd_status() {
    local ok=0 owner version
    if redis_ping "$REDIS_PORT"; then
        owner="not started by services.sh"
        pid_is "$REDIS_PIDFILE" redis-server && owner="pid $(cat "$REDIS_PIDFILE"), RSS $(rss_mib "$(cat "$REDIS_PIDFILE")")"
        echo "redis:     127.0.0.1:$REDIS_PORT answers PING ($owner)"
    else
        echo "redis:     127.0.0.1:$REDIS_PORT does not answer PING"
        ok=1
    fi
    if rc_ok "${RC_PORTS[0]}"; then
        echo "redis cluster: 127.0.0.1:${RC_PORTS[0]}-${RC_PORTS[2]} cluster_state:ok"
    else
        echo "redis cluster: 127.0.0.1:${RC_PORTS[0]}-${RC_PORTS[2]} is not a healthy cluster"
        ok=1
    fi
    if port_open "$CQL_PORT" && version=$(cql_check "$CQL_PORT" 2>/dev/null); then
        owner="not started by services.sh"
        pid_is "$CASS_PIDFILE" CassandraDaemon && owner="pid $(cat "$CASS_PIDFILE"), RSS $(rss_mib "$(cat "$CASS_PIDFILE")")"
        echo "cassandra: 127.0.0.1:$CQL_PORT answers CQL, release_version $version ($owner)"
    elif pid_is "$CASS_PIDFILE" CassandraDaemon; then
        echo "cassandra: pid $(cat "$CASS_PIDFILE") is running but 127.0.0.1:$CQL_PORT does not answer CQL yet"
        ok=1
    else
        echo "cassandra: 127.0.0.1:$CQL_PORT does not answer CQL"
        ok=1
    fi
    if os_answers; then
        owner="not started by services.sh"
        pid_is "$OS_PIDFILE" "$OS_MAIN" && owner="pid $(cat "$OS_PIDFILE"), RSS $(rss_mib "$(cat "$OS_PIDFILE")")"
        echo "opensearch: $OS_URL answers, status $(curl -s -m 3 "$OS_URL/_cat/health?h=status" | tr -d '[:space:]') ($owner)"
    else
        echo "opensearch: $OS_URL does not answer"
        ok=1
    fi
    if s3_answers; then
        owner="not started by services.sh"
        pid_is "$SW_PIDFILE" "weed mini" && owner="pid $(cat "$SW_PIDFILE"), RSS $(rss_mib "$(cat "$SW_PIDFILE")")"
        echo "seaweedfs: $S3_URL answers S3 ($owner)"
    else
        echo "seaweedfs: $S3_URL does not answer S3"
        ok=1
    fi
    if mailpit_answers; then
        owner="not started by services.sh"
        pid_is "$MP_PIDFILE" "bin/mailpit" && owner="pid $(cat "$MP_PIDFILE"), RSS $(rss_mib "$(cat "$MP_PIDFILE")")"
        echo "mailpit:   SMTP 127.0.0.1:$SMTP_PORT and $MP_URL answer ($owner)"
    else
        echo "mailpit:   SMTP 127.0.0.1:$SMTP_PORT / $MP_URL do not answer"
        ok=1
    fi
    return $ok
}

# What a failed run needs to tell a service's fault from weft's: free disk, then the last lines
# of each log (Cassandra's only WARN/ERROR lines: its INFO lines are many). Prints, never fails.
cmd_logs() {
    local n=${WEFT_SVC_LOG_LINES:-30} f
    echo "== disk: $(df -h "$STATE_DIR" 2>/dev/null | awk 'NR == 2 { print $4 " free of " $2 " (" $5 " used)" }')"
    for f in "$REDIS_LOG" "$OS_LOG" "$SW_LOG" "$MP_LOG"; do
        [ -f "$f" ] || continue
        echo "== last $n lines of $f"
        tail -n "$n" "$f" || true
    done
    if [ -f "$CASS_LOG" ]; then
        echo "== last $n WARN/ERROR lines of $CASS_LOG"
        grep -E '^(WARN|ERROR)' "$CASS_LOG" | tail -n "$n" || true
    fi
}

case ${1:-} in
up) cmd_up ;;
logs) cmd_logs ;;
down)
    shift
    cmd_down "$@"
    ;;
env) cmd_env ;;
status) cmd_status ;;
*)
    echo "usage: $0 up | down [redis|redis-cluster|cassandra|opensearch|seaweedfs|mailpit]... | env | status | logs" >&2
    exit 2
    ;;
esac
