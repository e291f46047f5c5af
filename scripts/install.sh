#!/usr/bin/env bash
# install.sh — install kioskd as a systemd service on this box (idempotent).
#
#   scripts/install.sh                       build from this checkout and install
#   scripts/install.sh --binary bin/kioskd   install a binary built elsewhere
#   scripts/install.sh --with-sim            also install incode-sim (built, or --sim-binary PATH)
#   scripts/install.sh --uninstall           remove the binaries, unit and udev rule;
#                                            keep /etc/kioskd and the queue in /var/lib/kioskd
#   scripts/install.sh --root DIR            install into DIR instead of / (or DESTDIR=DIR)
#   scripts/install.sh --no-enable           do not enable the service
#
# What it installs:
#   /usr/local/bin/kioskd                     (and /usr/local/bin/incode-sim)
#   /etc/systemd/system/kioskd.service        replaced on every install; local changes
#                                             belong in `systemctl edit kioskd`
#   /etc/kioskd/kioskd.yaml                   the sample, only if there is none
#   /etc/kioskd/credentials/{api-key,hardware-id,queue-key}
#                                             empty placeholders (root, 0600), only if absent
#   /etc/udev/rules.d/60-kioskd-gpio.rules    /dev/gpiochip* to the gpio group
#   /usr/local/share/kioskd/                  kioskd.yaml.sample (always the newest, to
#                                             compare after an upgrade), kioskd-alerts.yml and
#                                             kioskd-kiosk.service (the box's own screen; see
#                                             docs/kiosk-screen.md to enable it)
#   the system user and group kioskd, the group gpio if missing, /var/lib/kioskd (0700)
#
# It enables the service when systemd is running, and restarts it when it was
# running (an upgrade). On a first install it does not start it: fill in the
# credentials first. Runs as root; otherwise re-runs itself through sudo
# after building as the calling user. Non-interactive (CI=true, no stdin).
set -euo pipefail

src=$(cd "$(dirname "$0")/.." && pwd)
prog=install.sh

root=${DESTDIR:-/}
binary=
sim=0
sim_binary=
uninstall=0
enable=1

say() { printf '%s: %s\n' "$prog" "$*"; }
die() {
	printf '%s: error: %s\n' "$prog" "$*" >&2
	exit 1
}
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

while (($#)); do
	case $1 in
	--binary) binary=${2:?--binary needs a path}; shift ;;
	--binary=*) binary=${1#*=} ;;
	--with-sim) sim=1 ;;
	--sim-binary) sim=1; sim_binary=${2:?--sim-binary needs a path}; shift ;;
	--sim-binary=*) sim=1; sim_binary=${1#*=} ;;
	--root | --prefix) root=${2:?$1 needs a directory}; shift ;;
	--root=* | --prefix=*) root=${1#*=} ;;
	--uninstall) uninstall=1 ;;
	--no-enable) enable=0 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
	shift
done

