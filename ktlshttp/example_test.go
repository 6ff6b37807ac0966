package ktlshttp_test

import (
	"context"
	"crypto/tls"
	"errors"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/ktls-go/ktls"
	"github.com/ktls-go/ktls/ktlshttp"
)

// A file server over kernel TLS, HTTP/1.1 (with sendfile where the kernel
// has TLS) and HTTP/2, stopped gracefully on Ctrl-C.
func Example() {
	cert, err := tls.LoadX509KeyPair("cert.pem", "key.pem")
	if err != nil {
		log.Fatal(err)
	}
	root, err := os.OpenRoot("/srv/www")
	if err != nil {
		log.Fatal(err)
	}
	srv := &ktlshttp.Server{
		Server: http.Server{
			Addr:              ":8443",
			Handler:           http.FileServer(ktlshttp.RootFS(root)),
			ReadHeaderTimeout: 10 * time.Second,
		},
		Config: &ktls.Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}},
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	if err := srv.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		log.Fatal(err)
	}
}

// Serving an existing handler on a listener, with the transmit direction
// required in the kernel and the receive direction in user space.
func ExampleServe() {
	cert, err := tls.LoadX509KeyPair("cert.pem", "key.pem")
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:8443")
	if err != nil {
		log.Fatal(err)
	}
	cfg := &ktls.Config{
		TLS: &tls.Config{Certificates: []tls.Certificate{cert}},
		TX:  ktls.OffloadKernel,
		RX:  ktls.OffloadUser,
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, _ := r.Context().Value(ktlshttp.ConnContextKey).(*ktls.Conn)
		if c != nil {
			tx, rx := c.Mode()
			log.Printf("%s %s over %s: tx=%v rx=%v", r.Proto, r.URL.Path, r.TLS.NegotiatedProtocol, tx, rx)
		}
		w.Write([]byte("hello\n"))
	})
	log.Fatal(ktlshttp.Serve(ln, h, cfg))
}
