package admin

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"github.com/feedmill/feedmill/processor/api"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Sessions.
const (
	// CookieName is the session cookie's name.
	CookieName = "feedmill_admin"
	// SessionTTL is how long a sign-in lasts.
	SessionTTL = 12 * time.Hour
	// sessionVersion starts a cookie value; a new format changes it.
	sessionVersion = "v1"
)

// errCrossOrigin refuses a form posted from another origin.
var errCrossOrigin = errors.New("cross-origin request refused: the admin page accepts forms from its own pages only")

// guard lets a request through to next when it may see the pages: no
// token configured, a valid session cookie or a valid bearer token. A
// POST from another origin is refused (403) first. Others get the
// sign-in form (401).
func (p *Page) guard(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w)
		if err := p.sameOrigin(r); err != nil {
			p.fail(w, r, http.StatusForbidden, "Refused", err.Error())
			return
		}
		if !p.allowed(r) {
			nextURL := "/"
			if r.Method == http.MethodGet {
				nextURL = r.URL.RequestURI()
			}
			p.renderSignIn(w, r, http.StatusUnauthorized, nextURL, "")
			return
		}
		next(w, r)
	}
}

// sameOrigin refuses a non-safe request a browser sent from another
// origin: net/http's CrossOriginProtection (Sec-Fetch-Site, else Origin
// against Host), and the Referer's host when a request has neither
// header.
func (p *Page) sameOrigin(r *http.Request) error {
	if err := p.cop.Check(r); err != nil {
		return errCrossOrigin
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	if r.Header.Get("Sec-Fetch-Site") != "" || r.Header.Get("Origin") != "" {
		return nil // checked above
	}
	if ref := r.Header.Get("Referer"); ref != "" {
		u, err := url.Parse(ref)
		if err != nil || u.Host != r.Host {
			return errCrossOrigin
		}
	}
	return nil
}

// allowed reports whether r may see the pages.
func (p *Page) allowed(r *http.Request) bool {
	if p.Token == "" {
		return true
	}
	if got, ok := api.BearerToken(r.Header.Get("Authorization")); ok {
		return subtle.ConstantTimeCompare([]byte(got), []byte(p.Token)) == 1
	}
	return p.sessionValid(r)
}

// sessionValue is a session cookie's value for a sign-in at issued:
// "v1.<unix seconds>.<hex HMAC-SHA256 keyed by the token>". It proves
// the token was known without holding it: the cookie is no bearer token
// for /api/*, and a new token ends every session.
func (p *Page) sessionValue(issued time.Time) string {
	ts := strconv.FormatInt(issued.Unix(), 10)
	return sessionVersion + "." + ts + "." + hex.EncodeToString(p.sessionMAC(ts))
}

func (p *Page) sessionMAC(ts string) []byte {
	m := hmac.New(sha256.New, []byte(p.Token))
	m.Write([]byte("feedmill admin session " + sessionVersion + " " + ts))
	return m.Sum(nil)
}

// sessionValid reports whether r carries a session cookie of this token
// issued less than SessionTTL ago.
func (p *Page) sessionValid(r *http.Request) bool {
	if p.Token == "" {
		return false
	}
	c, err := r.Cookie(CookieName)
	if err != nil {
		return false
	}
	version, rest, ok := strings.Cut(c.Value, ".")
	if !ok || version != sessionVersion {
		return false
	}
	ts, mac, ok := strings.Cut(rest, ".")
	if !ok {
		return false
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return false
	}
	got, err := hex.DecodeString(mac)
	if err != nil || !hmac.Equal(got, p.sessionMAC(ts)) {
		return false
	}
	age := p.Now().Sub(time.Unix(sec, 0))
	return age > -time.Minute && age < SessionTTL
}

// signInData is the sign-in page's data.
type signInData struct {
	Next string
	// Open says no token is configured: the page needs no sign-in.
	Open bool
}

func (p *Page) renderSignIn(w http.ResponseWriter, r *http.Request, status int, next, msg string) {
	p.render(w, r, status, "signin", view{Title: "Sign in", Error: msg, Data: signInData{Next: safeNext(next), Open: p.Token == ""}})
}

// signInForm is GET /admin/sign-in.
func (p *Page) signInForm(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	next := safeNext(r.URL.Query().Get("next"))
	if p.allowed(r) {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	p.renderSignIn(w, r, http.StatusOK, next, "")
}

// signIn is POST /admin/sign-in: the form's token, checked in constant
// time, buys a session cookie and a redirect to the page asked for.
func (p *Page) signIn(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	if err := p.sameOrigin(r); err != nil {
		p.fail(w, r, http.StatusForbidden, "Refused", err.Error())
		return
	}
	if err := r.ParseForm(); err != nil {
		p.renderSignIn(w, r, http.StatusBadRequest, "/", "The form could not be read: "+err.Error())
		return
	}
	next := safeNext(r.PostForm.Get("next"))
	if p.Token == "" {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	token := strings.TrimSpace(r.PostForm.Get("token"))
	if subtle.ConstantTimeCompare([]byte(token), []byte(p.Token)) != 1 {
		p.renderSignIn(w, r, http.StatusUnauthorized, next, "Wrong token: sign in with the http.admin_token of this instance's config.")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     CookieName,
		Value:    p.sessionValue(p.Now()),
		Path:     "/",
		MaxAge:   int(SessionTTL / time.Second),
		HttpOnly: true,
		SameSite: http.SameSiteStrictMode,
		Secure:   secureRequest(r),
	})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// signOut is POST /admin/sign-out: the cookie is cleared.
func (p *Page) signOut(w http.ResponseWriter, r *http.Request) {
	securityHeaders(w)
	if err := p.sameOrigin(r); err != nil {
		p.fail(w, r, http.StatusForbidden, "Refused", err.Error())
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: secureRequest(r)})
	http.Redirect(w, r, "/admin/sign-in", http.StatusSeeOther)
}

// secureRequest reports whether the browser reached us over TLS: the
// cookie is then marked Secure. X-Forwarded-Proto is only believed to
// add the flag, which can never weaken the cookie.
func secureRequest(r *http.Request) bool {
	return r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
}

// safeNext returns next when it is a path of this site ("/..."), else
// "/": a sign-in link cannot send the browser elsewhere.
func safeNext(next string) string {
	if next == "" || next[0] != '/' || strings.HasPrefix(next, "//") || strings.ContainsAny(next, "\\\r\n") {
		return "/"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return "/"
	}
	return next
}
