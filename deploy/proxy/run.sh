#!/usr/bin/env bash
# smtpgov reference scanning proxy: Postfix + rspamd (milter), one private instance.
#
#   deploy/proxy/run.sh start --state DIR --listen ADDR[,ADDR] --policy HOST:PORT
#                             --clients CIDR[,CIDR] [--egress ADDR[,ADDR]] [--port N]
#                             [--netns NS] [--name NAME] [--hs-cache DIR] [--offline]
#                             [--token-file FILE]
#   deploy/proxy/run.sh stop   --state DIR [--netns NS]
#   deploy/proxy/run.sh status --state DIR [--netns NS]
#
#   --state    the instance's directory (config, queue, rspamd db, logs, sockets); every
#              parent must be searchable by the postfix user (not under a 0700 mktemp dir)
#   --listen   the proxy address(es) smtpgov steers to (policy proxy.address, without port)
#   --port     the proxy port (default 25)
#   --policy   smtpgovd's policy service (daemon config policy_service_listen)
#   --clients  the VMs' address space: the only clients allowed to relay (mynetworks)
#   --egress   the quarantine source address(es) relayed mail leaves from (policy
#              proxy.egress; Postfix smtp_bind_address / smtp_bind_address6)
#   --netns    run inside this network namespace (default: the current one)
#   --name     syslog name and host name prefix (default smtpgov-proxy)
#   --hs-cache DIR  rspamd's compiled-pattern cache (default DIR/rspamd/db): compiling the
#              URL suffix list takes ~20 s on a first start, instances can share one cache
#   --offline  rspamd without the modules that need DNS, map downloads or Redis
#              (tests, the testbed, a host without resolver): GTUBE and local rules only
#   --token-file FILE  the token smtpgovd's policy_service_token_file names: the verdict
#              reporter sends it with each report (FILE must be readable by _rspamd)
#
# Everything runs from the Debian packages postfix and rspamd with their own config,
# queue and database directories: the system's Postfix and rspamd (if any) are not
# touched, and no TCP port is bound beside the SMTP listener (rspamd's milter is a unix
# socket in DIR). rspamd's verdicts go back to the policy service by client ADDR:PORT
# (verdicts.py follows rspamd's log). The exit status of start is 0 once Postfix greets on
# every listen address and rspamd's milter socket answers.
set -euo pipefail

here=$(dirname "$(readlink -f "$0")")

die() { echo "proxy: $*" >&2; exit 1; }
usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

(($#)) || usage
cmd=$1; shift
state="" listen="" port=25 policy="" clients="" egress="" netns="" name=smtpgov-proxy offline=0 hs_cache="" token_file=""
while (($#)); do
    case $1 in
        --state) state=$2; shift 2 ;;
        --listen) listen=$2; shift 2 ;;
        --port) port=$2; shift 2 ;;
        --policy) policy=$2; shift 2 ;;
        --clients) clients=$2; shift 2 ;;
        --egress) egress=$2; shift 2 ;;
        --netns) netns=$2; shift 2 ;;
        --name) name=$2; shift 2 ;;
        --offline) offline=1; shift ;;
        --hs-cache) hs_cache=$2; shift 2 ;;
        --token-file) token_file=$2; shift 2 ;;
        -h|--help) usage ;;
        *) die "unknown option $1" ;;
    esac
done
[[ -n $state ]] || die "--state DIR is required"
[[ $state == /* ]] || state=$PWD/$state
[[ $name =~ ^[a-zA-Z][a-zA-Z0-9-]{0,30}$ ]] || die "--name: letters, digits and '-' only"
[[ -z $netns || -e /run/netns/$netns ]] || die "network namespace $netns does not exist"

# in the namespace (network only: the files and users are the host's)
nsx() {
    if [[ -n $netns ]]; then nsenter --net="/run/netns/$netns" "$@"; else "$@"; fi
}

reporter_pid() {
    local p
    p=$(cat "$state/rspamd/run/verdicts.pid" 2>/dev/null) || return 1
    [[ $p =~ ^[0-9]+$ ]] && kill -0 "$p" 2>/dev/null && grep -q verdicts.py "/proc/$p/cmdline" 2>/dev/null &&
        echo "$p"
}

rspamd_pid() {
    local p
    p=$(cat "$state/rspamd/run/rspamd.pid" 2>/dev/null) || return 1
    [[ $p =~ ^[0-9]+$ ]] && kill -0 "$p" 2>/dev/null && [[ $(readlink "/proc/$p/exe" 2>/dev/null) == */rspamd ]] &&
        echo "$p"
}

split() { tr ',' ' ' <<<"$1"; }

