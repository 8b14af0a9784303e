#!/usr/bin/env bash
# Builds posd_<version>_<arch>.deb: scripts/build-deb.sh amd64|arm64|armhf
#
#   amd64        native release build (target/release, shared with `cargo build --release`)
#   arm64/armhf  cross build: rustup target + Debian cross gcc + the target's libudev-dev
#                (serialport), then the ARM binaries' --version and the unit tests of the core
#                and the product's library run under qemu-user (binfmt_misc is not assumed:
#                cargo's runner is set).
# CARGO_TARGET_DIR is honoured (the binaries and the .deb are looked for there).
#
# Environment: POSD_SKIP_QEMU_TESTS=1 skips the unit tests under qemu (they need a second,
# test-profile build of the library); --version under qemu always runs.
# Installs what it needs (rustup target, apt packages, cargo-deb) when missing. Run as root, or
# have those installed already. Progress goes to stderr; stdout is the .deb's path alone.
set -euo pipefail
cd "$(dirname "$0")/.."

arch=${1:-}
case "$arch" in
amd64) triple=x86_64-unknown-linux-gnu gnu=x86_64-linux-gnu qemu= ;;
arm64) triple=aarch64-unknown-linux-gnu gnu=aarch64-linux-gnu qemu=qemu-aarch64-static ;;
armhf) triple=armv7-unknown-linux-gnueabihf gnu=arm-linux-gnueabihf qemu=qemu-arm-static ;;
*)
	echo "usage: $0 amd64|arm64|armhf" >&2
	exit 2
	;;
esac
host_arch=$(dpkg --print-architecture)
cross=$([ "$arch" != "$host_arch" ] && echo yes || echo no)
if [ "$cross" = no ] && [ "$arch" != amd64 ]; then
	echo "native builds are only wired for amd64 here; on an $arch host use: cargo deb" >&2
	exit 2
fi

# --- what the build needs -----------------------------------------------------------------
need=()
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev) # nokhwa's V4L2 bindings (bindgen)
if [ "$cross" = yes ]; then
	if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
		dpkg --add-architecture "$arch"
		apt_update=yes
	fi
	command -v "$gnu-gcc" >/dev/null 2>&1 || need+=("gcc-$gnu")
	dpkg -s "libc6-dev-$arch-cross" >/dev/null 2>&1 || need+=("libc6-dev-$arch-cross")
	dpkg -s "libudev-dev:$arch" >/dev/null 2>&1 || need+=("libudev-dev:$arch") # serialport
	command -v "$qemu" >/dev/null 2>&1 || need+=(qemu-user-static)
else
	dpkg -s "libudev-dev:$host_arch" >/dev/null 2>&1 || need+=(libudev-dev) # serialport
