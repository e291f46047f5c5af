package qfile

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"os"
)

// bbolt's on-disk layout (go.etcd.io/bbolt/internal/common, format
// version 2, as in bbolt v1.4.3): a 16-byte page header, then on pages 0
// and 1 the meta.
//
// Why kioskd reads it itself: bbolt's public API offers no check that runs
// before the file is mapped. bbolt.Open trusts the meta page's page size
// and page count and the freelist it points to; on a truncated or
// overwritten file it panics in a goroutine of its own or touches memory
// past the end of the mapping (SIGBUS), neither of which recover can catch,
// and Tx.Check needs an open database. Re-check these constants when
// upgrading bbolt.
const (
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	pageHeaderSize   = 16
	metaSize         = 64
	metaSumOffset    = 56
	flagBranch       = 0x01
	flagLeaf         = 0x02
	flagFreelist     = 0x10
	pgidNoFreelist   = ^uint64(0)
	maxBoltPageSize  = 1 << 24
	elemSize         = 16 // branch and leaf page elements
	bucketLeafFlag   = 0x01
	bucketHeaderSize = 16 // root page ID, sequence
)

type boltMeta struct {
	pageSize             uint32
	root, freelist, pgid uint64
	txid                 uint64
}

func parseMeta(b []byte) (boltMeta, bool) {
	if len(b) < pageHeaderSize+metaSize {
		return boltMeta{}, false
	}
	m := b[pageHeaderSize : pageHeaderSize+metaSize]
	le := binary.NativeEndian
	if le.Uint32(m[0:]) != boltMagic || le.Uint32(m[4:]) != boltVersion {
		return boltMeta{}, false
	}
	h := fnv.New64a()
	h.Write(m[:metaSumOffset])
	if h.Sum64() != le.Uint64(m[metaSumOffset:]) {
		return boltMeta{}, false
	}
	return boltMeta{
		pageSize: le.Uint32(m[8:]),
		root:     le.Uint64(m[16:]),
		freelist: le.Uint64(m[32:]),
		pgid:     le.Uint64(m[40:]),
		txid:     le.Uint64(m[48:]),
	}, true
}

