#!/usr/bin/env bash
# install-deps.sh installs the real servers that tests and `make demo` start, if they are missing.
#
#   scripts/install-deps.sh [component...]     (default: ldap)
#
# Components:
#   ldap      Debian slapd + ldap-utils, installed WITHOUT configuring or starting a system slapd
#   samba     Samba AD DC (samba, samba-ad-provision, samba-dsdb-modules, samba-vfs-modules, ldb-tools,
#             ldap-utils), installed WITHOUT starting the system smbd/nmbd/samba-ad-dc services
#   scimmy    npm scimmy 1.3.5, scimmy-routers 1.3.2, express 4 into .cache/scimmy (the SCIM push
#             target of the tests; needs node + npm, installed from Debian when missing)
#   chromium  Debian chromium, the headless browser the status page test loads the page in
#   wrk       Debian wrk, the HTTP load generator of the SCIM API's throughput benchmark
#   etcd      Debian etcd-server + etcd-client (etcd 3.4, etcdctl), the coordination store of the
#             high-availability tests, installed WITHOUT starting a system etcd
#   deb       what the Debian package test uses beside dpkg: adduser, file, systemd-analyze
#             (systemd, installed without starting it), runuser (util-linux)
#
# Idempotent and fast: when everything is present it only runs `command -v` checks and exits 0.
# Prints one line per thing it installs. Uses sudo only when not root.
set -euo pipefail

SUDO=()
if [ "$(id -u)" -ne 0 ]; then SUDO=(sudo); fi

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

# apt_install installs Debian packages without starting any service. apt-get update runs only
# when the first attempt fails (stale or empty package lists on a fresh CI image).
apt_install() {
	local policy=/usr/sbin/policy-rc.d created=0
	if [ ! -e "$policy" ]; then
		# 101 = "action forbidden": invoke-rc.d will not start daemons during the install.
		printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
		"${SUDO[@]}" chmod 755 "$policy"
		created=1
	fi
	local rc=0
	{
		"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null 2>&1 ||
			{ "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null &&
				"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@" >/dev/null; }
	} || rc=$?
	if [ "$created" = 1 ]; then "${SUDO[@]}" rm -f "$policy"; fi
	return "$rc"
}

install_ldap() {
	local pkgs=()
	have slapd || pkgs+=(slapd)
	{ have ldapsearch && have ldapmodify && have ldapadd; } || pkgs+=(ldap-utils)
	[ "${#pkgs[@]}" -eq 0 ] && return 0
	# Preseed: the package must not create /etc/ldap/slapd.d or a system instance on :389.
	echo "slapd slapd/no_configuration boolean true" | "${SUDO[@]}" debconf-set-selections
	apt_install "${pkgs[@]}"
	for p in "${pkgs[@]}"; do echo "install-deps: installed $p"; done
}

install_samba() {
	local pkgs=()
	{ have samba && have samba-tool; } || pkgs+=(samba)
	[ -d /usr/share/samba/setup ] || pkgs+=(samba-ad-provision)
	# dsdb modules and acl_xattr.so: without them provisioning fails.
	dpkg -s samba-dsdb-modules >/dev/null 2>&1 || pkgs+=(samba-dsdb-modules)
	dpkg -s samba-vfs-modules >/dev/null 2>&1 || pkgs+=(samba-vfs-modules)
	have ldbadd || pkgs+=(ldb-tools)
	have ldapsearch || pkgs+=(ldap-utils)
	have unshare || pkgs+=(util-linux)
	have ip || pkgs+=(iproute2)
	[ "${#pkgs[@]}" -eq 0 ] && return 0
	apt_install "${pkgs[@]}"
	for p in "${pkgs[@]}"; do echo "install-deps: installed $p"; done
}

# SCIMMY_DIR is where `scimmy` installs its npm packages; internal/testenv looks there.
SCIMMY_DIR="$(cd "$(dirname "$0")/.." && pwd)/.cache/scimmy"

install_scimmy() {
	local want=(scimmy@1.3.5 scimmy-routers@1.3.2 express@4) ok=1
	{ have node && have npm; } || { apt_install nodejs npm && echo "install-deps: installed nodejs npm"; }
	[ "$(node -p 'require(process.argv[1]).version' "$SCIMMY_DIR/node_modules/scimmy/package.json" 2>/dev/null)" = 1.3.5 ] || ok=0
	[ "$(node -p 'require(process.argv[1]).version' "$SCIMMY_DIR/node_modules/scimmy-routers/package.json" 2>/dev/null)" = 1.3.2 ] || ok=0
	[ -f "$SCIMMY_DIR/node_modules/express/package.json" ] || ok=0
	[ "$ok" = 1 ] && return 0
	mkdir -p "$SCIMMY_DIR"
	[ -f "$SCIMMY_DIR/package.json" ] || echo '{"name":"ldapscim-scimmy-target","private":true}' >"$SCIMMY_DIR/package.json"
	npm install --prefix "$SCIMMY_DIR" --no-audit --no-fund --silent "${want[@]}" >/dev/null
	echo "install-deps: installed ${want[*]} into $SCIMMY_DIR"
}

install_chromium() {
	{ have chromium || [ -x /usr/bin/chromium ]; } && return 0
	apt_install chromium
	echo "install-deps: installed chromium"
}

install_wrk() {
	have wrk && return 0
	apt_install wrk
	echo "install-deps: installed wrk"
}

install_etcd() {
	local pkgs=()
	have etcd || pkgs+=(etcd-server)
	have etcdctl || pkgs+=(etcd-client)
	[ "${#pkgs[@]}" -eq 0 ] && return 0
	apt_install "${pkgs[@]}"
	for p in "${pkgs[@]}"; do echo "install-deps: installed $p"; done
}

install_deb() {
	local pkgs=()
	have adduser || pkgs+=(adduser)
	have file || pkgs+=(file)
	have systemd-analyze || pkgs+=(systemd)
	have runuser || pkgs+=(util-linux)
	[ "${#pkgs[@]}" -eq 0 ] && return 0
	apt_install "${pkgs[@]}"
	for p in "${pkgs[@]}"; do echo "install-deps: installed $p"; done
}

main() {
	[ "$#" -eq 0 ] && set -- ldap
	for c in "$@"; do
		case "$c" in
		ldap) install_ldap ;;
		samba) install_samba ;;
		scimmy) install_scimmy ;;
		chromium) install_chromium ;;
		wrk) install_wrk ;;
		etcd) install_etcd ;;
		deb) install_deb ;;
		*) echo "install-deps: unknown component $c (known: ldap samba scimmy chromium wrk etcd deb)" >&2; exit 2 ;;
		esac
	done
}

main "$@"
