#!/usr/bin/env bash
# demo.sh: run ldapscim against a throwaway private slapd loaded with sample people and groups.
# `make demo` runs it after installing slapd and building bin/ldapscim. Ctrl-C stops everything.
#
#   DEMO_DIR   where the demo lives (default .cache/demo; wiped at start)
#   DEMO_PORT  slapd's port on 127.0.0.1 (default 3389)
#   DEMO_USERS / DEMO_GROUPS  sample sizes (default 300 / 25)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=/usr/local/go/bin:$PATH:/usr/sbin

DIR=${DEMO_DIR:-$PWD/.cache/demo}
PORT=${DEMO_PORT:-3389}
SCIM_PORT=${DEMO_SCIM_PORT:-8080}
ADMIN_PORT=${DEMO_ADMIN_PORT:-9090}
USERS=${DEMO_USERS:-300}
NGROUPS=${DEMO_GROUPS:-25}
SUFFIX="dc=example,dc=com"
ROOTDN="cn=admin,$SUFFIX"
ROOTPW="demo-admin-$RANDOM$RANDOM"
READERPW="reader-secret" # the sample data's cn=reader password
URL="ldap://127.0.0.1:$PORT/"

command -v slapd >/dev/null || { echo "demo: slapd not found; run scripts/install-deps.sh ldap" >&2; exit 1; }
[ -x bin/ldapscim ] || { echo "demo: bin/ldapscim missing; run make build" >&2; exit 1; }
for p in "$PORT:DEMO_PORT" "$SCIM_PORT:DEMO_SCIM_PORT" "$ADMIN_PORT:DEMO_ADMIN_PORT"; do
	if (exec 3<>"/dev/tcp/127.0.0.1/${p%%:*}") 2>/dev/null; then
		echo "demo: port ${p%%:*} is taken; set ${p#*:}" >&2
		exit 1
	fi
done

rm -rf "$DIR"
mkdir -p "$DIR/data" "$DIR/accesslog" "$DIR/cache"
echo "demo: generating $USERS people and $NGROUPS groups"
go run ./tools/ldifgen -users "$USERS" -groups "$NGROUPS" -nested -disabled 3 -o "$DIR/sample.ldif"

cat >"$DIR/slapd.conf" <<CONF
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/nis.schema
include /etc/ldap/schema/inetorgperson.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload syncprov
moduleload accesslog
moduleload ppolicy
pidfile $DIR/slapd.pid
argsfile $DIR/slapd.args
# The default limit (500 entries, even paged) would make a full sync partial.
sizelimit unlimited
timelimit unlimited

database mdb
suffix cn=accesslog
rootdn cn=accesslog
directory $DIR/accesslog
dbnosync
index entryCSN,reqStart eq
access to * by * none

