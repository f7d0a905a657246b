package ldapsync

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// pendingSpillAfter is how many resources waiting for references a pass keeps in memory
// before it writes them all to a temporary file. A first sync meets about half its users before
// their managers: at a million users, their JSON alone would be some 400 MB. On disk each
// costs nothing but its bytes in the file, which is read back once, in order, when the read is
// over. The file is unlinked as soon as it is created, so nothing outlives the process.
var pendingSpillAfter = 4096

// pendingFile is the spilled part of a pass's pending resources.
type pendingFile struct {
	f *os.File
	w *bufio.Writer
	n int
}

// addPending keeps a resource waiting for its references: in memory, or in the spill file once
// there are more than pendingSpillAfter.
func (p *pass) addPending(pr pendingResource) error {
	if p.spill == nil && len(p.pending) < pendingSpillAfter {
		p.pending = append(p.pending, pr)
		return nil
	}
	if p.spill == nil {
		f, err := os.CreateTemp("", "ldapscim-pending-*")
		if err != nil {
			return fmt.Errorf("spilling pending resources: %w", err)
		}
		_ = os.Remove(f.Name())
		p.spill = &pendingFile{f: f, w: bufio.NewWriterSize(f, 1<<16)}
		for _, q := range p.pending {
			if err := p.spill.write(q); err != nil {
				return err
			}
		}
		p.pending = nil
	}
	return p.spill.write(pr)
}

func (pf *pendingFile) write(pr pendingResource) error {
	var b []byte
	str := func(s []byte) {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	strs := func(ss []string) {
		b = binary.AppendUvarint(b, uint64(len(ss)))
		for _, s := range ss {
			str([]byte(s))
		}
	}
	str(pr.raw)
	str([]byte(pr.rf.manager))
	strs(pr.rf.memberDNs)
	strs(pr.rf.memberUIDs)
	b = append(b, pr.digest[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(pr.mod))
	var n [binary.MaxVarintLen64]byte
	if _, err := pf.w.Write(n[:binary.PutUvarint(n[:], uint64(len(b)))]); err != nil {
		return fmt.Errorf("spilling pending resources: %w", err)
	}
	if _, err := pf.w.Write(b); err != nil {
		return fmt.Errorf("spilling pending resources: %w", err)
	}
	pf.n++
	return nil
}

// each calls fn with every spilled resource, in order, then closes the file.
func (pf *pendingFile) each(fn func(pendingResource) error) error {
	defer pf.close()
	if err := pf.w.Flush(); err != nil {
		return fmt.Errorf("spilling pending resources: %w", err)
	}
	if _, err := pf.f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	r := bufio.NewReaderSize(pf.f, 1<<16)
	var buf []byte
	for range pf.n {
		size, err := binary.ReadUvarint(r)
		if err != nil {
			return fmt.Errorf("reading spilled pending resources: %w", err)
		}
		if uint64(cap(buf)) < size {
			buf = make([]byte, size)
		}
		buf = buf[:size]
		if _, err := io.ReadFull(r, buf); err != nil {
			return fmt.Errorf("reading spilled pending resources: %w", err)
		}
		pr, err := decodePending(buf)
		if err != nil {
			return err
		}
		if err := fn(pr); err != nil {
			return err
		}
	}
	return nil
}

func decodePending(b []byte) (pendingResource, error) {
	bad := fmt.Errorf("reading spilled pending resources: malformed record")
	next := func() ([]byte, bool) {
		n, w := binary.Uvarint(b)
		if w <= 0 || uint64(len(b)-w) < n {
			return nil, false
		}
		s := b[w : w+int(n)]
		b = b[w+int(n):]
		return s, true
	}
	list := func() ([]string, bool) {
		n, w := binary.Uvarint(b)
		if w <= 0 || n > uint64(len(b)) {
			return nil, false
		}
		b = b[w:]
		var out []string
		for range n {
			s, ok := next()
			if !ok {
				return nil, false
			}
			out = append(out, string(s))
		}
		return out, true
	}
	var pr pendingResource
	raw, ok1 := next()
	mgr, ok2 := next()
	dns, ok3 := list()
	uids, ok4 := list()
	if !ok1 || !ok2 || !ok3 || !ok4 || len(b) != 16+8 {
		return pendingResource{}, bad
	}
	pr.raw = append([]byte(nil), raw...)
	pr.rf = refs{manager: string(mgr), memberDNs: dns, memberUIDs: uids}
	pr.digest = [16]byte(b)
	pr.mod = int64(binary.BigEndian.Uint64(b[16:]))
	return pr, nil
}

func (pf *pendingFile) close() {
	if pf != nil && pf.f != nil {
		pf.f.Close()
		pf.f = nil
	}
}
