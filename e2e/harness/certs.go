package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// CertFiles are the files leasefence-certs wrote for the webhook.
type CertFiles struct {
	Dir     string
	CACert  string // ca.crt: the bundle the API server trusts
	TLSCert string // tls.crt: serving certificate, IP SAN 127.0.0.1
	TLSKey  string // tls.key
	CAPEM   []byte // contents of CACert, for the webhook's caBundle
}

// Certs runs `leasefence-certs all` into dir (created if needed) for the
// Service leasefence-webhook in namespace leasefence, with an IP SAN for
// 127.0.0.1 since the API server calls the webhook by URL on loopback.
func Certs(dir string) (*CertFiles, error) {
	bin, err := Binary("certs/leasefence-certs")
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	out, err := exec.Command(bin, "all", "--dir", dir, "--service", "leasefence-webhook",
		"--namespace", "leasefence", "--ip", "127.0.0.1").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("leasefence-certs all: %v: %s", err, out)
	}
	c := &CertFiles{
		Dir:     dir,
		CACert:  filepath.Join(dir, "ca.crt"),
		TLSCert: filepath.Join(dir, "tls.crt"),
		TLSKey:  filepath.Join(dir, "tls.key"),
	}
	if c.CAPEM, err = os.ReadFile(c.CACert); err != nil {
		return nil, fmt.Errorf("leasefence-certs wrote no CA: %w", err)
	}
	return c, nil
}