# ---- configuration -----------------------------------------------------------------------
write_postfix() {
    local inet="" a protos v4=0 v6=0 e4="" e6="" nets=""
    for a in $(split "$listen"); do
        if [[ $a == *:* ]]; then inet+=${inet:+, }"[$a]"; v6=1; else inet+=${inet:+, }$a; v4=1; fi
    done
    if ((v4 && v6)); then protos=all; elif ((v6)); then protos=ipv6; else protos=ipv4; fi
    for a in $(split "$egress"); do
        if [[ $a == *:* ]]; then e6=$a; else e4=$a; fi
    done
    for a in $(split "$clients"); do
        [[ $a == *:* ]] && a="[${a%/*}]/${a#*/}"
        nets+=${nets:+, }$a
    done
    mkdir -p "$state/postfix/etc" "$state/postfix/queue" "$state/postfix/data"
    sed -e "s|@STATE@|$state|g" -e "s|@NAME@|$name|g" -e "s|@HOSTNAME@|$name.invalid|g" \
        -e "s|@LISTEN@|$inet|" -e "s|@PROTOCOLS@|$protos|" -e "s|@CLIENTS@|$nets|" \
        -e "s|@POLICY@|$policy|" -e "s|@EGRESS4@|$e4|" -e "s|@EGRESS6@|$e6|" \
        "$here/postfix-main.cf.in" >"$state/postfix/etc/main.cf"
    sed -e "s|@PORT@|$port|" "$here/postfix-master.cf.in" >"$state/postfix/etc/master.cf"
    chown postfix "$state/postfix/data"
    touch "$state/maillog"
}

# Modules switched off by --offline: each needs DNS (rbl, spf, dkim, dmarc, arc, asn,
# hfilter, mx_check, whitelist's SPF/DKIM checks, bimi, once_received's PTR lookup of the
# client, which waited out the 1 s DNS timeout on every message), a map or rule download (multimap's
# freemail lists, phishing, mid, mime_types, rspamd_update), the network (fuzzy_check,
# dcc, external services) or Redis (neural, reputation, ratelimit, greylist, replies,
# history_redis, url_redirector, spamtrap, dkim_signing's key store). What is left scans
# locally: GTUBE, the regexp rules, chartable, mime structure, forged recipients.
offline_modules=(rbl surbl spf dkim dmarc arc asn hfilter mx_check whitelist bimi once_received
    multimap phishing mid mime_types rspamd_update fuzzy_check dcc external_services
    antivirus p0f spamassassin neural reputation ratelimit greylist replies history_redis
    url_redirector spamtrap dkim_signing clickhouse elastic metric_exporter aws_s3)

