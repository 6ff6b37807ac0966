package record_test

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"log"

	"github.com/ktls-go/ktls/record"
)

// This example derives a TLS 1.3 session from a traffic secret (here the
// client's application traffic secret of RFC 8448's simple 1-RTT handshake,
// as a KeyLogWriter would log it), seals a record with it and opens it again.
func Example() {
	secret := []byte{
		0x9e, 0x40, 0x64, 0x6c, 0xe7, 0x9a, 0x7f, 0x9d, 0xc0, 0x5a, 0xf8, 0x88, 0x9b, 0xce, 0x65, 0x52,
		0x87, 0x5a, 0xfa, 0x0b, 0x06, 0xdf, 0x00, 0x87, 0xf7, 0x92, 0xeb, 0xb7, 0xc1, 0x75, 0x04, 0xa5,
	}
	tx, err := record.TLS13Session(tls.TLS_AES_128_GCM_SHA256, secret)
	if err != nil {
		log.Fatal(err)
	}
	rx := *tx // the peer's view of the same direction (shares Key and IV)
	fmt.Println(tx)

	sealer, err := record.NewSealer(tx)
	if err != nil {
		log.Fatal(err)
	}
	var buf bytes.Buffer
	w := record.NewWriter(&buf, sealer)
	if _, err := w.Write([]byte("hello, kernel TLS")); err != nil {
		log.Fatal(err)
	}

	opener, err := record.NewOpener(&rx)
	if err != nil {
		log.Fatal(err)
	}
	tx.Wipe() // the Sealer and the Opener keep their own copies of the keys
	r := record.NewReader(&buf, opener)
	typ, payload, err := r.ReadRecord()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%v %q, next seq %d\n", typ, payload, opener.Seq())

	_, _, err = r.ReadRecord()
	fmt.Println(err)
	// Output:
	// TLS 1.3 TLS_AES_128_GCM_SHA256 seq=0
	// application_data "hello, kernel TLS", next seq 1
	// EOF
}
