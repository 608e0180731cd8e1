// Package portal is custos's self-service privacy portal: server-rendered
// pages in zh-CN and English, usable on a phone, with no JavaScript. A
// customer signs in with a one-time code sent to the mobile or e-mail on
// file, sees what is held (masked as the catalog says), downloads a copy,
// corrects a field, gives or withdraws consent per purpose, asks for
// deletion or account closure, and follows each request (R1–R7).
//
// Sessions are stateless so that any node can serve them: a cookie holding
// the subject id and an expiry, authenticated with an HMAC key derived from
// the master keys. Forms are protected by SameSite=Strict cookies and an
// Origin check; pages carry a strict Content-Security-Policy.
package portal

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"errors"
	"html/template"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"custos"
	"custos/core"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static/style.css
var styleCSS []byte

// SessionTTL is how long a signed-in session lasts.
const SessionTTL = 30 * time.Minute

const cookieName = "custos_portal"

// Portal serves the pages under /portal/.
type Portal struct {
	svc    *core.Service
	logger *slog.Logger
	tmpl   *template.Template
	mux    *http.ServeMux
	signIn limiter
}

// New returns the portal for svc.
func New(svc *core.Service, logger *slog.Logger) *Portal {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	p := &Portal{svc: svc, logger: logger, mux: http.NewServeMux()}
	p.tmpl = template.Must(template.New("").Funcs(template.FuncMap{
		"t": func(lang, key string) string { return tr(lang, key) },
		// field, purpose and category show catalog names in the page's
		// language: the catalog's labels, or the portal's own words.
		"field": func(lang, name string) string {
			if f := svc.Catalog().Field(name); f != nil {
				if lang == "en" && f.LabelEN != "" {
					return f.LabelEN
				} else if lang != "en" && f.Label != "" {
					return f.Label
				}
			}
			return name
		},
		"purpose":  func(lang, name string) string { return trOr(lang, "purpose."+name, name) },
		"category": func(lang, name string) string { return trOr(lang, "category."+name, name) },
		"record":   func(lang, name string) string { return trOr(lang, "record."+name, name) },
		"date":     func(t time.Time) string { return t.In(shanghai).Format("2006-01-02 15:04") },
		"day":      func(t time.Time) string { return t.In(shanghai).Format("2006-01-02") },
		// A deadline is the instant the last allowed day ends: show that day.
		"lastday": func(t time.Time) string { return t.Add(-time.Second).In(shanghai).Format("2006-01-02") },
	}).ParseFS(templateFS, "templates/*.html"))
	p.mux.HandleFunc("GET /portal/{$}", p.signInPage)
	p.mux.HandleFunc("GET /portal/style.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		_, _ = w.Write(styleCSS)
	})
	p.mux.HandleFunc("POST /portal/signin", p.limited(p.signInPost))
	p.mux.HandleFunc("POST /portal/code", p.limited(p.code))
	p.mux.HandleFunc("POST /portal/signout", p.signOut)
	p.mux.HandleFunc("GET /portal/home", p.auth(p.home))
	p.mux.HandleFunc("GET /portal/notice", p.notice)
	p.mux.HandleFunc("POST /portal/consent", p.auth(p.consent))
	p.mux.HandleFunc("POST /portal/requests", p.auth(p.file))
	p.mux.HandleFunc("GET /portal/requests/{id}", p.auth(p.request))
	p.mux.HandleFunc("GET /portal/requests/{id}/export", p.auth(p.export))
	return p
}

var shanghai = func() *time.Location {
	if l, err := time.LoadLocation("Asia/Shanghai"); err == nil {
		return l
	}
	return time.FixedZone("CST", 8*3600)
}()

// ServeHTTP adds the portal's security headers and routes.
func (p *Portal) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	if r.Method == http.MethodPost && !sameOrigin(r) {
		http.Error(w, "cross-origin form refused", http.StatusForbidden)
		return
	}
	p.mux.ServeHTTP(w, r)
}