database mdb
suffix "$SUFFIX"
rootdn "$ROOTDN"
rootpw $ROOTPW
directory $DIR/data
dbnosync
maxsize 1073741824
index objectClass eq
index uid,cn,mail,employeeNumber,entryUUID eq
index member,uniqueMember,memberUid,manager eq
index entryCSN,modifyTimestamp eq
access to attrs=userPassword by self write by anonymous auth by * none
access to * by dn.exact="cn=reader,$SUFFIX" read by users read by * none
overlay syncprov
syncprov-checkpoint 100 10
syncprov-sessionlog 10000
overlay accesslog
logdb cn=accesslog
logops writes
CONF
slapadd -q -f "$DIR/slapd.conf" -b "$SUFFIX" -l "$DIR/sample.ldif"
slapd -f "$DIR/slapd.conf" -h "$URL" -d none >"$DIR/slapd.log" 2>&1 &
SLAPD=$!
cleanup() {
	kill "$SLAPD" 2>/dev/null || true
	wait "$SLAPD" 2>/dev/null || true
	echo "demo: stopped slapd; data left in $DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
for _ in $(seq 100); do
	ldapsearch -x -H "$URL" -b "" -s base >/dev/null 2>&1 && break
	sleep 0.05
done

printf '%s\n' "$READERPW" >"$DIR/reader.pw"
TOKEN="demo-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
printf '%s\n' "$TOKEN" >"$DIR/scim.token"
chmod 600 "$DIR/reader.pw" "$DIR/scim.token"
# An HR export of contractors who are not in the directory (Excel style: ';' and CRLF).
printf 'Employee ID;Email;First Name;Last Name;Department;End Date\r\n' >"$DIR/contractors.csv"
printf 'C001;ada.contractor@example.com;Ada;Byron;Engineering;\r\n' >>"$DIR/contractors.csv"
printf 'C002;cy.contractor@example.com;Cy;Dee;Sales;2099-12-31\r\n' >>"$DIR/contractors.csv"
cat >"$DIR/config.toml" <<CONF
[cache]
dir = "$DIR/cache"

[ldap]
url = "$URL"
bind_dn = "cn=reader,$SUFFIX"
bind_password_file = "$DIR/reader.pw"

[ldap.users]
base_dn = "ou=people,$SUFFIX"

[ldap.groups]
base_dn = "ou=groups,$SUFFIX"

[schedule]
delta = "@every 10s"
full = "@every 10m"

[scim]
listen = "127.0.0.1:$SCIM_PORT"
base_url = "http://127.0.0.1:$SCIM_PORT/scim/v2"
[[scim.tokens]]
name = "demo"
token_file = "$DIR/scim.token"

[admin]
listen = "127.0.0.1:$ADMIN_PORT"

[[rules]]
name = "engineering"
when = 'department eq "Engineering"'
roles = ["engineer"]
groups = ["Engineering (rule)"]

[[csv]]
name = "contractors"
path = "$DIR/contractors.csv"
key = "Employee ID"
end_date = "End Date"
[csv.mapping]
userName = "Email"
"name.givenName" = "First Name"
"name.familyName" = "Last Name"
"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department" = "Department"
CONF

C="--config $DIR/config.toml"
cat <<MSG

demo: slapd is on $URL (admin: $ROOTDN / $ROOTPW), ldapscim's config is $DIR/config.toml.
demo: starting \`bin/ldapscim serve $C\`: a full pass now, a delta pass every 10 s.

Try, in another terminal (then watch for "pass done ... updated=1" within 10 s):
ldapmodify -x -H $URL -D '$ROOTDN' -w '$ROOTPW' <<'LDIF'
dn: $(grep -m1 '^dn: uid=' "$DIR/sample.ldif" | cut -d' ' -f2-)
changetype: modify
replace: title
title: Chief Demo Officer
LDIF

The SCIM API (token in $DIR/scim.token):
  curl -s -H 'Authorization: Bearer $TOKEN' 'http://127.0.0.1:$SCIM_PORT/scim/v2/Users?count=2'
  curl -s -H 'Authorization: Bearer $TOKEN' -G 'http://127.0.0.1:$SCIM_PORT/scim/v2/Groups' \
       --data-urlencode 'filter=displayName eq "Engineering (rule)"' --data-urlencode 'excludedAttributes=members'
The status page: http://127.0.0.1:$ADMIN_PORT/status    metrics: http://127.0.0.1:$ADMIN_PORT/metrics
  bin/ldapscim sync $C              # one more pass now, through the running serve
  bin/ldapscim deletes list $C      # deletions held by the safety threshold
  bin/ldapscim plan $C --full       # what a full pass would change, and why (writes nothing)
  bin/ldapscim explain $C $(grep -m1 '^uid: ' "$DIR/sample.ldif" | cut -d' ' -f2-)   # how the rules and push scopes see one user
  bin/ldapscim check-config $C      # the effective config (secrets show as <secret>)
  bin/ldapscim import $C --source contractors $DIR/contractors.csv --dry-run   # the HR file: what it would change
  bin/ldapscim explain $C ada.contractor@example.com   # a contractor from the HR file, in the rule's group

MSG
bin/ldapscim serve $C
