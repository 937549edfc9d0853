package mem

import "strings"

// Index blocks hold between 1 and maxBlock entries; a block that outgrows
// maxBlock is split in two halves.
const maxBlock = 512

// index is an ordered set of entries keyed by name, in byte order: a sorted
// list of sorted blocks. Insertion and removal cost a binary search plus a
// copy of at most maxBlock pointers, and seeking costs two binary searches,
// so listings stay cheap however large a container grows.
//
// Entries are immutable *object values; replacing an entry swaps the pointer.
type index struct {
	blocks [][]*object
	n      int
}

// pos is a position in an index: block bi, entry i.
type pos struct{ bi, i int }

// len returns the number of entries.
func (x *index) len() int { return x.n }

// at returns the entry at p, or nil past the end.
func (x *index) at(p pos) *object {
	if p.bi >= len(x.blocks) {
		return nil
	}
	return x.blocks[p.bi][p.i]
}

// next returns the position after p.
func (x *index) next(p pos) pos {
	p.i++
	if p.i >= len(x.blocks[p.bi]) {
		p.bi++
		p.i = 0
	}
	return p
}

// search returns the first position whose name satisfies pred, which must
// be monotone (false for a prefix of the ordering, true after).
func (x *index) search(pred func(name string) bool) pos {
	lo, hi := 0, len(x.blocks)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		b := x.blocks[m]
		if !pred(b[len(b)-1].name) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(x.blocks) {
		return pos{lo, 0}
	}
	b := x.blocks[lo]
	i, j := 0, len(b)
	for i < j {
		m := int(uint(i+j) >> 1)
		if !pred(b[m].name) {
			i = m + 1
		} else {
			j = m
		}
	}
	return pos{lo, i}
}

// lowerBound returns the position of the first name >= name (specialised
// search, for the write path).
func (x *index) lowerBound(name string) pos {
	lo, hi := 0, len(x.blocks)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		b := x.blocks[m]
		if b[len(b)-1].name < name {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == len(x.blocks) {
		return pos{lo, 0}
	}
	b := x.blocks[lo]
	i, j := 0, len(b)
	for i < j {
		m := int(uint(i+j) >> 1)
		if b[m].name < name {
			i = m + 1
		} else {
			j = m
		}
	}
	return pos{lo, i}
}

// upperBound returns the position of the first name > name.
func (x *index) upperBound(name string) pos {
	p := x.lowerBound(name)
	if o := x.at(p); o != nil && o.name == name {
		p = x.next(p)
	}
	return p
}

// pastPrefix returns the position of the first name that is greater than
// prefix and does not start with it.
func (x *index) pastPrefix(prefix string) pos {
	return x.search(func(name string) bool {
		return name > prefix && !strings.HasPrefix(name, prefix)
	})
}

// put inserts o, replacing any entry of the same name.
func (x *index) put(o *object) {
	if len(x.blocks) == 0 {
		b := make([]*object, 1, 16)
		b[0] = o
		x.blocks = append(x.blocks, b)
		x.n = 1
		return
	}
	p := x.lowerBound(o.name)
	if p.bi == len(x.blocks) {
		// Past the last name: append to the last block.
		p.bi--
		p.i = len(x.blocks[p.bi])
	} else if b := x.blocks[p.bi]; b[p.i].name == o.name {
		b[p.i] = o
		return
	}
	b := x.blocks[p.bi]
	b = append(b, nil)
	copy(b[p.i+1:], b[p.i:])
	b[p.i] = o
	x.n++
	if len(b) <= maxBlock {
		x.blocks[p.bi] = b
		return
	}
	// Split: the upper half moves to a new block after this one.
	half := len(b) / 2
	upper := make([]*object, len(b)-half, maxBlock)
	copy(upper, b[half:])
	clear(b[half:])
	x.blocks[p.bi] = b[:half]
	x.blocks = append(x.blocks, nil)
	copy(x.blocks[p.bi+2:], x.blocks[p.bi+1:])
	x.blocks[p.bi+1] = upper
}

// remove deletes the entry named name, if any, and reports whether it did.
func (x *index) remove(name string) bool {
	p := x.lowerBound(name)
	if p.bi == len(x.blocks) {
		return false
	}
	b := x.blocks[p.bi]
	if b[p.i].name != name {
		return false
	}
	copy(b[p.i:], b[p.i+1:])
	b[len(b)-1] = nil
	b = b[:len(b)-1]
	x.n--
	if len(b) > 0 {
		x.blocks[p.bi] = b
		// Merge a small block into its successor's room when both fit, so
		// that churn does not leave many tiny blocks behind.
		if len(b) < maxBlock/8 && p.bi+1 < len(x.blocks) {
			nb := x.blocks[p.bi+1]
			if len(b)+len(nb) <= maxBlock/2 {
				b = append(b, nb...)
				x.blocks[p.bi] = b
				x.dropBlock(p.bi + 1)
			}
		}
		return true
	}
	x.dropBlock(p.bi)
	return true
}

// dropBlock removes block bi.
func (x *index) dropBlock(bi int) {
	copy(x.blocks[bi:], x.blocks[bi+1:])
	x.blocks[len(x.blocks)-1] = nil
	x.blocks = x.blocks[:len(x.blocks)-1]
}
