package sqlutil

import "encoding/json"

// EncodeList encodes a string list (roles, audit fields, purposes) as a
// JSON array for a TEXT (SQLite) or JSONB (PostgreSQL) column. A nil list
// encodes as JSON null and an empty one as [], so both round-trip exactly.
func EncodeList(l []string) ([]byte, error) { return json.Marshal(l) }

// DecodeList decodes the output of EncodeList: null gives a nil list.
func DecodeList(b []byte) ([]string, error) {
	var l []string
	err := json.Unmarshal(b, &l)
	return l, err
}