// sameOrigin accepts a POST whose Origin (or Referer) is this host, or that
// names none (older browsers; the SameSite=Strict cookie still guards it).
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" || o == "null" {
		o = r.Header.Get("Referer")
	}
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// lang picks zh-CN or en: the lang query or cookie, then Accept-Language.
func lang(r *http.Request) string {
	if l := r.URL.Query().Get("lang"); l == "en" || l == "zh-CN" {
		return l
	}
	if c, err := r.Cookie("custos_lang"); err == nil && (c.Value == "en" || c.Value == "zh-CN") {
		return c.Value
	}
	if al := r.Header.Get("Accept-Language"); al != "" && !strings.HasPrefix(strings.ToLower(al), "zh") {
		return "en"
	}
	return "zh-CN"
}

type page struct {
	Lang    string
	Title   string
	Error   string
	Info    string
	Signed  bool
	Data    any
	Other   string // the other language
	Path    string
	Channel string
}

func (p *Portal) render(w http.ResponseWriter, r *http.Request, status int, name string, pg page) {
	pg.Lang = lang(r)
	pg.Other = "en"
	if pg.Lang == "en" {
		pg.Other = "zh-CN"
	}
	pg.Path = r.URL.Path
	http.SetCookie(w, &http.Cookie{Name: "custos_lang", Value: pg.Lang, Path: "/portal/", HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := p.tmpl.ExecuteTemplate(w, name, pg); err != nil {
		p.logger.Error("portal template", "page", name, "err", err)
	}
}

// problem renders an error page naming the rule, never a value.
func (p *Portal) problem(w http.ResponseWriter, r *http.Request, err error) {
	status := http.StatusUnprocessableEntity
	switch custos.ErrorCode(err) {
	case custos.EUNAUTHORIZED:
		http.Redirect(w, r, "/portal/", http.StatusSeeOther)
		return
	case custos.EFORBIDDEN:
		status = http.StatusForbidden
	case custos.ENOTFOUND:
		status = http.StatusNotFound
	case custos.ERATELIMIT:
		status = http.StatusTooManyRequests
	case custos.EINTERNAL, custos.ESEALED, custos.EUNAVAILABLE:
		status = http.StatusServiceUnavailable
		p.logger.Error("portal request failed", "code", custos.ErrorCode(err), "err", err)
	}
	msg := tr(lang(r), "error."+custos.ErrorCode(err))
	if e := custos.AsError(err); e != nil && len(e.Violations) > 0 {
		var parts []string
		for _, v := range e.Violations {
			parts = append(parts, v.Field+": "+v.Rule)
		}
		msg += " (" + strings.Join(parts, "; ") + ")"
	}
	p.render(w, r, status, "message.html", page{Title: tr(lang(r), "error"), Error: msg, Signed: p.session(r) != ""})
}

// --- sessions ---

func (p *Portal) key() ([]byte, error) { return p.svc.Keyring().DeriveKey("portal-session") }

func (p *Portal) sign(payload string) (string, error) {
	k, err := p.key()
	if err != nil {
		return "", err
	}
	m := hmac.New(sha256.New, k)
	m.Write([]byte(payload))
	return payload + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil)), nil
}

func (p *Portal) verify(v string) (string, bool) {
	i := strings.LastIndexByte(v, '.')
	if i < 0 {
		return "", false
	}
	want, err := p.sign(v[:i])
	if err != nil || !hmac.Equal([]byte(want), []byte(v)) {
		return "", false
	}
	return v[:i], true
}

// session returns the signed-in subject, or "".
func (p *Portal) session(r *http.Request) custos.SubjectID {
	c, err := r.Cookie(cookieName)
	if err != nil {
		return ""
	}
	payload, ok := p.verify(c.Value)
	if !ok {
		return ""
	}
	sub, exp, ok := strings.Cut(payload, "|")
	if !ok {
		return ""
	}
	n, err := strconv.ParseInt(exp, 10, 64)
	if err != nil || time.Now().Unix() > n || !custos.ValidID("sub", sub) {
		return ""
	}
	return custos.SubjectID(sub)
}

