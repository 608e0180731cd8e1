package notify

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net"
	"net/mail"
	"net/smtp"
	"strings"
	"time"

	"custos"
)

// SMTP sends e-mail through a mail server (submission port 587). The
// connection is always upgraded with STARTTLS before authenticating or
// sending: a server that does not offer it is refused, so neither the
// password nor the customer's address crosses the network in clear.
type SMTP struct {
	Addr     string // host:port
	From     string // envelope and header sender, e.g. privacy@shop.example
	Username string // "" for no authentication
	Password string
	// TLS configures the STARTTLS handshake; nil verifies the server's
	// certificate against the system roots for Addr's host.
	TLS     *tls.Config
	Timeout time.Duration // whole exchange; 0 = 30 s
	// Hello is the name sent in EHLO; "" = "localhost".
	Hello string
}

// Send implements Notifier for the Email channel.
func (s *SMTP) Send(ctx context.Context, m *Message) error {
	if err := check(m, Email); err != nil {
		return err
	}
	to, err := mail.ParseAddress(m.To)
	if err != nil {
		return custos.Invalid("The message cannot be sent.", custos.Violation{Field: "to", Rule: "email"})
	}
	if err := s.send(ctx, to.Address, m); err != nil {
		// The cause may quote the server's reply, which can echo the
		// recipient; keep it in Err (logged by the caller at most) only
		// after stripping the address.
		return &custos.Error{Code: custos.EINTERNAL, Message: "The e-mail could not be sent.",
			Err: errors.New(strings.ReplaceAll(err.Error(), to.Address, Masked(m)))}
	}
	return nil
}

func (s *SMTP) send(ctx context.Context, to string, m *Message) error {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return fmt.Errorf("smtp addr: %w", err)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("smtp dial: %w", err)
	}
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			conn.Close()
			return err
		}
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("smtp greeting: %w", err)
	}
	defer c.Close()
	hello := s.Hello
	if hello == "" {
		hello = "localhost"
	}
	if err := c.Hello(hello); err != nil {
		return fmt.Errorf("smtp ehlo: %w", err)
	}
	if ok, _ := c.Extension("STARTTLS"); !ok {
		return errors.New("smtp: server does not offer STARTTLS; refusing to send in clear")
	}
	cfg := s.TLS
	if cfg == nil {
		cfg = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	if err := c.StartTLS(cfg); err != nil {
		return fmt.Errorf("smtp starttls: %w", err)
	}
	if s.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", s.Username, s.Password, host)); err != nil {
			return fmt.Errorf("smtp auth: %w", err)
		}
	}
	if err := c.Mail(s.From); err != nil {
		return fmt.Errorf("smtp mail from: %w", err)
	}
	if err := c.Rcpt(to); err != nil {
		return fmt.Errorf("smtp rcpt: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp data: %w", err)
	}
	if _, err := w.Write(s.compose(to, m)); err != nil {
		return fmt.Errorf("smtp write: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp data end: %w", err)
	}
	return c.Quit()
}

// compose renders the message: UTF-8 text, base64 body, RFC 2047 subject.
func (s *SMTP) compose(to string, m *Message) []byte {
	var b strings.Builder
	title := m.Title
	if title == "" {
		title = "custos"
	}
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMIME-Version: 1.0\r\n",
		s.From, to, mime.BEncoding.Encode("UTF-8", title), time.Now().Format(time.RFC1123Z))
	b.WriteString("Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	enc := base64.StdEncoding.EncodeToString([]byte(m.Text))
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n")
	return []byte(b.String())
}
