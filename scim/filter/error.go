package filter

import "strconv"

// Error is a filter that cannot be parsed or does not fit the schema. Pos is the byte offset,
// counting from 0, of the offending token in the filter text; Msg says what is wrong in words a
// SCIM client's developer can act on. scimapi answers it with 400 invalidFilter.
type Error struct {
	Pos int
	Msg string
}

func (e *Error) Error() string {
	return "filter: at " + strconv.Itoa(e.Pos) + ": " + e.Msg
}

func errorf(pos int, msg string) *Error {
	return &Error{Pos: pos, Msg: msg}
}