func (p *Portal) auth(h func(http.ResponseWriter, *http.Request, context.Context)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sub := p.session(r)
		if sub == "" {
			http.Redirect(w, r, "/portal/?lang="+lang(r), http.StatusSeeOther)
			return
		}
		h(w, r, core.WithSelf(r.Context(), sub))
	}
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// --- pages ---

func (p *Portal) signInPage(w http.ResponseWriter, r *http.Request) {
	if p.session(r) != "" {
		http.Redirect(w, r, "/portal/home", http.StatusSeeOther)
		return
	}
	p.render(w, r, http.StatusOK, "signin.html", page{Title: tr(lang(r), "signin.title")})
}

// signIn sends a code when the mobile or e-mail belongs to a customer, and
// answers the same way when it does not, so that the portal does not tell
// who is a customer.
// limited refuses a client that has made SignInLimit sign-in or code
// attempts within SignInWindow.
func (p *Portal) limited(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !p.signIn.allow(clientIP(r), time.Now()) {
			w.Header().Set("Retry-After", strconv.Itoa(int(SignInWindow.Seconds())))
			p.render(w, r, http.StatusTooManyRequests, "signin.html", page{Title: tr(lang(r), "signin.title"), Error: tr(lang(r), "error.rate_limited")})
			return
		}
		h(w, r)
	}
}

func (p *Portal) signInPost(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimSpace(r.PostFormValue("id"))
	field, channel := "mobile", "sms"
	if strings.Contains(id, "@") {
		field, channel = "email", "email"
	}
	sub, err := p.svc.SignInSubject(r.Context(), field, id)
	if err != nil {
		p.render(w, r, http.StatusUnprocessableEntity, "signin.html", page{Title: tr(lang(r), "signin.title"), Error: tr(lang(r), "signin.invalid")})
		return
	}
	challenge := ""
	if sub != "" {
		challenge, err = p.svc.SendCode(r.Context(), sub, "portal.signin", channel, clientIP(r))
		if err != nil && custos.ErrorCode(err) != custos.EINVALID {
			p.problem(w, r, err)
			return
		}
	}
	if challenge == "" {
		challenge = custos.NewID("otp") // a decoy: no code matches it
	}
	p.render(w, r, http.StatusOK, "code.html", page{Title: tr(lang(r), "code.title"), Data: challenge, Channel: channel})
}

