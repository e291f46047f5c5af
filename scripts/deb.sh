#!/usr/bin/env bash
# deb.sh [--binary FILE] ARCH [OUTDIR] — build kioskd_VERSION_ARCH.deb
# (ARCH: amd64 or arm64) into OUTDIR (default out/deb).
#
#   --binary FILE package this kioskd binary instead of building one (the
#                 package test repacks one build under two versions)
#   DEB_VERSION   the package version (default: from git, see below)
#   VERSION       what `kioskd version` prints (default: git describe)
#   DEB_MAINTAINER  the Maintainer field (default: kioskd maintainers <kioskd@example.org>)
#   SYSROOT_DIR   arm64: where scripts/arm64-sysroot.sh caches the sysroot
#                 (default ~/.cache/kioskd/arm64-sysroot, kept between builds and clones)
#
# amd64 is built natively. arm64 is cross-built with aarch64-linux-gnu-gcc
# (crossbuild-essential-arm64) against Debian 12's arm64 OpenCV unpacked into
# a sysroot, because libopencv-dev:arm64 cannot be installed beside the amd64
# one. The package is assembled with dpkg-deb from packaging/debian; its
# Depends come from the binary's DT_NEEDED sonames, looked up in the dpkg
# database (amd64) or in the downloaded arm64 packages.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH

binary=
if [[ ${1:-} == --binary ]]; then
	binary=${2:?--binary needs a file}
	shift 2
fi
arch=${1:?usage: $0 [--binary FILE] amd64|arm64 [OUTDIR]}
out=${2:-out/deb}
sysroot_dir=${SYSROOT_DIR:-${XDG_CACHE_HOME:-${HOME:-/root}/.cache}/kioskd/arm64-sysroot}

# 0.0~gitYYYYMMDDhhmmss.HASH orders by commit time, so a later build of main
# upgrades an earlier one; a tag vX.Y.Z gives X.Y.Z.
if [[ -z ${DEB_VERSION:-} ]]; then
	if tag=$(git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null); then
		DEB_VERSION=${tag#v}
	else
		DEB_VERSION=0.0~git$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S).$(git rev-parse --short=7 HEAD)
	fi
fi
maintainer=${DEB_MAINTAINER:-kioskd maintainers <kioskd@example.org>}
VERSION=${VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}

mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stage=$work/stage

goenv=(CGO_ENABLED=1 GOOS=linux GOARCH="$arch")
# --as-needed keeps DT_NEEDED (and so Depends) to the OpenCV modules kioskd
# calls, not every module opencv4.pc lists. It is given to the external
# linker only: CGO_LDFLAGS or -trimpath would change the compile flags, and
# gocv's C++ would be compiled again instead of coming from `make build`'s
# cache.
extld="-Wl,--as-needed"
case $arch in
amd64)
	triplet=x86_64-linux-gnu
	;;
arm64)
	triplet=aarch64-linux-gnu
	[[ -n $binary ]] || scripts/arm64-sysroot.sh "$sysroot_dir"
	sys=$(cd "$sysroot_dir" && pwd)/root
	goenv+=(
		CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++
		PKG_CONFIG_SYSROOT_DIR="$sys"
		PKG_CONFIG_LIBDIR="$sys/usr/lib/$triplet/pkgconfig:$sys/usr/share/pkgconfig"
		CGO_CFLAGS="--sysroot=$sys" CGO_CXXFLAGS="--sysroot=$sys"
		CGO_LDFLAGS="--sysroot=$sys -Wl,-rpath-link,$sys/usr/lib/$triplet"
	)
	;;
*)
	echo "deb.sh: unknown architecture $arch (amd64 or arm64)" >&2
	exit 2
	;;
esac

start=$SECONDS
if [[ -n $binary ]]; then
	cp "$binary" "$work/kioskd"
else
	echo "deb.sh: building kioskd $VERSION for $arch"
	env "${goenv[@]}" go build \
		-ldflags "-s -w -X main.version=$VERSION -extldflags=$extld" -o "$work/kioskd" ./cmd/kioskd
fi

install -D -m 0755 "$work/kioskd" "$stage/usr/bin/kioskd"
# The unit as install.sh ships it, with the package's binary path.
install -d "$stage/lib/systemd/system"
sed -e 's|/usr/local/bin/kioskd|/usr/bin/kioskd|g' \
	systemd/kioskd.service >"$stage/lib/systemd/system/kioskd.service"