// checkLayout checks what bbolt trusts blindly: a valid meta page (the
// newer of the two, as bbolt picks), a file long enough for every page the
// meta counts, a freelist whose IDs are all in range, and trees that bbolt
// can follow without leaving the file or going round in circles.
func checkLayout(f *os.File, size int64) error {
	buf := make([]byte, 4096)
	n, _ := f.ReadAt(buf, 0)
	m0, ok0 := parseMeta(buf[:n])
	var m1 boltMeta
	var ok1 bool
	if ok0 {
		if n, _ := f.ReadAt(buf, int64(m0.pageSize)); n > 0 {
			m1, ok1 = parseMeta(buf[:n])
		}
	} else {
		// bbolt looks for the second meta page at every power-of-two size.
		for i := 0; i <= 14 && !ok1; i++ {
			if n, _ := f.ReadAt(buf, int64(1024<<i)); n > 0 {
				m1, ok1 = parseMeta(buf[:n])
			}
		}
	}
	m := m0
	switch {
	case ok0 && ok1 && m1.txid > m0.txid, !ok0 && ok1:
		m = m1
	case !ok0 && !ok1:
		return fmt.Errorf("%w: not a bbolt database (no valid meta page)", ErrCorrupt)
	}
	ps := uint64(m.pageSize)
	if ps < 512 || ps > maxBoltPageSize || ps&(ps-1) != 0 {
		return fmt.Errorf("%w: page size %d", ErrCorrupt, ps)
	}
	if m.pgid < 3 {
		return fmt.Errorf("%w: %d pages", ErrCorrupt, m.pgid)
	}
	if m.pgid > uint64(size)/ps {
		return fmt.Errorf("%w: truncated: %d bytes, the meta page counts %d pages of %d", ErrCorrupt, size, m.pgid, ps)
	}
	if m.root < 2 || m.root >= m.pgid {
		return fmt.Errorf("%w: root page %d out of range", ErrCorrupt, m.root)
	}
	hdr := make([]byte, pageHeaderSize+8)
	if _, err := f.ReadAt(hdr, int64(m.root*ps)); err != nil {
		return fmt.Errorf("%w: root page: %v", ErrCorrupt, err)
	}
	le := binary.NativeEndian
	if le.Uint64(hdr) != m.root || le.Uint16(hdr[8:])&(flagBranch|flagLeaf) == 0 {
		return fmt.Errorf("%w: root page %d is not a tree page", ErrCorrupt, m.root)
	}
	t := &treeWalker{f: f, ps: ps, pgid: m.pgid, seen: make(bitset, m.pgid/64+1), freed: make(bitset, m.pgid/64+1)}
	if m.freelist == pgidNoFreelist {
		return t.page(m.root, 0)
	}
	if m.freelist < 2 || m.freelist >= m.pgid {
		return fmt.Errorf("%w: freelist page %d out of range", ErrCorrupt, m.freelist)
	}
	if _, err := f.ReadAt(hdr, int64(m.freelist*ps)); err != nil {
		return fmt.Errorf("%w: freelist page: %v", ErrCorrupt, err)
	}
	if le.Uint64(hdr) != m.freelist || le.Uint16(hdr[8:])&flagFreelist == 0 {
		return fmt.Errorf("%w: freelist page %d has the wrong type", ErrCorrupt, m.freelist)
	}
	count, start := uint64(le.Uint16(hdr[10:])), uint64(pageHeaderSize)
	overflow := uint64(le.Uint32(hdr[12:]))
	if count == 0xFFFF {
		count, start = le.Uint64(hdr[16:]), pageHeaderSize+8
	}
	if m.freelist+overflow >= m.pgid || start+count*8 > (overflow+1)*ps || count > m.pgid {
		return fmt.Errorf("%w: freelist page %d is inconsistent", ErrCorrupt, m.freelist)
	}
	ids := make([]byte, count*8)
	if _, err := f.ReadAt(ids, int64(m.freelist*ps+start)); err != nil {
		return fmt.Errorf("%w: freelist: %v", ErrCorrupt, err)
	}
	for i := uint64(0); i < count; i++ {
		id := le.Uint64(ids[i*8:])
		if id < 2 || id >= m.pgid {
			return fmt.Errorf("%w: freelist names page %d, beyond the file", ErrCorrupt, id)
		}
		t.freed.set(id)
	}
	if err := t.mark(m.freelist, overflow); err != nil {
		return err
	}
	return t.page(m.root, 0)
}

// bitset is a set of page IDs.
type bitset []uint64

func (b bitset) set(i uint64)      { b[i/64] |= 1 << (i % 64) }
func (b bitset) has(i uint64) bool { return b[i/64]&(1<<(i%64)) != 0 }

// treeWalker follows every bucket's B+tree in the file the way bbolt
// does, but reading with bounds checks: a page ID out of range, a page
// reached twice (a cycle would make bbolt loop or recurse until the
// process dies, beyond any recover), a page both in use and free, or an
// element pointing outside its page is reported instead of followed.
// Images are not read, only the page headers and element tables.
type treeWalker struct {
	f           *os.File
	ps, pgid    uint64
	seen, freed bitset
}

// maxTreeDepth is far beyond any real bucket nesting or tree height.
const maxTreeDepth = 64

func (t *treeWalker) mark(id, overflow uint64) error {
	end := id + overflow
	if id < 2 || end < id || end >= t.pgid {
		return fmt.Errorf("%w: page %d (+%d) out of range", ErrCorrupt, id, overflow)
	}
	for i := id; i <= end; i++ {
		if t.seen.has(i) {
			return fmt.Errorf("%w: page %d referenced twice", ErrCorrupt, i)
		}
		if t.freed.has(i) {
			return fmt.Errorf("%w: page %d both in use and free", ErrCorrupt, i)
		}
		t.seen.set(i)
	}
	return nil
}

