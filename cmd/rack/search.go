package main

import (
	"unicode/utf8"
)

// Ctrl-R searches the history backwards, as readline's
// reverse-i-search: type to search, Ctrl-R again for the next older
// match, Backspace to shorten the search, Enter to run the line found,
// Esc or Ctrl-G to go back to the line being edited, and any other
// control key (Tab, Ctrl-A, Ctrl-E, an arrow) to edit the line found.
//
// x/term's line editor passes on to AutoCompleteCallback only the keys it
// does not handle itself (not Enter, Backspace, the arrows), so the search
// is done where the terminal is read (terminal.pump): while it runs, keys
// go to searchByte, and what the line shows is set by keys of the private
// use area that the pump passes to the editor, whose callback (key) sets
// the line.

// Keys that the pump passes to the line editor for the search.
const (
	keySearchShow   = '\ue000' // show the search and what it found
	keySearchAccept = '\ue001' // leave it with the line found
	keySearchCancel = '\ue002' // leave it with the line as it was
)

// search is the state of a Ctrl-R search (under terminal.mu).
type search struct {
	active   bool
	query    string
	match    string // the last match found
	back     int    // how many entries back match is
	found    bool   // match was found (for the current query or before)
	failed   bool   // the current query matches nothing from back
	saved    bool   // orig is set
	orig     string // the line being edited when the search began
	origPos  int
	useFound bool // on leaving, show match (else orig)
}

// startSearch begins a search (tm.mu held).
func (tm *terminal) startSearch() {
	tm.search = search{active: true}
	tm.inject(keySearchShow)
}

// inject passes key to the line editor (tm.mu held).
func (tm *terminal) inject(key rune) { tm.buf = utf8.AppendRune(tm.buf, key) }

// find looks for the query from entries back (tm.mu held).
func (tm *terminal) find(from int) {
	s := &tm.search
	if e, back, ok := tm.hist.search(s.query, from); ok && s.query != "" {
		s.match, s.back, s.found, s.failed = e, back, true, false
	} else {
		s.failed = s.query != ""
	}
}

// searchByte acts on the next byte p[0] typed during a search (tm.mu held).
func (tm *terminal) searchByte(p []byte) {
	s := &tm.search
	c := p[0]
	switch {
	case c == '\r' || c == '\n': // run the line found
		tm.leaveSearch(true)
		tm.buf = append(tm.buf, '\r')
	case c == 0x12: // ^R: the next older match (another line than this one)
		if s.found {
			cur := s.match
			for from := s.back + 1; ; from = s.back + 1 {
				tm.find(from)
				if s.failed || s.match != cur {
					break
				}
			}
		}
		tm.inject(keySearchShow)
	case c == 0x7f || c == 0x08: // Backspace
		if s.query != "" {
			_, n := utf8.DecodeLastRuneInString(s.query)
			s.query = s.query[:len(s.query)-n]
			tm.find(0)
		}
		tm.inject(keySearchShow)
	case c == 0x07 || c == 0x1b && len(p) == 1: // ^G, a lone Esc: back to the line
		tm.leaveSearch(false)
	case c < 0x20: // another control key, or an escape sequence: edit the line found
		tm.leaveSearch(true)
		tm.buf = append(tm.buf, c)
	default:
		s.query += string([]byte{c})
		if utf8.ValidString(s.query) {
			tm.find(s.back)
		}
		tm.inject(keySearchShow)
	}
}

// leaveSearch ends the search with the line found, or the line as it was.
func (tm *terminal) leaveSearch(accept bool) {
	s := &tm.search
	s.active = false
	s.useFound = accept && s.found
	if accept {
		tm.inject(keySearchAccept)
	} else {
		tm.inject(keySearchCancel)
	}
}

// key is the line editor's AutoCompleteCallback: it shows the search,
// and completes on Tab.
func (tm *terminal) key(line string, pos int, key rune) (string, int, bool) {
	switch key {
	case keySearchShow:
		tm.mu.Lock()
		s := &tm.search
		if !s.saved {
			s.orig, s.origPos, s.saved = line, pos, true
		}
		label := "(reverse-i-search)`"
		if s.failed {
			label = "(failed reverse-i-search)`"
		}
		text := label + s.query + "': " + s.match
		tm.mu.Unlock()
		return text, len(text), true
	case keySearchAccept, keySearchCancel:
		tm.mu.Lock()
		defer tm.mu.Unlock()
		s := &tm.search
		if s.useFound {
			return s.match, len(s.match), true
		}
		if !s.saved { // left before it showed: the line is as it was
			return line, pos, true
		}
		return s.orig, s.origPos, true
	case '\t':
		if tm.complete != nil {
			return tm.complete(line, pos)
		}
		return line, pos, true
	}
	return "", 0, false
}