func (p *Portal) code(w http.ResponseWriter, r *http.Request) {
	challenge, code := r.PostFormValue("challenge"), strings.TrimSpace(r.PostFormValue("code"))
	sub, purpose, err := p.svc.VerifyCode(r.Context(), challenge, code)
	if err != nil || purpose != "portal.signin" {
		if err == nil || custos.ErrorCode(err) == custos.EFORBIDDEN || custos.ErrorCode(err) == custos.ENOTFOUND {
			p.render(w, r, http.StatusForbidden, "code.html", page{Title: tr(lang(r), "code.title"), Data: challenge, Error: tr(lang(r), "code.wrong")})
			return
		}
		p.problem(w, r, err)
		return
	}
	v, err := p.sign(string(sub) + "|" + strconv.FormatInt(time.Now().Add(SessionTTL).Unix(), 10))
	if err != nil {
		p.problem(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: v, Path: "/portal/", MaxAge: int(SessionTTL.Seconds()),
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/portal/home", http.StatusSeeOther)
}

func (p *Portal) signOut(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/portal/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/portal/", http.StatusSeeOther)
}

func (p *Portal) home(w http.ResponseWriter, r *http.Request, ctx context.Context) {
	v, err := p.svc.SelfView(ctx)
	if err != nil {
		p.problem(w, r, err)
		return
	}
	info := ""
	if m := r.URL.Query().Get("done"); m != "" {
		info = tr(lang(r), "done."+m)
	}
	p.render(w, r, http.StatusOK, "home.html", page{Title: tr(lang(r), "home.title"), Signed: true, Data: v, Info: info})
}

func (p *Portal) notice(w http.ResponseWriter, r *http.Request) {
	n, err := p.svc.Notice(r.Context(), 0)
	if err != nil {
		p.problem(w, r, err)
		return
	}
	p.render(w, r, http.StatusOK, "notice.html", page{Title: tr(lang(r), "notice.title"), Data: n, Signed: p.session(r) != ""})
}

func (p *Portal) consent(w http.ResponseWriter, r *http.Request, ctx context.Context) {
	if err := r.ParseForm(); err != nil {
		p.problem(w, r, custos.Invalid("Bad form.", custos.Violation{Field: "form", Rule: "parse"}))
		return
	}
	purpose := r.PostFormValue("purpose")
	grant := r.PostFormValue("action") == "grant"
	cats := map[string]bool{}
	for _, c := range r.PostForm["presented"] {
		cats[c] = r.PostFormValue("category_"+c) == "yes"
	}
	if err := p.svc.SelfConsent(ctx, purpose, grant, cats); err != nil {
		p.problem(w, r, err)
		return
	}
	done := "withdrawn"
	if grant {
		done = "granted"
	}
	http.Redirect(w, r, "/portal/home?done="+done, http.StatusSeeOther)
}

func (p *Portal) file(w http.ResponseWriter, r *http.Request, ctx context.Context) {
	in := custos.NewRightsRequest{Type: r.PostFormValue("type"), Channel: "portal", Note: r.PostFormValue("note")}
	switch in.Type {
	case custos.RightsCorrect, custos.RightsSupplement:
		in.Values = map[string]string{r.PostFormValue("field"): r.PostFormValue("value")}
	case custos.RightsDelete, custos.RightsClose:
		if r.PostFormValue("confirm") != "yes" {
			p.problem(w, r, custos.Invalid("Please confirm.", custos.Violation{Field: "confirm", Rule: "required"}))
			return
		}
	}
	q, err := p.svc.FileRightsRequest(ctx, in)
	if err != nil {
		p.problem(w, r, err)
		return
	}
	http.Redirect(w, r, "/portal/requests/"+q.ID, http.StatusSeeOther)
}

// requestPage is a request and, for access requests, its report.
type requestPage struct {
	Q      *custos.RightsRequest
	Report *custos.AccessReport
}

func (p *Portal) request(w http.ResponseWriter, r *http.Request, ctx context.Context) {
	q, err := p.svc.RightsRequest(ctx, r.PathValue("id"))
	if err != nil {
		p.problem(w, r, err)
		return
	}
	rp := requestPage{Q: q}
	if q.Type == custos.RightsAccess && q.Status == custos.RightsCompleted {
		rep, err := p.svc.AccessReport(ctx, q.ID)
		if err != nil && !errors.Is(err, context.Canceled) && custos.ErrorCode(err) != custos.ENOTFOUND {
			p.problem(w, r, err)
			return
		}
		rp.Report = rep
	}
	p.render(w, r, http.StatusOK, "request.html", page{Title: tr(lang(r), "request.title"), Signed: Self(ctx), Data: rp})
}

// Self reports whether ctx is a signed-in session (for templates).
func Self(ctx context.Context) bool { return core.Self(ctx) != "" }

func (p *Portal) export(w http.ResponseWriter, r *http.Request, ctx context.Context) {
	b, err := p.svc.Export(ctx, r.PathValue("id"))
	if err != nil {
		p.problem(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", `attachment; filename="my-data-`+r.PathValue("id")+`.zip"`)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
}
