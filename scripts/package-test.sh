#!/usr/bin/env bash
# package-test.sh — build the Debian packages and test them on this machine
# (make package-test; CI runs it after make test). As root, on Debian 12.
#
#   1. make deb: kioskd_V_amd64.deb and kioskd_V_arm64.deb, and the same
#      amd64 binary repacked as the older version V~pkgtest1;
#   2. lintian: no errors (warnings are printed);
#   3. the arm64 binary under qemu-user: version, check-config, snapshot;
#   4. on this machine: install the older package, check the user, the
#      directories, the conffile, the enabled unit and systemd-analyze verify
#      on the installed unit; make a queue by running the installed kioskd
#      against an API that is down; upgrade (queue, access events and the
#      edited config kept),
#      downgrade, a queue file of a newer format refused by the older kioskd,
#      remove (data kept), purge (data gone).
#
# It leaves the machine as it found it: kioskd is purged at the end and on
# failure. A kioskd package installed before the test is refused, not touched.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

say() { printf 'package-test: %s\n' "$*"; }
fail() {
	printf 'package-test: FAIL: %s\n' "$*" >&2
	exit 1
}
((EUID == 0)) || fail "run as root: it installs and purges the package on this machine"
if dpkg-query -W -f='${Status}' kioskd 2>/dev/null | grep -q -E 'install|config-files'; then
	fail "a kioskd package is already on this machine; purge it first (apt-get purge kioskd)"
fi