[[ $root == /* ]] || root=$(pwd)/$root
root=${root%/}
# $R prefixes every installed path; it is empty for the real system.
R=$root
[[ -n $root ]] || root=/

bin_dir=$R/usr/local/bin
unit_file=$R/etc/systemd/system/kioskd.service
conf_dir=$R/etc/kioskd
cred_dir=$conf_dir/credentials
state_dir=$R/var/lib/kioskd
share_dir=$R/usr/local/share/kioskd
udev_rule=$R/etc/udev/rules.d/60-kioskd-gpio.rules
credentials=(api-key hardware-id queue-key)

abspath() { [[ $1 == /* ]] && printf '%s\n' "$1" || printf '%s\n' "$(pwd)/$1"; }

# build PKG OUT: go build with the version from git, as the calling user.
build() {
	local pkg=$1 out=$2 version go=go
	command -v go >/dev/null || go=/usr/local/go/bin/go
	[[ -x $go ]] || command -v "$go" >/dev/null || die "go is not installed; build elsewhere and pass --binary PATH"
	version=$(git -C "$src" describe --always --dirty 2>/dev/null || echo dev)
	say "building $pkg ($version)"
	(cd "$src" && "$go" build -trimpath -ldflags "-X main.version=$version" -o "$out" "$pkg")
}

# Build before asking for privileges: root's PATH (sudo's secure_path) often
# has no Go, and the build cache belongs to the calling user.
if ((!uninstall)); then
	if [[ -z $binary || ($sim == 1 && -z $sim_binary) ]]; then
		work=$(mktemp -d)
		trap 'rm -rf "$work"' EXIT
	fi
	if [[ -z $binary ]]; then
		build ./cmd/kioskd "$work/kioskd"
		binary=$work/kioskd
	fi
	if ((sim)) && [[ -z $sim_binary ]]; then
		build ./cmd/incode-sim "$work/incode-sim"
		sim_binary=$work/incode-sim
	fi
	binary=$(abspath "$binary")
	[[ -f $binary && -x $binary ]] || die "$binary is not an executable file"
	if ((sim)); then
		sim_binary=$(abspath "$sim_binary")
		[[ -f $sim_binary && -x $sim_binary ]] || die "$sim_binary is not an executable file"
	fi
fi

if ((EUID != 0)); then
	if command -v sudo >/dev/null; then
		args=(--root "$root")
		((uninstall)) && args+=(--uninstall)
		((enable)) || args+=(--no-enable)
		if ((!uninstall)); then
			args+=(--binary "$binary")
			((sim)) && args+=(--sim-binary "$sim_binary")
		fi
		say "not root: running again through sudo"
		sudo_flags=()
		[[ -t 0 ]] || sudo_flags=(-n) # no terminal: fail instead of waiting for a password
		# Not exec: the build directory is removed by this process's trap after.
		rc=0
		sudo "${sudo_flags[@]}" -- "$0" "${args[@]}" || rc=$?
		exit "$rc"
	fi
	die "run as root (sudo is not installed)"
fi

# systemd is managed only on the real root of a booted systemd.
systemd_running() { [[ $root == / && -d /run/systemd/system ]] && command -v systemctl >/dev/null; }

# Account files: the system's through getent, a --root's directly.
has_group() {
	if [[ $root == / ]]; then getent group "$1" >/dev/null; else grep -q "^$1:" "$R/etc/group" 2>/dev/null; fi
}
has_user() {
	if [[ $root == / ]]; then getent passwd "$1" >/dev/null; else grep -q "^$1:" "$R/etc/passwd" 2>/dev/null; fi
}
# id_of passwd|group NAME: the numeric id, for chown inside a --root.
id_of() {
	if [[ $root == / ]]; then getent "$1" "$2" | cut -d: -f3; else grep "^$2:" "$R/etc/$1" | cut -d: -f3; fi
}
prefix_args=()
[[ $root == / ]] || prefix_args=(--prefix "$root")

if ((uninstall)); then
	if systemd_running; then
		say "stopping and disabling kioskd"
		systemctl disable --now kioskd.service 2>/dev/null || true
	fi
	for f in "$bin_dir/kioskd" "$bin_dir/incode-sim" "$unit_file" "$udev_rule"; do
		if [[ -e $f ]]; then
			rm -f "$f"
			say "removed ${f#"$R"}"
		fi
	done
	if [[ -d $share_dir ]]; then
		rm -rf "$share_dir"
		say "removed ${share_dir#"$R"}/"
	fi
	if [[ -d $R/etc/systemd/system/kioskd.service.d ]]; then
		say "kept /etc/systemd/system/kioskd.service.d/ (your drop-ins)"
	fi
	if systemd_running; then
		systemctl daemon-reload
		systemctl reset-failed kioskd.service 2>/dev/null || true
	fi
	say "kept /etc/kioskd (configuration and credentials), /var/lib/kioskd (the queue) and the user kioskd"
	say "remove them by hand if this box is done: rm -rf /etc/kioskd /var/lib/kioskd; userdel kioskd"
	exit 0
fi

# Accounts. gpio is not a Debian group; video is.
for g in video gpio; do
	if ! has_group "$g"; then
		groupadd "${prefix_args[@]}" --system "$g"
		say "created group $g"
	fi
done
if ! has_user kioskd; then
	useradd "${prefix_args[@]}" --system --user-group --home-dir /var/lib/kioskd --no-create-home \
		--shell /usr/sbin/nologin --comment "kioskd door agent" kioskd
	say "created system user kioskd"
fi
uid=$(id_of passwd kioskd)
gid=$(id_of group kioskd)
[[ -n $uid && -n $gid ]] || die "cannot find the ids of user and group kioskd"

# Binaries: install writes a new file, so a running kioskd keeps its old one
# until the restart below.
install -D -m 0755 "$binary" "$bin_dir/kioskd"
say "installed /usr/local/bin/kioskd ($("$bin_dir/kioskd" version 2>/dev/null || echo "version unknown"))"
if ((sim)); then
	install -D -m 0755 "$sim_binary" "$bin_dir/incode-sim"
	say "installed /usr/local/bin/incode-sim"
fi

install -D -m 0644 "$src/systemd/kioskd.service" "$unit_file"
say "installed /etc/systemd/system/kioskd.service"

install -d -m 0755 "$R/etc/udev/rules.d"
cat >"$udev_rule.tmp" <<'EOF'
# Installed by kioskd's install.sh: the GPIO character devices belong to the
# gpio group, which kioskd.service has among its SupplementaryGroups.
SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"
EOF
chmod 0644 "$udev_rule.tmp"
mv -f "$udev_rule.tmp" "$udev_rule"

install -d -m 0755 "$share_dir"
install -m 0644 "$src/systemd/kioskd.yaml" "$share_dir/kioskd.yaml.sample"
install -m 0644 "$src/systemd/kioskd-alerts.yml" "$share_dir/kioskd-alerts.yml"
install -m 0644 "$src/systemd/kioskd-kiosk.service" "$share_dir/kioskd-kiosk.service"
install -m 0644 "$src/docs/kiosk-screen.md" "$share_dir/kiosk-screen.md"

install -d -m 0755 "$conf_dir"
if [[ -e $conf_dir/kioskd.yaml ]]; then
	say "kept /etc/kioskd/kioskd.yaml (the new sample is /usr/local/share/kioskd/kioskd.yaml.sample)"
else
	install -m 0644 "$src/systemd/kioskd.yaml" "$conf_dir/kioskd.yaml"
	say "installed /etc/kioskd/kioskd.yaml: set device.source_id and incode.base_url"
fi

# Credentials are read by systemd as root and handed to the service in a
# private directory: the kioskd user never reads these files.
install -d -m 0700 -o 0 -g 0 "$cred_dir"
empty=()
for c in "${credentials[@]}"; do
	f=$cred_dir/$c
	if [[ ! -e $f ]]; then
		install -m 0600 -o 0 -g 0 /dev/null "$f"
		say "created empty placeholder /etc/kioskd/credentials/$c"
	elif [[ -n $(find "$f" -maxdepth 0 -perm /o+r) ]]; then
		say "warning: /etc/kioskd/credentials/$c is readable by everyone; chmod 0600 it"
	fi
	[[ -s $f ]] || empty+=("$c")
done

install -d -m 0700 -o "$uid" -g "$gid" "$state_dir"

if ((${#empty[@]})); then
	for c in "${empty[@]}"; do
		case $c in
		queue-key) say "note: credential queue-key is empty; it is needed only with queue.encrypt: true" ;;
		*) say "TODO: put the $c into /etc/kioskd/credentials/$c (one line, kept 0600)" ;;
		esac
	done
fi

if systemd_running; then
	if command -v udevadm >/dev/null && [[ -d /run/udev ]]; then
		udevadm control --reload || true
		udevadm trigger --subsystem-match=gpio || true
	fi
	systemctl daemon-reload
	if ((enable)); then
		systemctl enable kioskd.service
		say "enabled kioskd.service"
	fi
	if systemctl is-active --quiet kioskd.service; then
		systemctl restart kioskd.service
		say "restarted kioskd.service (upgrade)"
	else
		say "start it once the credentials and kioskd.yaml are filled in: systemctl start kioskd"
	fi
	say "check with: systemctl status kioskd; journalctl -u kioskd -f"
else
	if [[ $root == / ]]; then
		say "systemd is not running here: skipped daemon-reload and enable"
	else
		say "installed into $root: skipped daemon-reload and enable"
	fi
	say "on the box: systemctl daemon-reload && systemctl enable --now kioskd"
fi
say "done"
