package main

import (
	"bytes"
	"context"
	"io"
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
