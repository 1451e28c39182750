# Shared by scripts/services.sh and scripts/prometheus.sh (sourced; the caller defines
# `log`, `die` and `SUDO`).
#
# apt_install PKG...: noninteractive install; `apt-get update` only when a package has no
# candidate or the install fails on stale lists. Package scripts are kept from starting
# daemons (there is no init system; this script starts its own on loopback).
apt_install() {
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found; install by hand: $*"
    (
        export DEBIAN_FRONTEND=noninteractive
        made_policy=0
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
            $SUDO chmod 755 /usr/sbin/policy-rc.d
            made_policy=1
        fi
        trap '[ "$made_policy" = 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d' EXIT
        updated=0
        for p in "$@"; do
            # (Output captured first: `grep -q` closing the pipe early trips pipefail.)
            policy=$(apt-cache policy "$p" 2>/dev/null || true)
            if ! grep -q 'Candidate: [^(]' <<<"$policy"; then
                log "apt-get update (no candidate for $p)"
                $SUDO apt-get update -q
                updated=1
                break
            fi
        done
        log "apt-get install $*"
        if ! $SUDO apt-get install -y -q --no-install-recommends "$@"; then
            [ "$updated" = 1 ] && exit 1
            log "install failed; apt-get update and retry"
            $SUDO apt-get update -q
            $SUDO apt-get install -y -q --no-install-recommends "$@"
        fi
    ) >&2 || die "apt-get install $* failed"
}
