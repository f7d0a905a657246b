package hrcsv

import (
	"context"
	"errors"
	"strings"
	"testing"
)

// FuzzCheck: any bytes either pass Check, and then Scan yields exactly its rows, each with a
// non-empty key of its own; or are refused with a *Problems that lists at most MaxProblems.
// Never a panic, never rows from a refused file.
func FuzzCheck(f *testing.F) {
	f.Add([]byte("Employee ID;Email;First Name;Last Name;Job Title\r\n1;a@x.com;A;B;\"x;\"\"y\"\"\nz\"\r\n"), uint8(0))
	f.Add([]byte("\xef\xbb\xbfEmployee ID,Email,First Name,Last Name,Job Title,Start Date\n1,a,b,c,d,31.12.2026\n"), uint8(1))
	f.Add([]byte("Employee ID\tEmail\tFirst Name\tLast Name\tJob Title\n\t\t\t\t\n"), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, flags uint8) {
		c := hrConfig()
		if flags&1 != 0 {
			c.StartDate = "Start Date"
		}
		if flags&2 != 0 {
			c.Encoding = "windows-1252"
		}
		ctx := context.Background()
		rep, err := Check(ctx, strings.NewReader(string(data)), c)
		if err != nil {
			var p *Problems
			if !errors.As(err, &p) || p.Total == 0 || len(p.List) > MaxProblems || len(p.List) > p.Total {
				t.Fatalf("Check's error is not a sound *Problems: %v", err)
			}
			return
		}
		keys := map[string]bool{}
		err = Scan(ctx, strings.NewReader(string(data)), c, rep, func(r Row) error {
			if r.Key == "" || keys[r.Key] {
				t.Fatalf("row on line %d: key %q empty or repeated", r.Line, r.Key)
			}
			keys[r.Key] = true
			return nil
		})
		if err != nil || len(keys) != rep.Rows {
			t.Fatalf("Scan of a checked file: %v, %d rows of %d", err, len(keys), rep.Rows)
		}
	})
}
