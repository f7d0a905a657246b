// Package packaging is how ldapscim is shipped: deb/ holds the Debian package's systemd unit,
// maintainer scripts and control template, which scripts/build-deb.sh (`make package`) turns
// into a .deb. It has no Go code; its test builds the package, installs it with dpkg on this
// machine, checks what it installed (files, owners, modes, the system user, the unit under
// systemd-analyze, the config under check-config) and purges it. That test needs root and dpkg.
package packaging
