#!/usr/bin/env bash
# build-deb.sh builds the ldapscim Debian package (amd64) with dpkg-deb, from packaging/deb/.
#
#   scripts/build-deb.sh [OUTDIR]      (default: dist)   prints the path of the .deb it wrote
#
# Environment: VERSION (default: git describe --tags --always --dirty, else "dev") is what
# `ldapscim version` prints; the package version is made from it (v1.2.3-4-gabc -> 1.2.3+4.gabc,
# no tag -> 0.0.0~abc1234) unless DEB_VERSION is set. COMMIT (default: git HEAD) is stamped too.
# GO (default: go). Needs no root and no tool beyond dpkg-deb: file owners come from
# --root-owner-group, the service's own owners from postinst.
set -euo pipefail
umask 022

root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-dist}"
GO="${GO:-go}"
VERSION="${VERSION:-$(git -C "$root" describe --tags --always --dirty 2>/dev/null || echo dev)}"
if [ -z "${COMMIT+x}" ]; then
	COMMIT="$(git -C "$root" rev-parse --short=12 HEAD 2>/dev/null || true)"
	if [ -n "$COMMIT" ] && ! git -C "$root" diff --quiet HEAD 2>/dev/null; then COMMIT="$COMMIT-dirty"; fi
fi

# deb_version turns a git describe string into a Debian upstream version that sorts sensibly.
deb_version() {
	local v="${1#v}"
	if [[ "$v" =~ ^[0-9]+\.[0-9] ]]; then
		v="${v/-/+}" # a tag: 1.2.3-4-gabc-dirty -> 1.2.3+4-gabc-dirty
	else
		v="0.0.0~$v" # no tag: an abbreviated commit (maybe all digits) or "dev"
	fi
	v="${v//-/.}" # no "-": it would start a Debian revision
	printf '%s\n' "$v"
}
DEB_VERSION="${DEB_VERSION:-$(deb_version "$VERSION")}"
if ! [[ "$DEB_VERSION" =~ ^[0-9][A-Za-z0-9.+~]*$ ]]; then
	echo "build-deb: $DEB_VERSION (from VERSION=$VERSION) is not a Debian version; set DEB_VERSION" >&2
	exit 2
fi

stage="$(mktemp -d "${TMPDIR:-/tmp}/ldapscim-deb.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage" # mktemp makes it 0700; it becomes the mode of / in the package
pkg="$root/packaging/deb"

# A static binary: it depends on no libc version, like the container image's.
mkdir -p "$stage/usr/bin"
(cd "$root" && CGO_ENABLED=0 GOOS=linux GOARCH=amd64 "$GO" build -trimpath \
	-ldflags "-s -w -X main.version=$VERSION -X main.commit=$COMMIT" \
	-o "$stage/usr/bin/ldapscim" ./cmd/ldapscim)

install -D -m 0644 "$pkg/ldapscim.service" "$stage/lib/systemd/system/ldapscim.service"
# The config: the example with the cache in the state directory the unit grants. 0640 from the
# start (postinst gives it the ldapscim group), since an administrator adds secrets to it.
install -d -m 0755 "$stage/etc/ldapscim"
sed '/^\[cache\]/,/^\[/ s|^dir = .*|dir = "/var/lib/ldapscim"|' "$root/config.toml.example" >"$stage/etc/ldapscim/config.toml"
chmod 0640 "$stage/etc/ldapscim/config.toml"
grep -qx 'dir = "/var/lib/ldapscim"' "$stage/etc/ldapscim/config.toml" ||
	{ echo "build-deb: no [cache] dir line in config.toml.example to point at /var/lib/ldapscim" >&2; exit 1; }
install -D -m 0644 "$root/README.md" "$stage/usr/share/doc/ldapscim/README.md"
install -D -m 0644 "$root/config.toml.example" "$stage/usr/share/doc/ldapscim/config.toml.example"

install -d -m 0755 "$stage/DEBIAN"
size="$(du -sk --exclude=DEBIAN "$stage" | cut -f1)"
sed -e "s/@VERSION@/$DEB_VERSION/" -e "s/@SIZE@/$size/" "$pkg/control.in" >"$stage/DEBIAN/control"
install -m 0644 "$pkg/conffiles" "$stage/DEBIAN/conffiles"
install -m 0755 "$pkg/postinst" "$pkg/prerm" "$pkg/postrm" "$stage/DEBIAN/"

mkdir -p "$out"
deb="$out/ldapscim_${DEB_VERSION}_amd64.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "$deb"
