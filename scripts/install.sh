#!/usr/bin/env bash
# Installs semples on a server: binaries, the systemd unit, sysusers/tmpfiles entries, the
# configuration (never overwriting an existing one) and the spool.
# Usage: scripts/install.sh [PREFIX]        (make install PREFIX=/usr/local)
# DESTDIR=/some/root stages everything under that root (packaging, tests) and skips the steps
# that touch the running system (users, tmpfiles, systemctl).
set -euo pipefail
cd "$(dirname "$0")/.."
PREFIX="${1:-/usr/local}"
DESTDIR="${DESTDIR:-}"
BUILD="${BUILD:-.build/release}"

for bin in semples semplesd; do
  if [ ! -x "$BUILD/$bin" ]; then
    echo "install: '$BUILD/$bin' is missing; run 'swift build -c release' (or 'make release') first" >&2
    exit 1
  fi
done

install -d "$DESTDIR$PREFIX/bin" "$DESTDIR/etc/semples" "$DESTDIR/etc/systemd/system" \
           "$DESTDIR/usr/lib/sysusers.d" "$DESTDIR/usr/lib/tmpfiles.d"
install -m 0755 "$BUILD/semples" "$BUILD/semplesd" "$DESTDIR$PREFIX/bin/"

# The unit names the binary by its installed path.
sed "s|^ExecStart=/usr/local/bin/semplesd|ExecStart=$PREFIX/bin/semplesd|" systemd/semplesd.service \
  > "$DESTDIR/etc/systemd/system/semplesd.service"
chmod 0644 "$DESTDIR/etc/systemd/system/semplesd.service"
install -m 0644 systemd/semples.sysusers.conf "$DESTDIR/usr/lib/sysusers.d/semples.conf"
install -m 0644 systemd/semples.tmpfiles.conf "$DESTDIR/usr/lib/tmpfiles.d/semples.conf"

# The server configuration: the repository's, with the system spool and the installed job command.
config="$DESTDIR/etc/semples/semplesd.yaml"
if [ -e "$config" ]; then
  echo "install: keeping the existing $config (new default written to $config.new)"
  config="$config.new"
fi
sed -e "s|^spool: .*|spool: /var/spool/semples|" \
    -e "s|^# job_command: .*|job_command: [$PREFIX/bin/semples, run, --log-file, \"-\"]|" etc/semplesd.yaml > "$config"
chmod 0644 "$config"

if [ -d man ]; then
  for page in man/*.[0-9]; do
    [ -e "$page" ] || continue
    section="${page##*.}"
    install -d "$DESTDIR$PREFIX/share/man/man$section"
    install -m 0644 "$page" "$DESTDIR$PREFIX/share/man/man$section/"
  done
fi

if [ -d completions ]; then
  share="$DESTDIR$PREFIX/share"
  for bin in semples semplesd; do
    if [ -e "completions/$bin.bash" ]; then
      install -d "$share/bash-completion/completions"
      install -m 0644 "completions/$bin.bash" "$share/bash-completion/completions/$bin"
    fi
    if [ -e "completions/_$bin" ]; then
      install -d "$share/zsh/site-functions"
      install -m 0644 "completions/_$bin" "$share/zsh/site-functions/_$bin"
    fi
    if [ -e "completions/$bin.fish" ]; then
      install -d "$share/fish/vendor_completions.d"
      install -m 0644 "completions/$bin.fish" "$share/fish/vendor_completions.d/$bin.fish"
    fi
  done
fi

if [ -n "$DESTDIR" ]; then
  install -d "$DESTDIR/var/spool/semples"/{incoming,control,outbox,rejected,.state}
  echo "install: staged under $DESTDIR"
  exit 0
fi

if command -v systemd-sysusers >/dev/null 2>&1; then
  systemd-sysusers /usr/lib/sysusers.d/semples.conf
else
  getent group semples-submit >/dev/null || groupadd --system semples-submit
  getent passwd semples >/dev/null || useradd --system --home-dir /var/lib/semples --shell /usr/sbin/nologin \
    --user-group --groups semples-submit semples
fi
if command -v systemd-tmpfiles >/dev/null 2>&1; then
  systemd-tmpfiles --create /usr/lib/tmpfiles.d/semples.conf
else
  install -d -o semples -g semples -m 0755 /var/spool/semples
  for d in incoming control; do install -d -o semples -g semples-submit -m 3770 "/var/spool/semples/$d"; done
  for d in outbox rejected .state; do install -d -o semples -g semples-submit -m 2750 "/var/spool/semples/$d"; done
fi
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  echo "install: done. Start it with: systemctl enable --now semplesd"
else
  echo "install: done (systemd is not running here; start $PREFIX/bin/semplesd --config /etc/semples/semplesd.yaml yourself)"
fi
echo "install: add submitters with: usermod -aG semples-submit USER"