func (t *treeWalker) page(id uint64, depth int) error {
	if depth > maxTreeDepth {
		return fmt.Errorf("%w: tree deeper than %d", ErrCorrupt, maxTreeDepth)
	}
	if id < 2 || id >= t.pgid {
		return fmt.Errorf("%w: page %d out of range", ErrCorrupt, id)
	}
	le := binary.NativeEndian
	hdr := make([]byte, pageHeaderSize)
	if _, err := t.f.ReadAt(hdr, int64(id*t.ps)); err != nil {
		return fmt.Errorf("%w: page %d: %v", ErrCorrupt, id, err)
	}
	flags, count, overflow := le.Uint16(hdr[8:]), uint64(le.Uint16(hdr[10:])), uint64(le.Uint32(hdr[12:]))
	if le.Uint64(hdr) != id {
		return fmt.Errorf("%w: page %d identifies as %d", ErrCorrupt, id, le.Uint64(hdr))
	}
	if err := t.mark(id, overflow); err != nil {
		return err
	}
	size := (overflow + 1) * t.ps
	if pageHeaderSize+count*elemSize > size {
		return fmt.Errorf("%w: page %d: %d elements do not fit", ErrCorrupt, id, count)
	}
	elems := make([]byte, count*elemSize)
	if _, err := t.f.ReadAt(elems, int64(id*t.ps+pageHeaderSize)); err != nil {
		return fmt.Errorf("%w: page %d: %v", ErrCorrupt, id, err)
	}
	switch flags {
	case flagBranch:
		for i := uint64(0); i < count; i++ {
			e := elems[i*elemSize:]
			if err := inPage(id, size, i, uint64(le.Uint32(e)), uint64(le.Uint32(e[4:])), 0); err != nil {
				return err
			}
			if err := t.page(le.Uint64(e[8:]), depth+1); err != nil {
				return err
			}
		}
	case flagLeaf:
		for i := uint64(0); i < count; i++ {
			e := elems[i*elemSize:]
			pos, ksize, vsize := uint64(le.Uint32(e[4:])), uint64(le.Uint32(e[8:])), uint64(le.Uint32(e[12:]))
			if err := inPage(id, size, i, pos, ksize, vsize); err != nil {
				return err
			}
			if le.Uint32(e)&bucketLeafFlag == 0 {
				continue
			}
			v := make([]byte, vsize)
			off := id*t.ps + pageHeaderSize + i*elemSize + pos + ksize
			if _, err := t.f.ReadAt(v, int64(off)); err != nil {
				return fmt.Errorf("%w: page %d: %v", ErrCorrupt, id, err)
			}
			if err := t.bucket(v, depth+1); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("%w: page %d is not a tree page (flags %#x)", ErrCorrupt, id, flags)
	}
	return nil
}

// inPage checks that element i's key and value lie inside its page.
func inPage(id, size, i, pos, ksize, vsize uint64) error {
	if pageHeaderSize+i*elemSize+pos+ksize+vsize > size {
		return fmt.Errorf("%w: page %d: element %d points outside the page", ErrCorrupt, id, i)
	}
	return nil
}

// bucket checks a bucket value: a root page, or an inline page.
func (t *treeWalker) bucket(v []byte, depth int) error {
	if depth > maxTreeDepth {
		return fmt.Errorf("%w: buckets nested deeper than %d", ErrCorrupt, maxTreeDepth)
	}
	if len(v) < bucketHeaderSize {
		return fmt.Errorf("%w: bucket header of %d bytes", ErrCorrupt, len(v))
	}
	le := binary.NativeEndian
	if root := le.Uint64(v); root != 0 {
		return t.page(root, depth)
	}
	p := v[bucketHeaderSize:]
	if len(p) < pageHeaderSize || le.Uint16(p[8:]) != flagLeaf {
		return fmt.Errorf("%w: inline bucket is not a leaf", ErrCorrupt)
	}
	count := uint64(le.Uint16(p[10:]))
	size := uint64(len(p))
	if pageHeaderSize+count*elemSize > size {
		return fmt.Errorf("%w: inline bucket: %d elements do not fit", ErrCorrupt, count)
	}
	for i := uint64(0); i < count; i++ {
		e := p[pageHeaderSize+i*elemSize:]
		pos, ksize, vsize := uint64(le.Uint32(e[4:])), uint64(le.Uint32(e[8:])), uint64(le.Uint32(e[12:]))
		if err := inPage(0, size, i, pos, ksize, vsize); err != nil {
			return err
		}
		if le.Uint32(e)&bucketLeafFlag != 0 {
			off := pageHeaderSize + i*elemSize + pos + ksize
			if err := t.bucket(p[off:off+vsize], depth+1); err != nil {
				return err
			}
		}
	}
	return nil
}
