package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"custos"
)

// artifactsDir is where browser tests leave their screenshots:
// $CUSTOS_ARTIFACTS, or artifacts/ beside the test.
func artifactsDir(tb testing.TB) string {
	tb.Helper()
	dir := os.Getenv("CUSTOS_ARTIFACTS")
	if dir == "" {
		dir = "artifacts"
	}
	dir = filepath.Join(dir, "portal")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	return dir
}

// newBrowser starts Debian's headless chromium, or skips the test when it
// is not installed (.ci/run installs it, so CI never skips).
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (apt-get install chromium); .ci/run installs it, so CI runs this test")
	}
	// The profile directory is removed after chromium has exited, not by
	// t.TempDir's cleanup, which may run while its helpers still write.
	profile, err := os.MkdirTemp("", "custos-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(profile),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.WindowSize(412, 915))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	// This chromedp predates some protocol values of Debian's chromium
	// (e.g. IPAddressSpace "Loopback") and says so per event; those
	// events are ones the test does not use.
	ctx, cancelC := chromedp.NewContext(actx, chromedp.WithErrorf(func(format string, args ...any) {
		if msg := fmt.Sprintf(format, args...); !strings.Contains(msg, "could not unmarshal event") {
			t.Logf("chromedp: %s", msg)
		}
	}))
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() {
		_ = chromedp.Cancel(ctx) // closes the browser and waits for it
		cancelT()
		cancelC()
		cancelA()
		for i := 0; i < 50; i++ {
			if err := os.RemoveAll(profile); err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Logf("could not remove chromium's profile %s", profile)
	})
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	var png []byte
	if err := chromedp.Run(ctx, chromedp.FullScreenshot(&png, 100)); err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(artifactsDir(t), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)
}

