#!/usr/bin/env bash
# Checks the posd .deb and its unit; exits non-zero on the first failure.
#
#   scripts/check-package.sh [--boot] [posd_<v>_amd64.deb]
#
# Without a .deb it builds one with scripts/build-deb.sh amd64 (one release build, reused).
#   1. lintian: no errors; every override has a comment saying why.
#   2. the unit: systemd-analyze verify, and systemd-analyze security --offline exposure <= 2.5.
#   3. a throwaway Debian root (debootstrap, cached in /var/cache/posd-check): dpkg --root
#      install; files, owners, modes, user and groups, enablement, conffile, the config gate
#      (the shipped file is refused, a real id is accepted - by the posd user); udev rules parse;
#      remove keeps the journal and the configuration; purge removes them (a journal it cannot
#      count the unacknowledged events of is kept aside, and said so); man pages and completions.
#   4. --boot (stretch, not in CI): boots that root with systemd as PID 1 in systemd-nspawn and
#      shows posd READY, `posctl status`, and a watchdog restart when its main loop hangs.
# Needs root (debootstrap, dpkg --root, chroot). Installs missing tools with apt-get.
set -Eeuo pipefail
# A command that fails outside the explicit checks still says where.
trap 'echo "FAIL: line $LINENO: $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/.."

boot=no
deb=
for a in "$@"; do
	case "$a" in
	--boot) boot=yes ;;
	*.deb) deb=$a ;;
	*)
		echo "usage: $0 [--boot] [posd_<v>_amd64.deb]" >&2
		exit 2
		;;
	esac
done

fail() {
	echo "FAIL: $*" >&2
	exit 1
}
ok() { echo "ok: $*"; }

[ "$(id -u)" = 0 ] || fail "run as root (debootstrap, dpkg --root, chroot)"

