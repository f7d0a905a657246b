#!/usr/bin/env bash
# install-deps.sh installs the real servers that tests and `make demo` start, if they are missing.
#
#   scripts/install-deps.sh [component...]     (default: ldap)
#
# Components:
#   ldap      Debian slapd + ldap-utils, installed WITHOUT configuring or starting a system slapd
#   samba     (reserved) Samba AD DC packages, see /work/shared/ref/directories.md
#   scimmy    (reserved) node + npm scimmy, scimmy-routers, express
#   chromium  (reserved) headless browser for UI tests
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

install_samba()    { echo "install-deps: samba: not implemented yet" >&2; return 1; }
install_scimmy()   { echo "install-deps: scimmy: not implemented yet" >&2; return 1; }
install_chromium() { echo "install-deps: chromium: not implemented yet" >&2; return 1; }

main() {
	[ "$#" -eq 0 ] && set -- ldap
	for c in "$@"; do
		case "$c" in
		ldap) install_ldap ;;
		samba) install_samba ;;
		scimmy) install_scimmy ;;
		chromium) install_chromium ;;
		*) echo "install-deps: unknown component $c (known: ldap samba scimmy chromium)" >&2; exit 2 ;;
		esac
	done
}

main "$@"
