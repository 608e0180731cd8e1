package core_test

import (
	"context"
	"strings"
	"testing"

	"custos"
)

// TestAuthenticate: a key custos issued names its principal, from the
// cache after the first time, without building the refusal that every
// other answer is spared (S4: access by role starts with who asks;
// DESIGN.md: API keys stored hashed). An empty, overlong or unknown key
// is refused with EUNAUTHORIZED and the same words, so a caller learns
// nothing of which it was.
func TestAuthenticate(t *testing.T) {
	e := newEnv(t)
	p := &custos.Principal{Name: "app", Kind: custos.KindService, Roles: []string{"app"}}
	if err := e.svc.CreatePrincipal(e.admin, p); err != nil {
		t.Fatal(err)
	}
	k, err := e.svc.CreateAPIKey(e.admin, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	who, err := e.svc.Authenticate(ctx, k.Token)
	if err != nil || who.ID != p.ID {
		t.Fatalf("issued key: %v, %v; want principal %s", who, err, p.ID)
	}
	for name, token := range map[string]string{
		"empty":    "",
		"overlong": strings.Repeat("k", 201),
		"unknown":  k.Token + "x",
	} {
		who, err := e.svc.Authenticate(ctx, token)
		if who != nil || custos.ErrorCode(err) != custos.EUNAUTHORIZED || custos.ErrorMessage(err) != "Invalid API key." {
			t.Errorf("%s key: %v, %v; want EUNAUTHORIZED, Invalid API key.", name, who, err)
		}
	}
	// A cached key costs its hash (the token's bytes and the sum) and the
	// principal's copy the caller may keep: before the refusal was built
	// only for a refusal, every request paid two more and a Sprintf.
	if n := testing.AllocsPerRun(100, func() {
		if _, err := e.svc.Authenticate(ctx, k.Token); err != nil {
			t.Fatal(err)
		}
	}); n > 3 {
		t.Errorf("a cached key: %.0f allocations, want at most 3", n)
	}
}