// TestPortalBrowser drives the privacy portal in headless Chromium on a
// phone-sized window, as a customer would (R1–R7): sign in with a one-time
// code, see masked data, download a copy and check it, withdraw a consent,
// and ask for deletion, which completes with the order kept restricted for
// its legal minimum. Screenshots go to artifacts/portal/.
func TestPortalBrowser(t *testing.T) {
	bctx := newBrowser(t)
	ctx := context.Background()
	dir := t.TempDir()
	srv := startServer(t, dir)
	admin := srv.client(srv.AdminKey)
	ps := createPrincipals(t, srv, admin)
	publishNotice(t, admin, testNotice())
	prov := custos.Provenance{Collector: "app-signup", Channel: "app", Source: "customer", Location: "online"}
	const mobile, name = "13922220004", "冯小桐"
	sub, err := ps.App.CreateSubject(ctx, []string{"account", "fulfilment", "marketing"}, custos.NewSubject{
		Fields: map[string]string{"name": name, "mobile": mobile, "email": "feng.xt@example.com", "address": "成都市锦江区春熙路8号"}, Provenance: prov,
		Consent: &custos.ConsentCapture{NoticeVersion: 1, Channel: "app",
			Decisions: []custos.ConsentDecision{decision("marketing", true), decision("personalisation", false)}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ps.App.CreateRecord(ctx, []string{"fulfilment"}, sub.ID, custos.NewRecord{Type: "order", OccurredAt: time.Now().Add(-time.Hour),
		Data: map[string]any{"sku": "PANDA-TOY-7", "amount": "88.00"}, Provenance: prov}); err != nil {
		t.Fatal(err)
	}
	downloads := t.TempDir()
	base := srv.URL + "/portal/"

	// Sign in with a one-time code.
	var held string
	err = chromedp.Run(bctx,
		browser.SetDownloadBehavior(browser.SetDownloadBehaviorBehaviorAllowAndName).WithDownloadPath(downloads).WithEventsEnabled(true),
		chromedp.Navigate(base+"?lang=en"),
		chromedp.WaitVisible("#send", chromedp.ByQuery),
	)
	if err != nil {
		t.Fatalf("open portal: %v", err)
	}
	screenshot(t, bctx, "1-signin.png")
	if err := chromedp.Run(bctx,
		chromedp.SendKeys("#id", mobile, chromedp.ByQuery),
		chromedp.Click("#send", chromedp.ByQuery),
		chromedp.WaitVisible("#code", chromedp.ByQuery),
	); err != nil {
		t.Fatalf("ask for a code: %v", err)
	}
	code := lastCode(t, dir, sub.ID)
	if err := chromedp.Run(bctx,
		chromedp.SendKeys("#code", code, chromedp.ByQuery),
		chromedp.Click("#verify", chromedp.ByQuery),
		chromedp.WaitVisible("#held", chromedp.ByQuery),
		chromedp.Text("#held", &held, chromedp.ByQuery),
	); err != nil {
		t.Fatalf("sign in: %v", err)
	}
	screenshot(t, bctx, "2-home.png")
	if !strings.Contains(held, "139****0004") || strings.Contains(held, mobile) || strings.Contains(held, name) {
		t.Errorf("home shows held data unmasked or not at all:\n%s", held)
	}

	// Download a copy and check its contents.
	if err := chromedp.Run(bctx,
		chromedp.Click("#copy", chromedp.ByQuery),
		chromedp.WaitVisible("#download", chromedp.ByQuery),
	); err != nil {
		t.Fatalf("ask for a copy: %v", err)
	}
	screenshot(t, bctx, "3-copy.png")
	done := make(chan string, 1)
	chromedp.ListenTarget(bctx, func(ev any) {
		if e, ok := ev.(*browser.EventDownloadProgress); ok && e.State == browser.DownloadProgressStateCompleted {
			select {
			case done <- e.GUID:
			default:
			}
		}
	})
	if err := chromedp.Run(bctx, chromedp.Click("#download", chromedp.ByQuery)); err != nil {
		t.Fatalf("download: %v", err)
	}
	var guid string
	select {
	case guid = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the export download did not complete")
	}
	zb, err := os.ReadFile(filepath.Join(downloads, guid))
	if err != nil {
		t.Fatal(err)
	}
	files := unzip(t, zb)
	if !strings.Contains(files["fields.csv"], name) || !strings.Contains(files["fields.csv"], "+86"+mobile) || !strings.Contains(files["records.json"], "PANDA-TOY-7") {
		t.Errorf("downloaded export lacks the customer's data:\n%s\n%s", files["fields.csv"], files["records.json"])
	}

	// Withdraw consent to marketing: one click, effective at once.
	var state string
	if err := chromedp.Run(bctx,
		chromedp.Navigate(base+"home?lang=en"),
		chromedp.Click(`[data-purpose="marketing"] button.withdraw`, chromedp.ByQuery),
		chromedp.WaitVisible("#info", chromedp.ByQuery),
		chromedp.Text(`[data-purpose="marketing"] .state`, &state, chromedp.ByQuery),
	); err != nil {
		t.Fatalf("withdraw: %v", err)
	}
	if state != "Withdrawn" {
		t.Errorf("marketing consent after withdrawal shows %q", state)
	}
	got, err := ps.Marketing.FindSubjectByID(ctx, []string{"marketing"}, sub.ID)
	if err != nil || got.Decisions["mobile"].Reason != "consent_withdrawn" {
		t.Errorf("marketing read after portal withdrawal: %v %v", err, got)
	}

	// Ask for deletion: completes, keeping the order restricted.
	var status, retained string
	if err := chromedp.Run(bctx,
		chromedp.Click("#confirm-delete", chromedp.ByQuery),
		chromedp.Click("#delete", chromedp.ByQuery),
		chromedp.WaitVisible("#request", chromedp.ByQuery),
		chromedp.Text("#status", &status, chromedp.ByQuery),
		chromedp.Text("#retained", &retained, chromedp.ByQuery),
	); err != nil {
		t.Fatalf("delete: %v", err)
	}
	screenshot(t, bctx, "4-deleted.png")
	if status != "Completed" || !strings.Contains(retained, "transaction records × 1") {
		t.Errorf("deletion: status %q retained %q", status, retained)
	}
	_, err = ps.CS.FindSubjectByLookup(ctx, []string{"customer-service"}, "mobile", mobile)
	wantCode(t, err, custos.ENOTFOUND)

	// In Chinese too.
	if err := chromedp.Run(bctx, chromedp.Navigate(base+"home?lang=zh-CN"), chromedp.WaitVisible("#requests", chromedp.ByQuery)); err != nil {
		t.Fatalf("home in Chinese: %v", err)
	}
	screenshot(t, bctx, "5-home-zh.png")
}
