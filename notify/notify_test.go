package notify_test

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"custos"
	"custos/notify"
	"custos/webhook"
)

const (
	mobile = "+8613912345678"
	email  = "zhang.wei@example.com"
)

func codeMsg(channel, to string) *notify.Message {
	return &notify.Message{SubjectID: "sub_1", Channel: channel, To: to, Kind: notify.KindCode,
		Title: "验证码", Text: "您的验证码是 482913，10 分钟内有效。", Code: "482913"}
}

// TestFile: the default notifier writes the subject id, channel, masked
// address and the code, never the plaintext address (R7, S3).
func TestFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), notify.FileName)
	n := notify.NewFile(path)
	for _, m := range []*notify.Message{codeMsg(notify.SMS, mobile), codeMsg(notify.Email, email)} {
		if err := n.Send(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, plain := range []string{mobile, "13912345678", email, "zhang.wei"} {
		if strings.Contains(string(b), plain) {
			t.Errorf("file holds the plaintext address %q:\n%s", plain, b)
		}
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2", len(lines))
	}
	want := []string{"139****5678", "z***@example.com"}
	for i, l := range lines {
		var r notify.FileRecord
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatal(err)
		}
		if r.To != want[i] || r.Code != "482913" || r.SubjectID != "sub_1" || r.Kind != notify.KindCode {
			t.Errorf("line %d: %+v, want to %q, code and subject", i, r, want[i])
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	err = n.Send(t.Context(), &notify.Message{SubjectID: "sub_1", Channel: "fax", Kind: notify.KindCode})
	if custos.ErrorCode(err) != custos.EINVALID {
		t.Errorf("bad message: got %v, want EINVALID", err)
	}
}

// TestWebhookNotifier: the gateway gets a signed JSON body it can verify.
func TestWebhookNotifier(t *testing.T) {
	secret := []byte("gateway-secret")
	var (
		mu   sync.Mutex
		got  map[string]string
		fail bool
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify(secret, r.Header, body, time.Now(), 0); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if fail {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		got = map[string]string{}
		_ = json.Unmarshal(body, &got)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()

	n := &notify.Webhook{URL: srv.URL, Secret: secret}
	if err := n.Send(t.Context(), codeMsg(notify.SMS, mobile)); err != nil {
		t.Fatal(err)
	}
	if got["to"] != mobile || got["code"] != "482913" || got["channel"] != "sms" || got["subject_id"] != "sub_1" {
		t.Errorf("gateway got %v", got)
	}
	// A wrong secret is refused by the gateway: Send fails.
	bad := &notify.Webhook{URL: srv.URL, Secret: []byte("wrong")}
	if err := bad.Send(t.Context(), codeMsg(notify.SMS, mobile)); custos.ErrorCode(err) != custos.EINTERNAL {
		t.Errorf("wrong secret: got %v, want EINTERNAL", err)
	}
	mu.Lock()
	fail = true
	mu.Unlock()
	err := n.Send(t.Context(), codeMsg(notify.SMS, mobile))
	if custos.ErrorCode(err) != custos.EINTERNAL || strings.Contains(err.Error(), "13912345678") {
		t.Errorf("gateway 502: got %v, want EINTERNAL without the address", err)
	}
	plain := &notify.Webhook{URL: "http://gateway.example.com/sms", Secret: secret}
	if err := plain.Send(t.Context(), codeMsg(notify.SMS, mobile)); custos.ErrorCode(err) != custos.EINVALID {
		t.Errorf("plain http to a remote host: got %v, want EINVALID", err)
	}
}

// smtpServer is a minimal in-process SMTP server with STARTTLS and AUTH
// PLAIN, enough for net/smtp's client.
type smtpServer struct {
	ln       net.Listener
	tls      *tls.Config
	starttls bool // offer STARTTLS

	mu      sync.Mutex
	mails   []string // DATA received
	rcpts   []string
	auth    string
	tlsUsed bool
}

func newSMTPServer(t *testing.T, starttls bool) (*smtpServer, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{ln: ln, starttls: starttls,
		tls: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { s.serve(c) })
		}
	})
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return s, pool
}

func (s *smtpServer) serve(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r, w := bufio.NewReader(c), c
	say := func(line string) { io.WriteString(w, line+"\r\n") }
	say("220 test ESMTP")
	secure := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb := strings.ToUpper(strings.SplitN(line, " ", 2)[0])
		switch verb {
		case "EHLO", "HELO":
			if s.starttls && !secure {
				say("250-test")
				say("250 STARTTLS")
			} else {
				say("250-test")
				say("250 AUTH PLAIN")
			}
		case "STARTTLS":
			say("220 go ahead")
			tc := tls.Server(c, s.tls)
			if err := tc.Handshake(); err != nil {
				return
			}
			c, secure = tc, true
			r, w = bufio.NewReader(tc), tc
			s.mu.Lock()
			s.tlsUsed = true
			s.mu.Unlock()
		case "AUTH":
			s.mu.Lock()
			s.auth = line
			s.mu.Unlock()
			say("235 ok")
		case "MAIL":
			say("250 ok")
		case "RCPT":
			s.mu.Lock()
			s.rcpts = append(s.rcpts, line)
			s.mu.Unlock()
			say("250 ok")
		case "DATA":
			say("354 go")
			var b strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				b.WriteString(l)
			}
			s.mu.Lock()
			s.mails = append(s.mails, b.String())
			s.mu.Unlock()
			say("250 queued")
		case "QUIT":
			say("221 bye")
			return
		default:
			say("502 unknown")
		}
	}
}