t0=$SECONDS
out=${OUT:-out}/package-test
rm -rf "$out"
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
chmod 0755 "$work" # the kioskd user reads the clip and the config from here
apt_opts=(-y -qq -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
installed=0
cleanup() {
	if ((installed)); then
		DEBIAN_FRONTEND=noninteractive apt-get purge "${apt_opts[@]}" kioskd >/dev/null 2>&1 || dpkg --purge kioskd >/dev/null 2>&1 || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
step() { say "$* ($((SECONDS - t0)) s)"; }

# 1. Build.
new=0.0~git$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S).$(git rev-parse --short=7 HEAD)
old=$new~pkgtest1
step "building $new for amd64 and arm64"
DEB_VERSION=$new scripts/deb.sh amd64 "$out"
DEB_VERSION=$new scripts/deb.sh arm64 "$out"
dpkg-deb -x "$out/kioskd_${new}_amd64.deb" "$work/new-amd64"
DEB_VERSION=$old scripts/deb.sh --binary "$work/new-amd64/usr/bin/kioskd" amd64 "$out"
new_deb=$out/kioskd_${new}_amd64.deb
old_deb=$out/kioskd_${old}_amd64.deb
arm_deb=$out/kioskd_${new}_arm64.deb
for d in "$new_deb" "$old_deb" "$arm_deb"; do [[ -s $d ]] || fail "$d was not built"; done

# 2. lintian, both architectures in one run (its start-up is most of its time).
step "lintian"
lint_rc=0
lintian --fail-on error --tag-display-limit 0 "$new_deb" "$arm_deb" >"$work/lintian.log" 2>&1 || lint_rc=$?
grep -v 'running with root privileges' "$work/lintian.log" || true
((lint_rc == 0)) || fail "lintian reports errors"

# The test configuration: the bundled clip, an API that is down (nothing
# listens on port 9), loopback listeners on ports the OS picks.
cp testdata/clips/demo.avi testdata/astronaut.jpg "$work/"
chmod 0644 "$work/demo.avi" "$work/astronaut.jpg"
write_config() { # FILE STATE_DIR
	cat >"$1" <<CONF
# package-test marker
device: {source_id: pkgtest-door, mode: door, state_dir: $2}
incode: {base_url: "http://127.0.0.1:9", live_timeout: 2s, max_retries: 1, retry_wait_min: 100ms, retry_wait_max: 200ms}
camera: {source: $work/demo.avi, fps: 15, loop: false, realtime: true}
capture: {min_face_px: 80, presence_frames: 3, window: 400ms, cooldown: 3s}
queue: {path: $2/queue.db}
actuator: {outputs: [{name: door, role: unlock, driver: log, pulse: 1s}]}
display: {listen: "127.0.0.1:0"}
metrics: {listen: "127.0.0.1:0"}
log: {level: info, format: json}
CONF
}
export KIOSKD_API_KEY=pkgtest-key KIOSKD_HARDWARE_ID=pkgtest-device

# 3. arm64 under qemu-user, with the sysroot's libraries.
step "arm64 binary under qemu-user"
sys=${SYSROOT_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/kioskd/arm64-sysroot}/root
dpkg-deb -x "$arm_deb" "$work/arm64"
qemu=(qemu-aarch64-static -L "$sys")
file "$work/arm64/usr/bin/kioskd" | grep -q 'ARM aarch64' || fail "the arm64 package holds no aarch64 binary"
v=$("${qemu[@]}" "$work/arm64/usr/bin/kioskd" version) || fail "kioskd version under qemu-aarch64"
say "arm64: $(head -n1 <<<"$v")"
mkdir -p "$work/arm-state"
write_config "$work/arm.yaml" "$work/arm-state"
"${qemu[@]}" "$work/arm64/usr/bin/kioskd" check-config --config "$work/arm.yaml" || fail "check-config under qemu-aarch64"
snap=$("${qemu[@]}" "$work/arm64/usr/bin/kioskd" snapshot --config "$work/arm.yaml" --input "$work/astronaut.jpg") ||
	fail "snapshot under qemu-aarch64"
grep -q '"faces":{"value":1' <<<"$snap" || fail "snapshot under qemu-aarch64 found no face: $snap"
say "arm64: snapshot found the face"

# 4. Install, upgrade, downgrade, remove, purge on this machine.
export DEBIAN_FRONTEND=noninteractive
step "install $old"
installed=1
apt-get install "${apt_opts[@]}" "$old_deb" >"$work/apt.log" 2>&1 || { cat "$work/apt.log"; fail "install"; }
[[ $(dpkg-query -W -f='${Version}' kioskd) == "$old" ]] || fail "installed version is not $old"
getent passwd kioskd >/dev/null || fail "no system user kioskd"
[[ $(stat -c '%U %a' /var/lib/kioskd) == "kioskd 700" ]] || fail "/var/lib/kioskd is $(stat -c '%U %a' /var/lib/kioskd), want kioskd 700"
for c in api-key hardware-id queue-key; do
	[[ $(stat -c '%U %a' "/etc/kioskd/credentials/$c") == "root 600" ]] || fail "credential placeholder $c is not root 0600"
done
[[ $(stat -c '%a' /etc/kioskd/credentials) == 700 ]] || fail "/etc/kioskd/credentials is not 0700"
grep -qx /etc/kioskd/kioskd.yaml /var/lib/dpkg/info/kioskd.conffiles || fail "kioskd.yaml is not a conffile"
[[ -L /etc/systemd/system/multi-user.target.wants/kioskd.service ]] || fail "kioskd.service is not enabled"
grep -q '^ExecStart=/usr/bin/kioskd run' /lib/systemd/system/kioskd.service || fail "the installed unit does not run /usr/bin/kioskd"
if out_verify=$(SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no /lib/systemd/system/kioskd.service 2>&1) && [[ -z $out_verify ]]; then
	say "systemd-analyze verify /lib/systemd/system/kioskd.service: clean"
else
	printf '%s\n' "$out_verify" >&2
	fail "systemd-analyze verify on the installed unit"
fi

# A queue made by the installed kioskd, as its user: the clip's two people
# are seen while the API is down, and both captures are queued.
write_config /etc/kioskd/kioskd.yaml /var/lib/kioskd
as_kioskd=(setpriv --reuid=kioskd --regid=kioskd --clear-groups)
"${as_kioskd[@]}" /usr/bin/kioskd run --config /etc/kioskd/kioskd.yaml 2>"$work/run.log" || { tail -n 20 "$work/run.log"; fail "kioskd run"; }
depth() { "${as_kioskd[@]}" /usr/bin/kioskd queue stats --config /etc/kioskd/kioskd.yaml --json | sed -n 's/.*"depth": *\([0-9]*\).*/\1/p'; }
d0=$(depth)
[[ $d0 -ge 1 ]] || { tail -n 20 "$work/run.log"; fail "no capture was queued (depth ${d0:-?})"; }
# The access events of that run (kioskd events, where this tree has them).
nevents() { "${as_kioskd[@]}" /usr/bin/kioskd events export --config /etc/kioskd/kioskd.yaml 2>/dev/null | wc -l; }
e0=-
if [[ -f cmd/kioskd/events.go ]]; then
	e0=$(nevents)
	[[ $e0 -ge 1 ]] || fail "the run recorded no access events"
fi
say "queue depth $d0 and $e0 access events before the upgrade"
events_kept() { [[ $e0 == - || $(nevents) == "$e0" ]]; }

step "upgrade to $new"
apt-get install "${apt_opts[@]}" "$new_deb" >"$work/apt.log" 2>&1 || { cat "$work/apt.log"; fail "upgrade"; }
[[ $(dpkg-query -W -f='${Version}' kioskd) == "$new" ]] || fail "upgraded version is not $new"
grep -q '^# package-test marker' /etc/kioskd/kioskd.yaml || fail "the upgrade replaced the edited kioskd.yaml"
[[ $(depth) == "$d0" ]] || fail "queue depth after the upgrade is $(depth), want $d0"
events_kept || fail "access events after the upgrade: $(nevents), want $e0"
[[ $(stat -c '%U %a' /var/lib/kioskd) == "kioskd 700" ]] || fail "/var/lib/kioskd changed in the upgrade"

step "downgrade to $old"
apt-get install "${apt_opts[@]}" --allow-downgrades "$old_deb" >"$work/apt.log" 2>&1 || { cat "$work/apt.log"; fail "downgrade"; }
[[ $(dpkg-query -W -f='${Version}' kioskd) == "$old" ]] || fail "downgraded version is not $old"
[[ $(depth) == "$d0" ]] || fail "queue depth after the downgrade is $(depth), want $d0"
events_kept || fail "access events after the downgrade: $(nevents), want $e0"

# A queue file written by a newer kioskd (its format version one higher)
# must be refused by this one with a clear message, and left as it is.
if grep -q 'is newer than this kioskd supports' queue/*.go; then
	cp -p /var/lib/kioskd/queue.db /var/lib/kioskd/newer.db
	go run ./scripts/queueformat /var/lib/kioskd/newer.db
	sed 's|/var/lib/kioskd/queue.db|/var/lib/kioskd/newer.db|' /etc/kioskd/kioskd.yaml >"$work/newer.yaml"
	chmod 0644 "$work/newer.yaml"
	sum=$(sha256sum </var/lib/kioskd/newer.db)
	if msg=$("${as_kioskd[@]}" /usr/bin/kioskd queue stats --config "$work/newer.yaml" 2>&1); then
		fail "kioskd $old opened a queue file of a newer format: $msg"
	fi
	grep -q 'is newer than this kioskd supports' <<<"$msg" || fail "unclear refusal of a newer queue file: $msg"
	[[ $(sha256sum </var/lib/kioskd/newer.db) == "$sum" ]] || fail "the refused queue file was changed"
	say "newer queue file refused: $msg"
	rm -f /var/lib/kioskd/newer.db
else
	say "SKIP newer-queue refusal: this tree's queue has no format version yet"
fi

step "remove"
apt-get remove "${apt_opts[@]}" kioskd >"$work/apt.log" 2>&1 || { cat "$work/apt.log"; fail "remove"; }
[[ ! -e /usr/bin/kioskd ]] || fail "remove left /usr/bin/kioskd"
[[ -s /var/lib/kioskd/queue.db ]] || fail "remove deleted the queue"
[[ $e0 == - || -s /var/lib/kioskd/events.db ]] || fail "remove deleted the events"
[[ -f /etc/kioskd/kioskd.yaml && -f /etc/kioskd/credentials/api-key ]] || fail "remove deleted the configuration"

step "purge"
apt-get purge "${apt_opts[@]}" kioskd >"$work/apt.log" 2>&1 || { cat "$work/apt.log"; fail "purge"; }
installed=0
[[ ! -e /var/lib/kioskd && ! -e /etc/kioskd ]] || fail "purge left /var/lib/kioskd or /etc/kioskd"
[[ ! -e /etc/systemd/system/multi-user.target.wants/kioskd.service ]] || fail "purge left the enable link"
dpkg-query -W -f='${Status}' kioskd 2>/dev/null | grep -q -E 'install|config-files' && fail "kioskd is still known to dpkg"

step "all passed"
echo "package-test: 1 passed, 0 failed"
