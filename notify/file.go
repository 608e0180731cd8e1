package notify

import (
	"context"
	"encoding/json"
	"os"
	"sync"
	"time"

	"custos"
)

// FileName is the default file notifier's file in the data directory.
const FileName = "notifications.jsonl"

// File appends each message as one JSON line to a file (mode 0600):
//
//	{"time":"…","subject_id":"sub_…","channel":"sms","to":"138****1234",
//	 "kind":"code","title":"…","text":"…","code":"123456"}
//
// The address is written masked, never in plaintext.
type File struct {
	Path string
	Now  func() time.Time // nil: time.Now

	mu sync.Mutex
}

// NewFile returns a file notifier appending to path.
func NewFile(path string) *File { return &File{Path: path} }

// FileRecord is one line of a File notifier's file.
type FileRecord struct {
	Time      time.Time        `json:"time"`
	SubjectID custos.SubjectID `json:"subject_id"`
	Channel   string           `json:"channel"`
	To        string           `json:"to"` // masked
	Kind      string           `json:"kind"`
	Title     string           `json:"title,omitempty"`
	Text      string           `json:"text,omitempty"`
	Code      string           `json:"code,omitempty"`
}

// Send implements Notifier for both channels.
func (f *File) Send(ctx context.Context, m *Message) error {
	if err := check(m, SMS, Email); err != nil {
		return err
	}
	now := time.Now
	if f.Now != nil {
		now = f.Now
	}
	rec := FileRecord{Time: now().UTC(), SubjectID: m.SubjectID, Channel: m.Channel, To: Masked(m),
		Kind: m.Kind, Title: m.Title, Text: m.Text, Code: m.Code}
	b, err := json.Marshal(rec)
	if err != nil {
		return &custos.Error{Code: custos.EINTERNAL, Message: "Internal error.", Err: err}
	}
	b = append(b, '\n')
	f.mu.Lock()
	defer f.mu.Unlock()
	fh, err := os.OpenFile(f.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return &custos.Error{Code: custos.EINTERNAL, Message: "Internal error.", Err: err}
	}
	if _, err := fh.Write(b); err != nil {
		fh.Close()
		return &custos.Error{Code: custos.EINTERNAL, Message: "Internal error.", Err: err}
	}
	if err := fh.Close(); err != nil {
		return &custos.Error{Code: custos.EINTERNAL, Message: "Internal error.", Err: err}
	}
	return nil
}
