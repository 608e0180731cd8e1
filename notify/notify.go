// Package notify sends one-time codes and messages to customers by SMS or
// e-mail (R7) through a pluggable Notifier:
//
//   - File (the default): appends one JSON line per message to a file in
//     the data directory, for development and for operators without a
//     gateway. It never writes the plaintext address: only the subject
//     id, the channel, the masked address (138****1234, z***@example.com)
//     and the message or code, which is what a developer needs to read.
//   - SMTP: e-mail through a mail server, always over STARTTLS.
//   - Webhook: a signed JSON POST to an SMS or e-mail gateway (see package
//     webhook for the signature).
//
// The address (Message.To) is plaintext personal data held in memory for
// one send; no notifier logs it or puts it in an error.
package notify

import (
	"context"
	"strings"

	"custos"
	"custos/mask"
)

// Channels.
const (
	SMS   = "sms"
	Email = "email"
)

// Kinds of message.
const (
	KindCode    = "code"    // a one-time code
	KindMessage = "message" // any other customer message
)

// Message is one message to one customer.
type Message struct {
	SubjectID custos.SubjectID
	Channel   string // SMS or Email
	To        string // normalised mobile (+8613800001234) or e-mail address; never logged
	Kind      string // KindCode or KindMessage
	Title     string // e-mail subject; SMS gateways may use it as a template name
	Text      string // the message, with the code in it for KindCode
	Code      string // the one-time code, for KindCode
}

// Notifier delivers messages. Send returns EINVALID for a message it
// cannot carry (a channel it does not serve, an empty address) and
// EINTERNAL when delivery failed; neither error holds the address.
type Notifier interface {
	Send(ctx context.Context, m *Message) error
}

// check validates m for a notifier serving channels.
func check(m *Message, channels ...string) error {
	var vs []custos.Violation
	ok := false
	for _, c := range channels {
		ok = ok || m.Channel == c
	}
	if !ok {
		vs = append(vs, custos.Violation{Field: "channel", Rule: "enum", Detail: "this notifier serves " + strings.Join(channels, ", ")})
	}
	if strings.TrimSpace(m.To) == "" {
		vs = append(vs, custos.Violation{Field: "to", Rule: "required"})
	}
	if strings.ContainsAny(m.To, "\r\n") || strings.ContainsAny(m.Title, "\r\n") {
		vs = append(vs, custos.Violation{Field: "to", Rule: "no_line_breaks"})
	}
	if m.Kind != KindCode && m.Kind != KindMessage {
		vs = append(vs, custos.Violation{Field: "kind", Rule: "enum", Detail: "code or message"})
	}
	if len(vs) > 0 {
		return custos.Invalid("The message cannot be sent.", vs...)
	}
	return nil
}

// Masked returns m's address masked for display: mobile 138****1234,
// e-mail z***@example.com.
func Masked(m *Message) string {
	if m.Channel == Email {
		return mask.Apply(mask.Email, m.To)
	}
	return mask.Apply(mask.Mobile, m.To)
}

// Multi sends each message through the notifier for its channel.
type Multi map[string]Notifier

// Send implements Notifier.
func (n Multi) Send(ctx context.Context, m *Message) error {
	x, ok := n[m.Channel]
	if !ok {
		return custos.Invalid("The message cannot be sent.", custos.Violation{Field: "channel", Rule: "unsupported"})
	}
	return x.Send(ctx, m)
}
