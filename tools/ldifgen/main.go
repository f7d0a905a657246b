// Command ldifgen writes deterministic sample LDIF for OpenLDAP (see internal/sampledata):
//
//	go run ./tools/ldifgen -users 100000 -groups 1000 -o file.ldif
//	slapadd -q -f slapd.conf -b dc=example,dc=com -l file.ldif
//
// The enterprise shape (what `make bench-scale` loads) streams any number of users in bounded
// memory, 1M in a few seconds: 2,000 groups of 50 members unless -groups/-group-members say
// otherwise, manager chains, and with -all-staff one group listing every user:
//
//	go run ./tools/ldifgen -enterprise -all-staff -users 1000000 -o 1m.ldif
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/ldapscim/ldapscim/internal/sampledata"
)

// enterpriseGroups is -groups' default with -enterprise.
const enterpriseGroups = 2000

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "ldifgen:", err)
		os.Exit(1)
	}
}

func run(_ context.Context, args []string, stdout, stderr io.Writer) (err error) {
	fs := flag.NewFlagSet("ldifgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o sampledata.Options
	fs.IntVar(&o.Users, "users", 100, "number of inetOrgPerson users")
	fs.IntVar(&o.Groups, "groups", 10, "number of groups")
	fs.StringVar(&o.Suffix, "suffix", sampledata.DefaultSuffix, "directory suffix")
	fs.Int64Var(&o.Seed, "seed", 1, "random seed: same seed, same output")
	fs.BoolVar(&o.NestedGroup, "nested", false, "write a group with groups among its members")
	fs.IntVar(&o.Disabled, "disabled", 0, "users with pwdAccountLockedTime (inactive)")
	fs.BoolVar(&o.Enterprise, "enterprise", false, "the enterprise shape: streaming, manager chains, groups of -group-members (default 2000 groups)")
	fs.IntVar(&o.GroupMembers, "group-members", 0, fmt.Sprintf("with -enterprise: members per group (0: %d)", sampledata.DefaultGroupMembers))
	fs.BoolVar(&o.AllStaff, "all-staff", false, "with -enterprise: one more group, cn="+sampledata.AllStaffName+", listing every user")
	out := fs.String("o", "-", "output file, - for stdout")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.Enterprise {
		groupsSet := false
		fs.Visit(func(f *flag.Flag) { groupsSet = groupsSet || f.Name == "groups" })
		if !groupsSet {
			o.Groups = enterpriseGroups
		}
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	w := stdout
	if *out != "-" {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer func() {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}()
		w = f
	}
	return sampledata.Write(w, o)
}
