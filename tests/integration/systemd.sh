#!/bin/sh
# systemd/squantd.service and the template systemd/squantd@.service pass
# `systemd-analyze verify` with their paths pointed at this build, the
# example instance configuration is valid, and the daemon speaks the notify
# protocol: READY=1 once it listens, STOPPING=1 on SIGTERM.
. "${top_srcdir:-.}/tests/integration/lib.sh"

if command -v systemd-analyze >/dev/null 2>&1; then
    bindir=$(cd "$(dirname "$SQUANTD")" && pwd)
    conf=$(cd "$top_srcdir/etc" && pwd)/squantd.conf
    mkdir -p "$T/unit"
    sed -e "s|@sbindir@|$bindir|g" -e "s|@sysconfdir@/squantd/squantd.conf|$conf|g" \
        -e "s|@docdir@|/usr/share/doc/squantd|g" "$top_srcdir/systemd/squantd.service.in" \
        >"$T/unit/squantd.service"
    # Documentation= names man:squantd(8) and man:squantd.conf(5): verify
    # looks them up with man, here in this build's pages.
    mkdir -p "$T/man/man5" "$T/man/man8"
    cp "$top_builddir/man/squantd.conf.5" "$T/man/man5/" && cp "$top_builddir/man/squantd.8" "$T/man/man8/"
    man=--man=yes
    command -v man >/dev/null 2>&1 || { man=--man=no; echo "man not found: Documentation= not checked"; }
    rc=0
    MANPATH=$T/man systemd-analyze verify $man "$T/unit/squantd.service" >"$T/verify.out" 2>&1 || rc=$?
    check "systemd-analyze verify exits 0" [ "$rc" = 0 ]
    check "and prints nothing: $(cat "$T/verify.out")" [ ! -s "$T/verify.out" ]
    for k in Type=notify ExecStartPre= ExecReload= Restart= StateDirectory=squantd \
        ProtectSystem=strict PrivateTmp=yes NoNewPrivileges=yes RestrictAddressFamilies= \
        '#MemoryMax=' DynamicUser=yes; do
        check "unit has $k" grep -q "^$k" "$T/unit/squantd.service"
    done
    # The template unit for several instances (squantd@NAME), the same way.
    sed -e "s|@sbindir@|$bindir|g" -e "s|@sysconfdir@|$(cd "$top_srcdir/etc" && pwd)|g" \
        -e "s|@docdir@|/usr/share/doc/squantd|g" "$top_srcdir/systemd/squantd@.service.in" \
        >"$T/unit/squantd@.service"
    cp "$T/unit/squantd@.service" "$T/unit/squantd@b.service"
    for u in squantd@.service squantd@b.service; do
        rc=0
        MANPATH=$T/man systemd-analyze verify $man "$T/unit/$u" >"$T/verify.out" 2>&1 || rc=$?
        check "systemd-analyze verify $u exits 0" [ "$rc" = 0 ]
        check "and prints nothing: $(cat "$T/verify.out")" [ ! -s "$T/verify.out" ]
    done
    for k in Type=notify ExecStartPre= ExecReload= Restart= 'StateDirectory=squantd/%i' \
        'RuntimeDirectory=squantd/%i' ProtectSystem=strict PrivateTmp=yes NoNewPrivileges=yes \
        DynamicUser=yes; do
        check "template unit has $k" grep -q "^$k" "$T/unit/squantd@.service"
    done
    for k in ExecStartPre ExecStart; do
        check "$k gives the instance its name, spool and config" grep -q \
            "^$k=.*--config .*/squantd@%i.conf --instance %i --spool-dir %S/squantd/%i\$" "$T/unit/squantd@.service"
    done
else
    echo "systemd-analyze not found: unit not verified"
fi

# The example configuration of one instance, as the template unit runs it.
rc=0
"$SQUANTD" --check-config --config "$top_srcdir/etc/squantd@.conf.example" --instance b \
    --spool-dir "$T/spool-b" >"$T/check.out" 2>&1 || rc=$?
check "squantd@.conf.example passes --check-config: $(cat "$T/check.out")" [ "$rc" = 0 ]
check "it listens on its own port" grep -q '^listen = 127.0.0.1:8081$' "$top_srcdir/etc/squantd@.conf.example"

# The notify protocol, over a datagram socket of our own (Python's stdlib).
if $PYTHON -c 'import socket; socket.AF_UNIX' 2>/dev/null; then
    $PYTHON - "$T/notify.sock" >"$T/notify.log" 2>&1 <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(30)
seen = []
try:
    while "STOPPING=1" not in seen:
        seen.append(s.recv(4096).decode())
        print(seen[-1], flush=True)
except socket.timeout:
    pass
PY
    lp=$!
    i=0; while [ ! -S "$T/notify.sock" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
    export NOTIFY_SOCKET="$T/notify.sock"
    start_daemon
    unset NOTIFY_SOCKET
    sleep 0.2
    check "READY=1 sent once listening" grep -q 'READY=1' "$T/notify.log"
    stop_daemon 0
    wait $lp || true
    check "STOPPING=1 sent on SIGTERM" grep -q 'STOPPING=1' "$T/notify.log"
fi
finish