fi
if [ ${#need[@]} -gt 0 ] || [ "${apt_update:-}" = yes ]; then
	echo "installing: ${need[*]}" >&2
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	[ ${#need[@]} -eq 0 ] || apt-get install -y -qq "${need[@]}" >/dev/null
fi
rustup target list --installed | grep -qx "$triple" || rustup target add "$triple"
command -v cargo-deb >/dev/null 2>&1 || cargo install --locked cargo-deb --version '^3.8'

# --- the conffile: the example configuration with an empty terminal id --------------------
# config/posd.toml is the complete, valid example (its unit test keeps it so). The package
# ships it with `id = ""`: `posd check-config` then fails on terminal.id, the unit's
# ExecCondition skips the service, and the box waits for its operator instead of joining the
# broker as terminal T0001 next to every other fresh box.
mkdir -p target/posd-deb
awk '
	/^\[/ { section = $0 }
	section == "[terminal]" && /^id *=/ && !done {
		print "id = \"\"   # REQUIRED: this box'"'"'s terminal id; posd does not start until it is set"
		done = 1; next
	}
	{ print }
	END { if (!done) exit 1 }
' config/posd.toml >target/posd-deb/posd.toml || {
	echo "config/posd.toml has no [terminal] id line to blank" >&2
	exit 1
}

# --- build --------------------------------------------------------------------------------
tdir=${CARGO_TARGET_DIR:-target}
start=$(date +%s)
if [ "$cross" = yes ]; then
	T=$(echo "$triple" | tr 'a-z-' 'A-Z_')
	t=$(echo "$triple" | tr '-' '_')
	export "CARGO_TARGET_${T}_LINKER=$gnu-gcc"
	export "CC_${t}=$gnu-gcc"
	export "PKG_CONFIG_ALLOW_CROSS_${t}=1"
	export "PKG_CONFIG_LIBDIR_${t}=/usr/lib/$gnu/pkgconfig:/usr/share/pkgconfig"
	# Not -L /usr/$gnu: with libc6:$arch installed, mixing two glibcs hangs every new thread.
	export "CARGO_TARGET_${T}_RUNNER=$qemu"
	nice -n 10 cargo build --release --locked --bins --target "$triple"
	bindir=$tdir/$triple/release
	target_args=(--target "$triple")
else
	nice -n 10 cargo build --release --locked --bins
	bindir=$tdir/release
	target_args=()
fi
echo "build: $(($(date +%s) - start)) s" >&2

# --- package ------------------------------------------------------------------------------
# --no-build: the binaries above (the release profile strips them). --no-strip: cargo-deb would
# use the host's strip on ARM binaries.
deb=$(cargo deb --no-build --no-strip --locked "${target_args[@]}" | tail -n 1)
[ -f "$deb" ] || {
	echo "cargo deb did not report a package ($deb)" >&2
	exit 1
}
# md5sums (debsums, dpkg --verify): cargo-deb 3.x writes none, so add it — every shipped file
# but the conffiles, as dh_md5sums does — and rebuild the archive as root:root.
if ! dpkg-deb -I "$deb" md5sums >/dev/null 2>&1; then
	tree=$(mktemp -d)
	chmod 0755 "$tree"
	dpkg-deb -R "$deb" "$tree"
	conffiles=$(sed 's|^/||' "$tree/DEBIAN/conffiles" 2>/dev/null || true)
	(cd "$tree" && find . -path ./DEBIAN -prune -o -type f -printf '%P\n' | sort |
		grep -vxF -f <(printf '%s\n' "$conffiles" | sed '/^$/d'; echo '/nonexistent') |
		tr '\n' '\0' | xargs -0 -r md5sum >DEBIAN/md5sums)
	chmod 0644 "$tree/DEBIAN/md5sums"
	dpkg-deb --root-owner-group -Zxz -b "$tree" "$deb" >/dev/null
	rm -rf "$tree"
fi
want_arch=$(dpkg-deb --field "$deb" Architecture)
[ "$want_arch" = "$arch" ] || {
	echo "$deb is for $want_arch, not $arch" >&2
	exit 1
}

# --- smoke: the binaries run on their architecture ----------------------------------------
run() { if [ -n "$qemu" ] && [ "$cross" = yes ]; then "$qemu" "$@"; else "$@"; fi; }
v=$(run "$bindir/posd" --version)
echo "$arch: $v" >&2
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
case "$v" in
"posd $(dpkg-deb --field "$deb" Version | sed 's/-[^-]*$//') ($commit)") ;;
*)
	echo "posd --version says '$v'; expected version and commit $commit" >&2
	exit 1
	;;
esac
run "$bindir/posctl" --version >/dev/null
# The man pages and completion scripts are committed (packaging/man, packaging/completions) and
# shipped as they are; tests/cli_docs.rs keeps them equal to the command lines. Should this
# build's posctl disagree (the tests were not run), no stale script ships.
for c in bash:posctl.bash zsh:_posctl fish:posctl.fish; do
	if ! run "$bindir/posctl" completions "${c%%:*}" | cmp -s - "packaging/completions/${c#*:}"; then
		echo "packaging/completions/${c#*:} is not what this posctl prints; refresh the pages and" \
			"scripts with: POSD_UPDATE_CLI_DOCS=1 cargo test -p posd --test cli_docs" >&2
		exit 1
	fi
done
if [ "$cross" = yes ] && [ "${POSD_SKIP_QEMU_TESTS:-}" != 1 ]; then
	# The unit tests of the pure core (codes, state machines, the till, receipts, ...) and of
	# the product's library under qemu. --release reuses the dependencies just built;
	# integration tests need mosquitto and spawn processes, which the native CI run covers.
	start=$(date +%s)
	nice -n 10 cargo test --release --locked -p posd-core -p posd --lib --target "$triple" >&2
	echo "unit tests under $qemu: $(($(date +%s) - start)) s" >&2
fi

echo "$deb: $(stat -c %s "$deb") bytes" >&2
echo "$deb"
