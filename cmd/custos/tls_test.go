package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	custoshttp "custos/http"
)

// writeSelfSigned writes a self-signed certificate for 127.0.0.1.
func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "custos test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestServeTLS: with a certificate, serve speaks HTTPS only (transport
// security, S3); the client package works over it.
func TestServeTLS(t *testing.T) {
	certFile, keyFile, pool := writeSelfSigned(t, t.TempDir())
	s := startServer(t, t.TempDir(), "--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.HasPrefix(s.URL, "https://") {
		t.Fatalf("listening on %s, want https", s.URL)
	}
	c := custoshttp.NewClient(s.URL, s.AdminKey)
	c.HTTP.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
	if err := c.Health(t.Context()); err != nil {
		t.Fatalf("health over TLS: %v", err)
	}
	if _, err := c.FindPrincipals(t.Context()); err != nil {
		t.Fatalf("API over TLS: %v", err)
	}
	plain := strings.Replace(s.URL, "https://", "http://", 1)
	resp, err := http.Get(plain + "/healthz")
	if err == nil {
		defer resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP answered on the TLS port")
		}
	}
}

// TestPlainHTTPOnlyOnLoopback: a non-loopback address without TLS is
// refused unless --insecure-http says a proxy terminates TLS.
func TestPlainHTTPOnlyOnLoopback(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		wantErr bool
	}{
		{[]string{"-addr", "0.0.0.0:8743"}, true},
		{[]string{"-addr", "10.1.2.3:8743"}, true},
		{[]string{"-addr", "127.0.0.1:8743"}, false},
		{[]string{"-addr", "[::1]:8743"}, false},
		{[]string{"-addr", "localhost:8743"}, false},
		{[]string{"-addr", "0.0.0.0:8743", "-insecure-http"}, false},
		{[]string{"-addr", "0.0.0.0:8743", "-tls-cert", "c.pem"}, true}, // key missing
		{[]string{"-addr", "0.0.0.0:8743", "-tls-cert", "c.pem", "-tls-key", "k.pem"}, false},
	} {
		fs, cf := newFlags("test", &strings.Builder{})
		_, err := cf.parse(fs, append(tc.args, "-data", t.TempDir()), noEnv)
		if (err != nil) != tc.wantErr {
			t.Errorf("%v: err = %v, want error %v", tc.args, err, tc.wantErr)
		}
	}
}

// TestConfigDumpHidesSecrets: custos config shows the effective settings
// but never a store password.
func TestConfigDumpHidesSecrets(t *testing.T) {
	var out, errb strings.Builder
	env := envOf(map[string]string{"CUSTOS_STORE": "postgres://custos:hunter2@db:5432/custos?sslmode=require&password=hunter2"})
	if code := run(t.Context(), []string{"config", "--data", t.TempDir(), "--addr", "127.0.0.1:9000"}, &out, &errb, env); code != 0 {
		t.Fatalf("config: %d %s", code, errb.String())
	}
	if strings.Contains(out.String(), "hunter2") {
		t.Fatalf("config dump shows the password:\n%s", out.String())
	}
	for _, want := range []string{`"addr": "127.0.0.1:9000"`, `postgres://***@db:5432/custos`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("config dump lacks %s:\n%s", want, out.String())
		}
	}
}