// TestSMTP: e-mail goes out after STARTTLS, authenticated, with a UTF-8
// body; a server without STARTTLS is refused (S3: no address in clear).
func TestSMTP(t *testing.T) {
	srv, pool := newSMTPServer(t, true)
	n := &notify.SMTP{Addr: srv.ln.Addr().String(), From: "privacy@shop.example", Username: "custos", Password: "pw",
		TLS: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}
	if err := n.Send(t.Context(), codeMsg(notify.Email, email)); err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if !srv.tlsUsed {
		t.Error("STARTTLS was not used")
	}
	if len(srv.rcpts) != 1 || !strings.Contains(srv.rcpts[0], email) {
		t.Errorf("RCPT %v", srv.rcpts)
	}
	want := base64.StdEncoding.EncodeToString([]byte("\x00custos\x00pw"))
	if srv.auth != "AUTH PLAIN "+want {
		t.Errorf("AUTH %q", srv.auth)
	}
	if len(srv.mails) != 1 {
		t.Fatalf("mails: %d", len(srv.mails))
	}
	mail := srv.mails[0]
	if !strings.Contains(mail, "Subject: =?UTF-8?b?") || !strings.Contains(mail, "charset=UTF-8") {
		t.Errorf("headers not encoded:\n%s", mail)
	}
	_, body, _ := strings.Cut(mail, "\r\n\r\n")
	text, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(strings.TrimSpace(body), "\r\n", ""))
	if err != nil || !strings.Contains(string(text), "482913") {
		t.Errorf("body %q (%v): want the code", text, err)
	}

	if err := n.Send(t.Context(), codeMsg(notify.SMS, mobile)); custos.ErrorCode(err) != custos.EINVALID {
		t.Errorf("SMS through SMTP: got %v, want EINVALID", err)
	}
}

func TestSMTPRefusesWithoutSTARTTLS(t *testing.T) {
	srv, pool := newSMTPServer(t, false)
	n := &notify.SMTP{Addr: srv.ln.Addr().String(), From: "privacy@shop.example", Username: "custos", Password: "pw",
		TLS: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}}
	err := n.Send(t.Context(), codeMsg(notify.Email, email))
	if custos.ErrorCode(err) != custos.EINTERNAL || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("got %v, want EINTERNAL naming STARTTLS", err)
	}
	if strings.Contains(err.Error(), email) {
		t.Errorf("error holds the address: %v", err)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if srv.auth != "" || len(srv.rcpts) != 0 || len(srv.mails) != 0 {
		t.Errorf("sent in clear: auth %q rcpts %v mails %d", srv.auth, srv.rcpts, len(srv.mails))
	}
}
