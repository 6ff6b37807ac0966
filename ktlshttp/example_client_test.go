package ktlshttp_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/ktls-go/ktls"
	"github.com/ktls-go/ktls/ktlshttp"
)

// An HTTP client whose connections are ktls connections: HTTP/2 or
// HTTP/1.1 as the server chooses, and the modes of the connection a
// response came on.
func ExampleTransport() {
	client := &http.Client{Transport: &ktlshttp.Transport{
		Dialer: &ktls.Dialer{
			NetDialer: &net.Dialer{Timeout: 10 * time.Second},
			Config:    &ktls.Config{TLS: &tls.Config{}, RX: ktls.OffloadAuto},
		},
	}}
	resp, err := client.Get("https://127.0.0.1:8443/")
	if err != nil {
		log.Fatal(err)
	}
	defer resp.Body.Close()
	n, _ := io.Copy(io.Discard, resp.Body)
	tx, rx := ktlshttp.ResponseConn(resp).Mode()
	fmt.Println(resp.Proto, tls.VersionName(resp.TLS.Version), n, "bytes, tx", tx, "rx", rx)
}
