package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/ldapscim/ldapscim/internal/sampledata"
)

func TestRunMatchesLibrary(t *testing.T) {
	var got bytes.Buffer
	args := []string{"-users", "50", "-groups", "6", "-seed", "3", "-nested", "-disabled", "2", "-suffix", "dc=corp,dc=test"}
	if err := run(context.Background(), args, &got, io.Discard); err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	o := sampledata.Options{Users: 50, Groups: 6, Seed: 3, NestedGroup: true, Disabled: 2, Suffix: "dc=corp,dc=test"}
	if err := sampledata.Write(&want, o); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Error("ldifgen output differs from sampledata.Write with the same options")
	}
	if err := run(context.Background(), []string{"-users", "0", "-groups", "1"}, io.Discard, io.Discard); err == nil {
		t.Error("groups without users: want an error")
	}
}

func TestEnterpriseFlags(t *testing.T) {
	var got bytes.Buffer
	args := []string{"-enterprise", "-all-staff", "-users", "300", "-group-members", "7", "-disabled", "3", "-seed", "5"}
	if err := run(context.Background(), args, &got, io.Discard); err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	o := sampledata.Options{Enterprise: true, AllStaff: true, Users: 300, Groups: 2000, GroupMembers: 7, Disabled: 3, Seed: 5}
	if err := sampledata.Write(&want, o); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Error("ldifgen -enterprise differs from sampledata.Write with the same options (and 2,000 groups by default)")
	}
	out := got.String()
	if n := strings.Count(out, "\nobjectClass: groupOfNames\n"); n != 2001 {
		t.Errorf("%d groupOfNames, want 2,000 and all-staff", n)
	}
	got.Reset()
	if err := run(context.Background(), []string{"-enterprise", "-users", "20", "-groups", "3"}, &got, io.Discard); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(got.String(), "\nobjectClass: groupOfNames\n"); n != 3 || strings.Contains(got.String(), sampledata.AllStaffName) {
		t.Errorf("-groups 3 without -all-staff: %d groups, all-staff present: %v", n, strings.Contains(got.String(), sampledata.AllStaffName))
	}
	if err := run(context.Background(), []string{"-all-staff"}, io.Discard, io.Discard); err == nil {
		t.Error("-all-staff without -enterprise: want an error")
	}
}
