package ktls_test

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"os"

	"github.com/ktls-go/ktls"
)

// A file server that sends each connection a file: with the sending
// direction in the kernel, ReadFrom (used by io.Copy) turns into sendfile(2).
func ExampleListen() {
	cert, err := tls.LoadX509KeyPair("cert.pem", "key.pem")
	if err != nil {
		log.Fatal(err)
	}
	ln, err := ktls.Listen("tcp", "127.0.0.1:8443", &ktls.Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}}})
	if err != nil {
		log.Fatal(err)
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			defer c.Close()
			kc := c.(*ktls.Conn)
			if err := kc.Handshake(); err != nil {
				return
			}
			tx, rx := kc.Mode()
			log.Printf("%v: TX %v, RX %v", c.RemoteAddr(), tx, rx)
			f, err := os.Open("index.html")
			if err != nil {
				return
			}
			defer f.Close()
			io.Copy(kc, f)
		}()
	}
}

// A client that requires the kernel for both directions.
func ExampleDial() {
	c, err := ktls.Dial("tcp", "127.0.0.1:8443", &ktls.Config{
		TLS: &tls.Config{ServerName: "localhost"},
		TX:  ktls.OffloadKernel,
		RX:  ktls.OffloadKernel,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	n, err := io.Copy(io.Discard, c) // WriteTo: splice(2) where it can
	fmt.Println(n, err)
}