need=()
command -v lintian >/dev/null 2>&1 || need+=(lintian)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
[ "$boot" = no ] || command -v systemd-nspawn >/dev/null 2>&1 || need+=(systemd-container)
if [ ${#need[@]} -gt 0 ]; then
	echo "installing: ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq "${need[@]}" >/dev/null
fi

if [ -z "$deb" ]; then
	deb=$(scripts/build-deb.sh amd64 | tail -n 1)
fi
[ -f "$deb" ] || fail "no package: $deb"
[ "$(dpkg-deb --field "$deb" Architecture)" = amd64 ] || fail "$deb: the checks run the amd64 package"
echo "package: $deb ($(stat -c %s "$deb") bytes)"
# md5sums (debsums, dpkg --verify) and the shipped docs are part of the package.
# (Read whole, then searched: `grep -q` would close the pipe early and, under pipefail, fail
# the check with dpkg-deb's SIGPIPE.)
sums=$(dpkg-deb -I "$deb" md5sums 2>/dev/null || true)
grep -q ' usr/bin/posd$' <<<"$sums" || fail "$deb: no md5sums for usr/bin/posd"
listing=$(dpkg-deb -c "$deb")
grep -q 'usr/share/doc/posd/docs/posctl.md$' <<<"$listing" || fail "$deb: docs/ not shipped"
# Every generated man page (packaging/man, tests/cli_docs.rs keeps them current), gzipped.
for page in packaging/man/*.1 packaging/man/*.8; do
	f=$(basename "$page")
	grep -q "usr/share/man/man${f##*.}/$f.gz\$" <<<"$listing" || fail "$deb: man page $f not shipped gzipped"
done

# --- 1. lintian -----------------------------------------------------------------------------
# Every override needs a comment line right above it (its justification).
awk '
	/^#/ { why = 1; next }
	/^[[:space:]]*$/ { why = 0; next }
	{ if (!why) { print "override without a comment: " $0; bad = 1 } }
	END { exit bad }
' packaging/lintian-overrides || fail "packaging/lintian-overrides: justify each override"
start=$(date +%s)
lintian_out=$(lintian --fail-on error --display-info --show-overrides "$deb" 2>&1) || {
	echo "$lintian_out"
	fail "lintian reports errors"
}
echo "$lintian_out" | sed 's/^/  lintian: /'
# An override that no longer matches anything is a stale excuse.
if echo "$lintian_out" | grep -q 'unused-override'; then fail "unused lintian override"; fi
ok "lintian: no errors ($(echo "$lintian_out" | grep -c '^W:' || true) warnings, $(($(date +%s) - start)) s)"

# --- 2. the unit, on its own ----------------------------------------------------------------
sec=$(systemd-analyze security --offline=yes --threshold=25 systemd/posd.service 2>&1) || {
	echo "$sec" | grep -F '✗' || true
	fail "systemd-analyze security: $(echo "$sec" | tail -n 1)"
}
ok "systemd-analyze security --offline: $(echo "$sec" | tail -n 1 | sed 's/^→ //')"

# --- 3. a throwaway root ----------------------------------------------------------------------
cache=/var/cache/posd-check/bootstrap-root
if [ ! -x "$cache/usr/bin/dpkg" ] || [ ! -e "$cache/lib/systemd/systemd" ]; then
	# Debian 12 with systemd and udev, the way a box is set up. ~1.5 min once, then reused.
	rm -rf "$cache"
	mkdir -p "$(dirname "$cache")"
	debootstrap --variant=minbase --include=systemd,systemd-sysv,udev,dbus,init-system-helpers,libudev1,iproute2 \
		bookworm "$cache" http://deb.debian.org/debian >/dev/null
fi
work=$(mktemp -d /var/tmp/posd-check.XXXXXX)
root=$work/root
cleanup() {
	for m in "$root/sys" "$root/proc"; do mountpoint -q "$m" && umount -l "$m"; done
	rm -rf "$work"
}
trap cleanup EXIT
cp -a "$cache" "$root"
cp "$deb" "$root/tmp/posd.deb"
# A box has /proc and /sys; systemd-tmpfiles (postinst) and udevadm need them.
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"

dpkg --root="$root" -i "$root/tmp/posd.deb" >"$work/install.log" 2>&1 || {
	cat "$work/install.log"
	fail "dpkg -i into the throwaway root"
}
ok "dpkg --root -i (postinst said: $(grep -c '^posd:' "$work/install.log") lines of advice)"
grep -q "terminal.id" "$work/install.log" || fail "the postinst did not say the config needs a terminal id"

in_root() { chroot "$root" "$@"; }
# path mode owner:group [type]
expect() {
	local got
	got=$(in_root stat -c '%a %U:%G %F' "$1") || fail "$1 missing"
	case "$got" in
	"$2 $3 $4"*) ok "$1 $got" ;;
	*) fail "$1 is '$got', want '$2 $3 $4'" ;;
	esac
}
expect /usr/bin/posd 755 root:root "regular file"
expect /usr/bin/posctl 755 root:root "regular file"
expect /etc/posd 755 root:root directory
expect /etc/posd/posd.toml 640 root:posd "regular file"
expect /etc/posd/tls 750 root:posd directory
expect /var/lib/posd 750 posd:posd directory
expect /lib/systemd/system/posd.service 644 root:root "regular file"
expect /lib/udev/rules.d/70-posd.rules 644 root:root "regular file"
expect /usr/lib/sysusers.d/posd.conf 644 root:root "regular file"
expect /usr/lib/tmpfiles.d/posd.conf 644 root:root "regular file"
expect /usr/lib/modules-load.d/posd.conf 644 root:root "regular file"
expect /usr/share/man/man8/posd.8.gz 644 root:root "regular file"
expect /usr/share/man/man1/posctl.1.gz 644 root:root "regular file"
expect /usr/share/man/man1/posctl-sale.1.gz 644 root:root "regular file"
expect /usr/share/man/man8/posd-check-config.8.gz 644 root:root "regular file"
expect /usr/share/bash-completion/completions/posctl 644 root:root "regular file"
expect /usr/share/zsh/vendor-completions/_posctl 644 root:root "regular file"
expect /usr/share/fish/vendor_completions.d/posctl.fish 644 root:root "regular file"
expect /usr/share/doc/posd/copyright 644 root:root "regular file"
expect /usr/share/doc/posd/changelog.Debian.gz 644 root:root "regular file"

dpkg --root="$root" --status posd | sed -n '/^Conffiles:/,/^[A-Z]/p' | grep -q ' /etc/posd/posd.toml ' ||
	fail "/etc/posd/posd.toml is not a conffile"
ok "/etc/posd/posd.toml is a conffile"

in_root getent passwd posd | grep -q ':/var/lib/posd:/usr/sbin/nologin$' || fail "user posd: $(in_root getent passwd posd)"
groups=$(in_root id -nG posd)
for g in posd input dialout lp video; do
	echo " $groups " | grep -q " $g " || fail "posd is not in group $g (groups: $groups)"
done
ok "user posd, groups: $groups"

[ -L "$root/etc/systemd/system/multi-user.target.wants/posd.service" ] || fail "posd.service is not enabled"
ok "posd.service enabled"

# --man=no: the throwaway root has no man-db; the man pages exist (above) and lintian runs
# them through groff (tag groff-message).
out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no --root="$root" posd.service 2>&1) || {
	echo "$out"
	fail "systemd-analyze verify"
}
[ -z "$out" ] || {
	echo "$out"
	fail "systemd-analyze verify printed warnings"
}
ok "systemd-analyze verify --root: clean"

# The configuration gate: the shipped file is refused (the ExecCondition command, as posd)...
if out=$(in_root setpriv --reuid=posd --regid=posd --init-groups posd check-config /etc/posd/posd.toml 2>&1); then
	fail "the shipped configuration passes check-config: the service would start unconfigured"
fi
echo "$out" | grep -q 'terminal.id' || fail "check-config does not name terminal.id: $out"
ok "shipped config refused: $(echo "$out" | head -n 1)"
# ...and accepted, read by the posd user, once it has a terminal id.
sed -i 's/^id = "".*/id = "SHOP42-1"/' "$root/etc/posd/posd.toml"
out=$(in_root setpriv --reuid=posd --regid=posd --init-groups posd check-config /etc/posd/posd.toml 2>&1) ||
	fail "configured file refused: $out"
ok "configured file accepted as user posd: $out"
# Nobody else reads it.
if in_root setpriv --reuid=nobody --regid=nogroup --clear-groups cat /etc/posd/posd.toml >/dev/null 2>&1; then
	fail "other users can read /etc/posd/posd.toml"
fi
ok "other users cannot read the configuration"

# udev parses the rules (no syntax complaints about 70-posd.rules) on a real device.
dev=$(ls -d /sys/class/tty/tty* 2>/dev/null | head -n 1)
udev_out=$(in_root udevadm test --action=add "$dev" 2>&1) || true
echo "$udev_out" | grep -q '70-posd.rules' || fail "udevadm test did not read 70-posd.rules"
if echo "$udev_out" | grep '70-posd.rules' | grep -Eiq 'invalid|error|unknown|ignoring'; then
	echo "$udev_out" | grep '70-posd.rules'
	fail "udev complains about 70-posd.rules"
fi
ok "udev reads 70-posd.rules without complaint"

# Remove keeps the journal and the configuration; purge removes them - except a journal that
# may hold events the host has not acknowledged. This one is not SQLite: prerm cannot count its
# events (posd pending-events), so the purge keeps it aside and says so. (tests/package_purge.rs
# runs the same scripts against real journals, acknowledged and not.)
echo journal >"$root/var/lib/posd/posd.sqlite"
chroot "$root" chown posd:posd /var/lib/posd/posd.sqlite
dpkg --root="$root" -r posd >"$work/remove.log" 2>&1 || {
	cat "$work/remove.log"
	fail "dpkg -r"
}
[ ! -e "$root/usr/bin/posd" ] || fail "remove left /usr/bin/posd"
[ -f "$root/var/lib/posd/posd.sqlite" ] || fail "remove deleted the journal"
grep -q 'SHOP42-1' "$root/etc/posd/posd.toml" || fail "remove lost the configuration"
grep -q '^posd: the journal could not be read' "$work/remove.log" ||
	fail "prerm did not say the journal could not be read: $(cat "$work/remove.log")"
ok "remove: binaries gone, journal and configuration kept"
dpkg --root="$root" -P posd >"$work/purge.log" 2>&1 || {
	cat "$work/purge.log"
	fail "dpkg -P"
}
for p in /var/lib/posd /etc/posd /lib/systemd/system/posd.service \
	/etc/systemd/system/multi-user.target.wants/posd.service /lib/udev/rules.d/70-posd.rules; do
	[ ! -e "$root$p" ] && [ ! -L "$root$p" ] || fail "purge left $p"
done
[ -z "$(dpkg --root="$root" -l posd 2>/dev/null | grep '^[a-z][a-z] *posd ' | grep -v '^un')" ] ||
	fail "dpkg still knows posd after purge"
kept=$(find "$root/var/lib" -maxdepth 1 -name 'posd-unsynced-*' | head -n 1)
[ -n "$kept" ] && [ -f "$kept/posd.sqlite" ] || fail "purge did not keep the unreadable journal aside"
grep -q "kept in ${kept#"$root"}, not deleted" "$work/purge.log" ||
	fail "purge did not say where it kept the journal: $(cat "$work/purge.log")"
ok "purge: configuration and unit enablement gone; the unreadable journal kept in ${kept#"$root"}, and said so"

# --- 4. --boot: systemd as PID 1 (stretch; ~1 min, not in CI) ---------------------------------
if [ "$boot" = yes ]; then
	command -v mosquitto >/dev/null 2>&1 || {
		export DEBIAN_FRONTEND=noninteractive
		apt-get install -y -qq mosquitto >/dev/null
	}
	broot=$work/boot
	cp -a "$cache" "$broot"
	mount -t proc proc "$broot/proc"
	dpkg --root="$broot" -i "$deb" >/dev/null 2>&1 || fail "boot root: dpkg -i"
	umount "$broot/proc"
	# A broker of our own on a free loopback port (the container shares the host's network).
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$port" >"$work/mosquitto.conf"
	chmod 0755 "$work"
	chmod 0644 "$work/mosquitto.conf"
	mosquitto -c "$work/mosquitto.conf" >"$work/mosquitto.log" 2>&1 &
	mosq_pid=$!
	sed -i "s/^id = \"\".*/id = \"BOOT-1\"/; s|^url = .*|url = \"mqtt://127.0.0.1:$port\"|" "$broot/etc/posd/posd.toml"
	# A short watchdog so the hang test takes seconds, not half a minute.
	mkdir -p "$broot/etc/systemd/system/posd.service.d"
	printf '[Service]\nWatchdogSec=6\n' >"$broot/etc/systemd/system/posd.service.d/zz-check.conf"
	# --register=no --keep-unit: the host need not run systemd or machined.
	systemd-nspawn -q --register=no --keep-unit -D "$broot" -b </dev/null >"$work/boot.log" 2>&1 &
	nspawn_pid=$!
	stop_boot() {
		if kill -0 "$nspawn_pid" 2>/dev/null; then
			[ -z "${leader:-}" ] || nsenter -t "$leader" -m -u -i -n -p -r -w systemctl poweroff || true
			for _ in $(seq 1 30); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 1; done
			# Still up (it never finished booting, say): SIGKILL the container's init, which ends
			# its whole PID namespace, then nspawn. Its root is deleted only after that.
			for c in $(ps --ppid "$nspawn_pid" -o pid= || true); do kill -KILL "$c" 2>/dev/null || true; done
			for _ in $(seq 1 10); do kill -0 "$nspawn_pid" 2>/dev/null || break; sleep 1; done
			kill -KILL "$nspawn_pid" 2>/dev/null || true
		fi
		kill "$mosq_pid" 2>/dev/null || true
		cleanup
	}
	trap stop_boot EXIT
	leader=
	for _ in $(seq 1 30); do
		# The container's init is the child of nspawn that runs systemd (nspawn forks a short-lived
		# helper first; ps exits 1 while there is no child at all).
		leader=
		for c in $(ps --ppid "$nspawn_pid" -o pid= || true); do
			[ "$(cat "/proc/$c/comm" 2>/dev/null)" = systemd ] && leader=$c
		done
		[ -z "$leader" ] || break
		sleep 1
	done
	[ -n "$leader" ] || fail "the container did not boot: $(tail -n 5 "$work/boot.log")"
	ins() { nsenter -t "$leader" -m -u -i -n -p -r -w "$@"; }
	# Empty while systemd inside is still starting up.
	prop() { ins systemctl show posd.service -p "$1" --value 2>/dev/null || true; }
	# Type=notify: "active" means posd sent READY=1.
	for _ in $(seq 1 60); do
		[ "$(prop ActiveState)" = active ] && break
		sleep 1
	done
	[ "$(prop ActiveState)" = active ] || {
		ins journalctl -u posd --no-pager | tail -n 20 || true
		fail "posd did not reach READY under systemd"
	}
	ok "booted Debian with systemd as PID 1: posd.service active (READY=1), $(ins journalctl -u posd --no-pager -o cat | grep -m1 ' ready: ')"
	status=$(ins posctl status) || fail "posctl status"
	echo "$status" | grep -Eq '^online +true' || fail "posctl status: not online: $status"
	ok "posctl status: $(echo "$status" | tr -s ' ' | tr '\n' ';')"
	# A hung main loop (here: the whole process stopped) stops the WATCHDOG=1 pings.
	main=$(prop MainPID)
	ins sh -c "kill -STOP $main"
	for _ in $(seq 1 40); do
		sleep 1
		[ "$(prop NRestarts)" = 1 ] && [ "$(prop ActiveState)" = active ] && [ "$(prop MainPID)" != "$main" ] && break
	done
	[ "$(prop NRestarts)" = 1 ] && [ "$(prop ActiveState)" = active ] || {
		ins journalctl -u posd --no-pager | tail -n 20 || true
		fail "the watchdog did not restart a hung posd"
	}
	ins journalctl -u posd --no-pager -o cat | grep -q 'Watchdog timeout' || fail "restarted, but not by the watchdog"
	ok "watchdog: hung pid $main killed (SIGABRT) and restarted as pid $(prop MainPID)"
	# An invalid configuration: skipped by ExecCondition, not failed, no restart loop.
	sed -i 's/^id = "BOOT-1"/id = ""/' "$broot/etc/posd/posd.toml"
	ins systemctl restart posd.service || fail "systemctl restart with an invalid config should not fail"
	sleep 5
	[ "$(prop Result)" = exec-condition ] && [ "$(prop ActiveState)" = inactive ] && [ "$(prop NRestarts)" = 0 ] ||
		fail "invalid config: $(prop ActiveState) $(prop Result) restarts=$(prop NRestarts)"
	ok "invalid config: posd.service skipped (exec-condition), no restart loop"
	stop_boot
	trap - EXIT
fi

echo "all package checks passed"