write_rspamd() {
    local d=$state/rspamd m
    mkdir -p "$d/local/override.d" "$d/local/local.d" "$d/db" "$d/run" "$d/log"
    cp "$here"/rspamd/override.d/*.inc "$d/local/override.d/"
    {
        echo "# generated by deploy/proxy/run.sh"
        # the VMs are the clients to judge: none of them is "local" (rspamd's default
        # list holds the private ranges, fd00::/8 among them)
        echo 'local_addrs = ["127.0.0.0/8", "::1"];'
        echo "hs_cache_dir = \"${hs_cache:-$d/db}/\";"
        if ((offline)); then
            echo 'filters = "chartable,regexp";'
            # a resolver that answers nothing at once (no listener): nothing waits for DNS
            echo 'dns { nameserver = ["127.0.0.1:53"]; timeout = 1s; retransmits = 1; }'
        fi
    } >"$d/local/override.d/options.inc"
    rm -f "$d"/local/override.d/*.conf
    if ((offline)); then
        for m in "${offline_modules[@]}"; do
            echo "enabled = false;" >"$d/local/override.d/$m.conf"
        done
        # no Redis: the Bayes classifier is off
        echo 'classifier "bayes" { enabled = false; }' >"$d/local/override.d/statistic.conf"
    fi
    chown -R _rspamd:_rspamd "$d/db" "$d/run" "$d/log"
    if [[ -n $hs_cache ]]; then
        mkdir -p "$hs_cache"
        chown _rspamd:_rspamd "$hs_cache"
    fi
}

# ---- start / stop ----------------------------------------------------------------------------
wait_for() { # wait_for SECONDS COMMAND...: until COMMAND succeeds, at most SECONDS
    local end=$((SECONDS + $1))
    shift
    while ((SECONDS < end)); do
        "$@" 2>/dev/null && return 0
        sleep 0.2
    done
    return 1
}

milter_up() { [[ -S $state/rspamd/run/milter.sock ]] && nsx python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect(sys.argv[1])' "$state/rspamd/run/milter.sock"; }

greets() { # greets ADDR: Postfix answers 220 on ADDR:port
    nsx timeout 3 python3 -c '
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
sys.exit(0 if s.recv(3) == b"220" else 1)' "$1" "$port"
}

cmd_start() {
    [[ -n $listen && -n $policy && -n $clients ]] || die "start needs --listen, --policy and --clients"
    [[ $policy =~ ^(\[[0-9a-fA-F:.]+\]|[^:]+):[0-9]+$ ]] || die "--policy HOST:PORT (IPv6 as [ADDR]:PORT): '$policy'"
    command -v rspamd >/dev/null && command -v postfix >/dev/null ||
        die "needs the Debian packages postfix and rspamd (deploy/install-deps.sh)"
    [[ -z $token_file ]] || runuser -u _rspamd -- test -r "$token_file" ||
        die "--token-file $token_file is not readable by _rspamd (chgrp _rspamd, chmod 0640)"
    mkdir -p "$state"
    chmod 755 "$state"
    runuser -u postfix -- test -x "$state" ||
        die "$state is not reachable by the postfix user (a parent directory is private)"
    write_postfix
    write_rspamd
    if ! rspamd_pid >/dev/null; then
        nsx rspamd -u _rspamd -g _rspamd -c /etc/rspamd/rspamd.conf \
            --var "LOCAL_CONFDIR=$state/rspamd/local" --var "DBDIR=$state/rspamd/db" \
            --var "RUNDIR=$state/rspamd/run" --var "LOGDIR=$state/rspamd/log" \
            >"$state/rspamd/start.out" 2>&1 || die "rspamd failed to start: $(cat "$state/rspamd/start.out")"
    fi
    wait_for 120 milter_up ||
        die "rspamd's milter does not answer on $state/rspamd/run/milter.sock (see $state/rspamd/log/rspamd.log)"
    # rspamd's verdicts back to smtpgovd (unprivileged, like rspamd)
    if ! reporter_pid >/dev/null; then
        rm -f "$state/rspamd/run/verdicts.pid"
        nsx setsid runuser -u _rspamd -- python3 "$here/verdicts.py" --log "$state/rspamd/log/rspamd.log" \
            --maillog "$state/maillog" \
            --policy "$policy" --offset "$state/rspamd/run/verdicts.offset" \
            --pidfile "$state/rspamd/run/verdicts.pid" ${token_file:+--token-file "$token_file"} \
            </dev/null >>"$state/verdicts.log" 2>&1 &
        wait_for 5 reporter_pid >/dev/null || die "the verdict reporter did not start (see $state/verdicts.log)"
    fi
    if ! nsx postfix -c "$state/postfix/etc" status &>/dev/null; then
        nsx postfix -c "$state/postfix/etc" start >/dev/null 2>"$state/postfix/start.err" ||
            die "postfix failed to start: $(cat "$state/postfix/start.err")"
    else
        nsx postfix -c "$state/postfix/etc" reload >/dev/null 2>&1 || true
    fi
    local a
    for a in $(split "$listen"); do
        wait_for 10 greets "$a" || die "postfix does not greet on $a:$port (see $state/maillog)"
    done
    echo "proxy: up on $listen port $port (policy service $policy, egress ${egress:-default}, state $state)"
}

cmd_stop() {
    local p i
    if [[ -f $state/postfix/etc/main.cf ]]; then
        nsx postfix -c "$state/postfix/etc" stop &>/dev/null || true
    fi
    if p=$(reporter_pid); then
        kill "$p" 2>/dev/null || true
    fi
    if p=$(rspamd_pid); then
        kill "$p" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null || true
    fi
    # postfix stop returns before master has gone; wait until it has
    p=$(cat "$state/postfix/queue/pid/master.pid" 2>/dev/null | tr -d ' ') || true
    if [[ $p =~ ^[0-9]+$ ]]; then
        for ((i = 0; i < 50; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    fi
    echo "proxy: stopped ($state)"
}

cmd_status() {
    local rc=0
    if nsx postfix -c "$state/postfix/etc" status &>/dev/null; then echo "postfix: running"; else echo "postfix: stopped"; rc=1; fi
    if p=$(rspamd_pid); then echo "rspamd: running (pid $p)"; else echo "rspamd: stopped"; rc=1; fi
    if p=$(reporter_pid); then echo "verdict reporter: running (pid $p)"; else echo "verdict reporter: stopped"; rc=1; fi
    return $rc
}

case $cmd in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *) usage ;;
esac
