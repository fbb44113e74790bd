// Package tlsfiles serves TLS from PEM files that may change while the
// server runs: cert-manager rotates a certificate in place (a Secret volume
// swaps its files), and the next handshake uses the new one, without a
// restart and without touching connections already open (their push
// streams go on).
//
// Files are looked at, at most once per CheckInterval, on a handshake; a
// change of any file's modification time or size reloads all of them. A
// rotation caught half-way (a key that does not match its certificate)
// keeps the last good set and is tried again on the next check.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// CheckInterval is how often, at most, the files are looked at.
const CheckInterval = time.Second

// Files names a server's certificate, key and, for mutual TLS, the CA
// bundle client certificates must chain to.
type Files struct {
	// Cert is the server certificate chain (PEM).
	Cert string
	// Key is the certificate's private key (PEM).
	Key string
	// ClientCA, when set, requires and verifies client certificates.
	ClientCA string
}

// Reloader keeps the TLS material of Files current.
type Reloader struct {
	files Files
	log   *slog.Logger
	now   func() time.Time

	mu        sync.Mutex
	checked   time.Time
	stamps    []stamp
	cert      *tls.Certificate
	clientCAs *x509.CertPool
}

type stamp struct {
	mod  time.Time
	size int64
}

// New loads files at once (an error names the file at fault) and returns a
// Reloader for them.
func New(files Files, log *slog.Logger) (*Reloader, error) {
	if log == nil {
		log = slog.Default()
	}
	r := &Reloader{files: files, log: log, now: time.Now}
	stamps, err := r.stat()
	if err != nil {
		return nil, err
	}
	if err := r.load(stamps); err != nil {
		return nil, err
	}
	r.checked = r.now()
	return r, nil
}

// Config returns a server tls.Config (TLS 1.2 at least) whose certificate
// and client CAs follow the files.
func (r *Reloader) Config() *tls.Config {
	base := &tls.Config{MinVersion: tls.VersionTLS12}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		cert, cas := r.current()
		c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*cert}}
		if cas != nil {
			c.ClientCAs = cas
			c.ClientAuth = tls.RequireAndVerifyClientCert
		}
		return c, nil
	}
	return base
}

// NotAfter returns when the certificate being served expires, reloading
// it first if a file changed (so that a metric scraped shows a renewal
// even before the next handshake).
func (r *Reloader) NotAfter() time.Time {
	cert, _ := r.current()
	return cert.Leaf.NotAfter
}

// current returns the material, reloading it first if a file changed.
func (r *Reloader) current() (*tls.Certificate, *x509.CertPool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.now(); now.Sub(r.checked) >= CheckInterval {
		r.checked = now
		r.reloadIfChanged()
	}
	return r.cert, r.clientCAs
}

// reloadIfChanged is called with r.mu held.
func (r *Reloader) reloadIfChanged() {
	stamps, err := r.stat()
	if err != nil {
		r.log.Warn("TLS files unreadable; serving the last good certificate", slog.Any("error", err))
		return
	}
	changed := len(stamps) != len(r.stamps)
	for i := range stamps {
		changed = changed || stamps[i] != r.stamps[i]
	}
	if !changed {
		return
	}
	if err := r.load(stamps); err != nil {
		r.log.Warn("TLS files changed but do not load; serving the last good certificate", slog.Any("error", err))
		return
	}
	r.log.Info("TLS certificate reloaded", slog.String("cert", r.files.Cert), slog.Time("notAfter", r.cert.Leaf.NotAfter))
}

// variables names each file by the variable that sets it, for errors.
func (r *Reloader) variables() [][2]string {
	v := [][2]string{{"TLS_CERT_FILE", r.files.Cert}, {"TLS_KEY_FILE", r.files.Key}}
	if r.files.ClientCA != "" {
		v = append(v, [2]string{"TLS_CLIENT_CA_FILE", r.files.ClientCA})
	}
	return v
}

func (r *Reloader) stat() ([]stamp, error) {
	var out []stamp
	for _, v := range r.variables() {
		fi, err := os.Stat(v[1])
		if err != nil {
			return nil, fmt.Errorf("%s: %w", v[0], err)
		}
		out = append(out, stamp{mod: fi.ModTime(), size: fi.Size()})
	}
	return out, nil
}

// load reads every file; on success it replaces the material and stamps.
func (r *Reloader) load(stamps []stamp) error {
	cert, err := tls.LoadX509KeyPair(r.files.Cert, r.files.Key)
	if err != nil {
		return fmt.Errorf("TLS_CERT_FILE %s / TLS_KEY_FILE %s: %w", r.files.Cert, r.files.Key, err)
	}
	var cas *x509.CertPool
	if r.files.ClientCA != "" {
		if cas, err = CAPool("TLS_CLIENT_CA_FILE", r.files.ClientCA); err != nil {
			return err
		}
	}
	r.cert, r.clientCAs, r.stamps = &cert, cas, stamps
	return nil
}

var errNoPEM = errors.New("no PEM certificate found")

// CAPool reads the PEM CA bundle at path, which setting (a variable or a
// flag) names, into a certificate pool. Its errors name setting: a file
// that cannot be read, or one without a PEM certificate.
func CAPool(setting, path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", setting, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s %s: %w", setting, path, errNoPEM)
	}
	return pool, nil
}
