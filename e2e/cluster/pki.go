package cluster

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki holds the key material generated for one control plane. Everything is
// made fresh at each start so no secret ever lives in the repository.
type pki struct {
	dir           string
	ca            *keyPair
	caCertPEM     []byte
	adminCertPEM  []byte
	adminKeyPEM   []byte
	caFile        string
	caKeyFile     string // written by writeCAKey, for kube-controller-manager's signer
	servingCert   string
	servingKey    string
	saPublicFile  string
	saPrivateFile string
}

type keyPair struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

// newPKI writes a CA, a serving certificate for 127.0.0.1, an admin client
// certificate in group system:masters, and a service-account signing key pair
// into dir.
func newPKI(dir string) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ca, err := issue(nil, &x509.Certificate{
		Subject:               pkix.Name{CommonName: "leasefence-e2e-ca"},
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	})
	if err != nil {
		return nil, err
	}
	serving, err := issue(ca, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:    []string{"localhost"},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err != nil {
		return nil, err
	}
	// O=system:masters is what makes this identity a cluster admin, bypassing RBAC.
	admin, err := issue(ca, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "leasefence-e2e-admin", Organization: []string{"system:masters"}},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}

	p := &pki{
		dir:           dir,
		ca:            ca,
		caCertPEM:     certPEM(ca.cert),
		adminCertPEM:  certPEM(admin.cert),
		caFile:        filepath.Join(dir, "ca.crt"),
		servingCert:   filepath.Join(dir, "apiserver.crt"),
		servingKey:    filepath.Join(dir, "apiserver.key"),
		saPublicFile:  filepath.Join(dir, "sa.pub"),
		saPrivateFile: filepath.Join(dir, "sa.key"),
	}
	if p.adminKeyPEM, err = keyPEM(admin.key); err != nil {
		return nil, err
	}
	servingKeyPEM, err := keyPEM(serving.key)
	if err != nil {
		return nil, err
	}
	saKeyPEM, err := keyPEM(saKey)
	if err != nil {
		return nil, err
	}
	saPubDER, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{
		p.caFile:        p.caCertPEM,
		p.servingCert:   certPEM(serving.cert),
		p.servingKey:    servingKeyPEM,
		p.saPrivateFile: saKeyPEM,
		p.saPublicFile:  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPubDER}),
	}
	for path, data := range files {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// clientCert issues a client certificate for user cn in groups orgs, signed
// by the CA, and returns it and its key in PEM.
func (p *pki) clientCert(cn string, orgs ...string) (cert, key []byte, err error) {
	kp, err := issue(p.ca, &x509.Certificate{
		Subject:     pkix.Name{CommonName: cn, Organization: orgs},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, nil, err
	}
	if key, err = keyPEM(kp.key); err != nil {
		return nil, nil, err
	}
	return certPEM(kp.cert), key, nil
}

// writeCAKey writes the CA's private key, which kube-controller-manager's
// certificate signer needs (--cluster-signing-key-file); only the fuller
// cluster writes it.
func (p *pki) writeCAKey() error {
	data, err := keyPEM(p.ca.key)
	if err != nil {
		return err
	}
	p.caKeyFile = filepath.Join(p.dir, "ca.key")
	return os.WriteFile(p.caKeyFile, data, 0o600)
}

// issue creates a key and a certificate from tmpl, signed by parent, or
// self-signed when parent is nil.
func issue(parent *keyPair, tmpl *x509.Certificate) (*keyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	// Backdate a little so a slightly skewed clock does not reject a fresh cert.
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(7 * 24 * time.Hour)
	signerCert, signerKey := tmpl, crypto.Signer(key)
	if parent != nil {
		signerCert, signerKey = parent.cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, key.Public(), signerKey)
	if err != nil {
		return nil, fmt.Errorf("issue certificate %q: %w", tmpl.Subject.CommonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &keyPair{cert: cert, key: key}, nil
}

func certPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func keyPEM(k *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
