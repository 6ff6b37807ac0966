package ktls

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"testing"
)

// newConnResponse is the response of the new-connection benchmarks: what
// ktls bench's servers-newconn scenario fetches, a 4 KiB body.
var newConnResponse = bytes.Repeat([]byte{'x'}, 4096)

// serveOneConn runs the server side of one short connection on ss, as an
// HTTP/1.1 server does for a client that makes one request per connection:
// the handshake (ktls: and the hand-off), the request read, one 4 KiB
// response, and Close (close_notify). server is "crypto-tls" (with
// cfg.TLS), "ktls" (ktls with cfg's policy) or "ktls+Mode", which also asks
// for the connection's Mode after the handshake, as ktls serve's access log
// does.
func serveOneConn(ss net.Conn, server string, cfg *Config) error {
	var c net.Conn
	if server == "crypto-tls" {
		c = tls.Server(ss, cfg.TLS)
	} else {
		kc := Server(ss, cfg)
		if server == "ktls+Mode" {
			if err := kc.Handshake(); err != nil {
				return err
			}
			kc.Mode()
		}
		c = kc
	}
	req := make([]byte, 64)
	_, err := c.Read(req)
	if err == nil {
		_, err = c.Write(newConnResponse)
	}
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	return err
}

// fetchOneConn is the client side (crypto/tls): handshake, a request, the
// response to its end.
func fetchOneConn(cc net.Conn, cfg *tls.Config) error {
	client := tls.Client(cc, cfg)
	defer client.Close()
	if _, err := client.Write([]byte("GET /4k HTTP/1.1\r\nHost: localhost\r\n\r\n")); err != nil {
		return err
	}
	n, err := io.Copy(io.Discard, client)
	if err == nil && n != int64(len(newConnResponse)) {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// benchServerConn measures one server-side connection per iteration
// (serveOneConn) against a crypto/tls client; the client's allocations are
// the same for both servers, so the difference of allocs/op between
// BenchmarkServerConn's crypto/tls and ktls runs is the server's.
func benchServerConn(b *testing.B, server string, version uint16) {
	cfg := &Config{TLS: serverTLS(), TX: OffloadAuto, RX: OffloadAuto}
	cfg.TLS.MaxVersion = version
	cli := clientTLS()
	cli.MaxVersion = version
	errc := make(chan error, 1)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		cc, ss := tcpPair(b)
		b.StartTimer()
		go func() { errc <- serveOneConn(ss, server, cfg) }()
		if err := fetchOneConn(cc, cli); err != nil {
			b.Fatal(err)
		}
		if err := <-errc; err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkServerConn is a new connection per iteration with one 4 KiB
// response: crypto/tls or ktls (automatic policy: the kernel where it has
// TLS, else user space; with or without a Mode call) on the server,
// crypto/tls on the client.
func BenchmarkServerConn(b *testing.B) {
	for _, v := range []struct {
		name    string
		version uint16
	}{{"tls12", tls.VersionTLS12}, {"tls13", tls.VersionTLS13}} {
		for _, server := range []string{"crypto-tls", "ktls", "ktls+Mode"} {
			b.Run(server+"/"+v.name, func(b *testing.B) { benchServerConn(b, server, v.version) })
		}
	}
}
