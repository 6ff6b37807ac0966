package ktls_test

import (
	"context"
	"crypto/tls"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/ktls-go/ktls"
)

// A Dialer as the TLS dialer of another package: here net/http's
// Transport, which then speaks HTTP/1.1 only and leaves Response.TLS nil
// (ktlshttp.Transport does both HTTP/2 and Response.TLS).
func ExampleDialer() {
	d := &ktls.Dialer{
		NetDialer: &net.Dialer{Timeout: 10 * time.Second},
		Config:    &ktls.Config{TLS: &tls.Config{}},
	}
	tr := &http.Transport{DialTLSContext: d.DialContext}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "https://127.0.0.1:8443/", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
}
