#!/usr/bin/env bash
# arm64-sysroot.sh DIR — unpack Debian 12's arm64 OpenCV and its dependency
# closure into DIR/root, for cross-building kioskd with aarch64-linux-gnu-gcc
# and running the result under qemu-user.
#
# Debian's libopencv-dev:arm64 cannot be installed beside the amd64 one (apt
# removes the amd64 OpenCV to make room), so nothing is installed: a private
# apt state under DIR/apt, with arm64 as its only architecture and an empty
# dpkg status, resolves the closure and downloads it, and `dpkg -x` unpacks
# each package. The machine's apt configuration and dpkg database are left
# as they are. The result is cached: DIR/root/.complete records the package
# list, and a second run with the same list does nothing.
set -euo pipefail

dir=${1:?usage: $0 DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
apt=$dir/apt
root=$dir/root
want=(libopencv-dev libstdc++-12-dev libc6-dev)

stamp="debian12 ${want[*]} alternatives"
if [[ -f $root/.complete && $(cat "$root/.complete") == "$stamp" ]]; then
	exit 0
fi

mkdir -p "$apt/state/lists/partial" "$apt/cache/archives/partial" "$apt/sources.list.d" "$apt/preferences.d"
: >"$apt/state/status"
# The machine's Debian sources (deb822 or one-line), signed as usual.
cp /etc/apt/sources.list.d/*.sources "$apt/sources.list.d/" 2>/dev/null || true
if [[ -f /etc/apt/sources.list ]]; then cp /etc/apt/sources.list "$apt/sources.list.d/main.list"; fi

opts=(
	-o "Dir::State=$apt/state"
	-o "Dir::State::status=$apt/state/status"
	-o "Dir::Cache=$apt/cache"
	-o "Dir::Etc::SourceList=/dev/null"
	-o "Dir::Etc::SourceParts=$apt/sources.list.d"
	-o "Dir::Etc::Preferences=/dev/null"
	-o "Dir::Etc::PreferencesParts=$apt/preferences.d"
	-o "APT::Architecture=arm64"
	-o "APT::Architectures::=arm64"
	-o "APT::Install-Recommends=false"
	-o "Debug::NoLocking=true"
)
start=$SECONDS
echo "arm64-sysroot: resolving and downloading ${want[*]} for arm64 into $apt"
apt-get "${opts[@]}" -qq update
apt-get "${opts[@]}" -y -qq --download-only install "${want[@]}" >/dev/null

tmp=$root.tmp
rm -rf "$tmp"
mkdir -p "$tmp"
n=0
for deb in "$apt"/cache/archives/*.deb; do
	dpkg -x "$deb" "$tmp"
	n=$((n + 1))
done
# Debian 12 merges /lib into /usr/lib; packages unpacked by hand keep their
# own paths, so make the usrmerge links the toolchain expects.
for d in lib lib64 bin sbin; do
	if [[ -d $tmp/$d && ! -L $tmp/$d ]]; then
		cp -a "$tmp/$d/." "$tmp/usr/$d/"
		rm -rf "${tmp:?}/$d"
	fi
	mkdir -p "$tmp/usr/$d"
	ln -sfn "usr/$d" "$tmp/$d"
done
# Absolute symlinks inside the sysroot (libfoo.so -> /lib/...) must point
# into it, or the cross linker follows them to the build machine's files.
while IFS= read -r link; do
	target=$(readlink "$link")
	if [[ $target == /* ]]; then
		ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$tmp$target")" "$link"
	fi
done < <(find "$tmp" -type l)
# BLAS and LAPACK reach /usr/lib/aarch64-linux-gnu through update-alternatives
# links that a maintainer script makes; dpkg -x runs none, so make them.
lib=$tmp/usr/lib/aarch64-linux-gnu
for alt in "$lib"/blas/lib*.so.* "$lib"/lapack/lib*.so.*; do
	[[ -e $alt && ! -e $lib/$(basename "$alt") ]] || continue
	ln -s "${alt#"$lib"/}" "$lib/$(basename "$alt")"
done
rm -rf "$root"
mv "$tmp" "$root"
printf '%s' "$stamp" >"$root/.complete"
echo "arm64-sysroot: $n packages unpacked into $root in $((SECONDS - start)) s"