chmod 0644 "$stage/lib/systemd/system/kioskd.service"
install -D -m 0644 systemd/kioskd.yaml "$stage/etc/kioskd/kioskd.yaml"
install -D -m 0644 systemd/kioskd-alerts.yml "$stage/usr/share/kioskd/kioskd-alerts.yml"
install -d "$stage/lib/udev/rules.d"
cat >"$stage/lib/udev/rules.d/60-kioskd-gpio.rules" <<'RULE'
# kioskd: the GPIO character devices belong to the gpio group, which
# kioskd.service has among its SupplementaryGroups.
SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"
RULE
chmod 0644 "$stage/lib/udev/rules.d/60-kioskd-gpio.rules"
doc=$stage/usr/share/doc/kioskd
install -D -m 0644 packaging/debian/copyright "$doc/copyright"
install -m 0644 packaging/debian/README.Debian "$doc/README.Debian"
{
	printf 'kioskd (%s) unstable; urgency=medium\n\n' "$DEB_VERSION"
	printf '  * Built from %s.\n\n' "$VERSION"
	printf ' -- %s  %s\n' "$maintainer" \
		"$(TZ=UTC git log -1 --format=%cd --date=format-local:'%a, %d %b %Y %H:%M:%S +0000' 2>/dev/null || date -Ru)"
} | gzip -9n >"$doc/changelog.gz"
chmod 0644 "$doc/changelog.gz"

# Depends: the package of each DT_NEEDED soname, at least this version.
sonames=$(readelf -dW "$work/kioskd" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
deps=()
endswith='function endswith(x, s) { return length(x) >= length(s) && substr(x, length(x) - length(s) + 1) == s }'
lookup_amd64() {
	local f
	f=$(awk -v s="/$triplet/$1" "$endswith"' endswith($0, s) { print FILENAME; exit }' /var/lib/dpkg/info/*.list) || true
	[[ -n $f ]] || return 1
	f=$(basename "$f" .list)
	f=${f%:amd64}
	printf '%s %s\n' "$f" "$(dpkg-query -W -f='${Version}' "$f:amd64" 2>/dev/null || dpkg-query -W -f='${Version}' "$f")"
}
lookup_arm64() {
	# An index of the shared libraries in the downloaded arm64 packages,
	# made once per sysroot: "path package version" per line.
	local index=$sysroot_dir/sonames.index
	if [[ ! -s $index || $index -ot $sysroot_dir/root/.complete ]]; then
		local deb
		for deb in "$sysroot_dir"/apt/cache/archives/*_arm64.deb; do
			dpkg-deb -c "$deb" | awk -v p="$(dpkg-deb -f "$deb" Package Version | awk '{print $2}' | paste -sd' ')" \
				'$6 ~ /\.so/ { print $6, p }'
		done >"$index.tmp"
		mv "$index.tmp" "$index"
	fi
	awk -v s="/$triplet/$1" "$endswith"' endswith($1, s) { print $2, $3; found = 1; exit } END { exit !found }' "$index"
}
for so in $sonames; do
	if ! pv=$("lookup_$arch" "$so"); then
		echo "deb.sh: no package provides $so for $arch" >&2
		exit 1
	fi
	pkg=${pv%% *}
	ver=${pv#* }
	ver=${ver%%[-+]*} # upstream part: any Debian revision or rebuild of it will do
	ver=${ver#*:}
	deps+=("$pkg (>= $ver)")
done
depends=$(printf '%s\n' adduser "init-system-helpers (>= 1.54~)" opencv-data "${deps[@]}" | sort -u | paste -sd, | sed 's/,/, /g')

install -d "$stage/DEBIAN"
for s in postinst prerm postrm; do
	install -m 0755 "packaging/debian/$s" "$stage/DEBIAN/$s"
done
echo /etc/kioskd/kioskd.yaml >"$stage/DEBIAN/conffiles"
cat >"$stage/DEBIAN/control" <<CONTROL
Package: kioskd
Version: $DEB_VERSION
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(du -sk --exclude=DEBIAN "$stage" | cut -f1)
Depends: $depends
Suggests: systemd-timesyncd | chrony
Section: misc
Priority: optional
Description: face-authentication door and kiosk agent
 kioskd watches a camera, picks a good frame of the face in front of it,
 asks the Incode ID API who it is, and opens the door (relay, panel or
 hook) and shows the answer on a kiosk screen. Captures taken while the
 API is out of reach are queued on disk and delivered later.
 .
 The package installs the binary, a hardened systemd unit, a sample
 configuration and the system user kioskd.
CONTROL

deb=$out/kioskd_${DEB_VERSION}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "deb.sh: $deb ($(du -h "$deb" | cut -f1), $((SECONDS - start)) s)"
