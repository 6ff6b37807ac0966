package bench

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"mime"
	"net"
	"net/http"
	"os"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ktls-go/ktls"
	"github.com/ktls-go/ktls/internal/fileserve"
	"github.com/ktls-go/ktls/ktlshttp"
)

// ChildEnv is the environment variable that makes a re-executed ktls
// binary run one side of a measurement (see RunChild) instead of its command
// line.
const ChildEnv = "KTLS_BENCH_CHILD"

// Child roles.
const (
	roleSend       = "send"        // listen, accept one receiver (and a TCP source), send
	roleRecv       = "recv"        // dial, read until EOF
	roleFeed       = "feed"        // dial, write plain bytes (the TCP source of a splice path)
	roleHSServer   = "hs-server"   // accept connections, handshake, write one byte, close
	roleHSClient   = "hs-client"   // dial, handshake, read one byte, close; repeat
	roleHTTPServer = "http-server" // serve a directory over HTTPS
	roleHTTPClient = "http-client" // GET a file repeatedly
	roleMemClient  = "mem-client"  // keep connections open through the memory scenario's states
)

// childSpec tells a child process what to do. It travels in ChildEnv as
// JSON.
type childSpec struct {
	Role        string        `json:"role"`
	Engine      string        `json:"engine,omitempty"`
	Method      string        `json:"method,omitempty"`
	Version     uint16        `json:"version,omitempty"`
	Suite       uint16        `json:"suite,omitempty"` // TLS 1.2 only
	Addr        string        `json:"addr,omitempty"`
	Size        int64         `json:"size,omitempty"`
	WriteSize   int           `json:"write_size,omitempty"`
	File        string        `json:"file,omitempty"`
	Dir         string        `json:"dir,omitempty"`
	URLPath     string        `json:"url_path,omitempty"`
	Concurrency int           `json:"concurrency,omitempty"`
	Duration    time.Duration `json:"duration,omitempty"`
	Profile     string        `json:"profile,omitempty"`  // write a CPU profile here
	HTTP2       bool          `json:"http2,omitempty"`    // http-client: HTTP/2 only (else HTTP/1.1 only)
	NewConn     bool          `json:"new_conn,omitempty"` // http-client: every request on a new connection

	configs *configs // set by RunChild
}

// configs are the TLS configurations of a child, made once.
type configs struct {
	once, konce sync.Once
	cfg         *tls.Config
	err         error
	kcfg        *ktls.Config
}

// childResult is what a child reports on its last line of output.
type childResult struct {
	Bytes    int64         `json:"bytes"`
	Ops      int64         `json:"ops"`
	Wall     time.Duration `json:"wall"`
	CPU      time.Duration `json:"cpu"`
	Syscalls int64         `json:"syscalls"` // -1: unknown
	Version  uint16        `json:"version"`
	Suite    uint16        `json:"suite"`
	TX       string        `json:"tx,omitempty"`
	RX       string        `json:"rx,omitempty"`
}

// RunChild runs one side of a measurement as described by spec, the value
// of ChildEnv, and returns the exit status. The parent reads "ready ADDR
// [SRCADDR]" and "result JSON" lines from stdout; servers stop when stdin
// ends.
func RunChild(spec string, stdin io.Reader, stdout, stderr io.Writer) int {
	s := childSpec{configs: &configs{}}
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		fmt.Fprintf(stderr, "ktls bench child: bad %s: %v\n", ChildEnv, err)
		return 2
	}
	if s.Profile != "" {
		f, err := os.Create(s.Profile)
		if err != nil {
			fmt.Fprintf(stderr, "ktls bench child: %v\n", err)
			return 1
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(stderr, "ktls bench child: %v\n", err)
			return 1
		}
		defer pprof.StopCPUProfile()
	}
	res, err := s.run(stdin, stdout)
	if err != nil {
		fmt.Fprintf(stderr, "ktls bench child %s %s %s: %v\n", s.Role, s.Engine, s.Method, err)
		return 1
	}
	b, _ := json.Marshal(res)
	fmt.Fprintf(stdout, "result %s\n", b)
	return 0
}

func (s *childSpec) run(stdin io.Reader, stdout io.Writer) (*childResult, error) {
	switch s.Role {
	case roleSend:
		return s.send(stdout)
	case roleRecv:
		return s.recv()
	case roleFeed:
		return s.feed()
	case roleHSServer:
		return s.hsServer(stdin, stdout)
	case roleHSClient:
		return s.hsClient()
	case roleHTTPServer:
		return s.httpServer(stdin, stdout)
	case roleHTTPClient:
		return s.httpClient(stdin, stdout)
	case roleMemClient:
		return s.memClient(stdin, stdout)
	}
	return nil, fmt.Errorf("unknown role %q", s.Role)
}

// meter measures the CPU time (user + system, all threads) and the system
// calls of this process over a window.
type meter struct {
	start    time.Time
	cpu      time.Duration
	syscalls int64
	sendfile bool
}

func startMeter(sendfile bool) *meter {
	return &meter{time.Now(), cpuTime(), countSyscalls(sendfile), sendfile}
}

func (m *meter) stop(r *childResult) *childResult {
	r.Wall = time.Since(m.start)
	r.CPU = cpuTime() - m.cpu
	r.Syscalls = -1
	if n := countSyscalls(m.sendfile); n >= 0 && m.syscalls >= 0 {
		r.Syscalls = n - m.syscalls
	}
	return r
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// tlsConfig returns the crypto/tls configuration of one end, made once
// per process (with a new self-signed certificate for a server).
func (s *childSpec) tlsConfig(server bool) (*tls.Config, error) {
	c := s.configs
	c.once.Do(func() { c.cfg, c.err = s.newTLSConfig(server) })
	return c.cfg, c.err
}

// ktlsConfig returns the ktls configuration of one end, made once per
// process: a Config may be shared by many connections.
func (s *childSpec) ktlsConfig(server bool) (*ktls.Config, error) {
	cfg, err := s.tlsConfig(server)
	if err != nil {
		return nil, err
	}
	c := s.configs
	c.konce.Do(func() { c.kcfg = &ktls.Config{TLS: cfg, TX: offload(s.Engine), RX: offload(s.Engine)} })
	return c.kcfg, nil
}

func (s *childSpec) newTLSConfig(server bool) (*tls.Config, error) {
	c := &tls.Config{MinVersion: s.Version, MaxVersion: s.Version}
	if s.Suite != 0 {
		c.CipherSuites = []uint16{s.Suite}
	}
	if !server {
		c.InsecureSkipVerify = true
		return c, nil
	}
	cert, err := selfSigned()
	if err != nil {
		return nil, err
	}
	c.Certificates = []tls.Certificate{cert}
	return c, nil
}

func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "ktls bench"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

// offload returns the ktls policy of an engine.
func offload(engine string) ktls.Offload {
	if engine == EngineKernel {
		return ktls.OffloadKernel
	}
	return ktls.OffloadUser
}

// tlsConn is what the TLS stacks have in common.
type tlsConn interface {
	net.Conn
	Handshake() error
	ConnectionState() tls.ConnectionState
}

// wrap runs the handshake of the engine on c and returns the connection
// to use (c itself for plain TCP). With mode set, the result holds the ktls
// connection's modes (a sock_diag query for a kernel engine).
func (s *childSpec) wrap(c net.Conn, server, mode bool) (net.Conn, *childResult, error) {
	res := &childResult{}
	if s.Engine == EngineTCP {
		return c, res, nil
	}
	var tc tlsConn
	if s.Engine == EngineCryptoTLS {
		cfg, err := s.tlsConfig(server)
		if err != nil {
			return nil, nil, err
		}
		if server {
			tc = tls.Server(c, cfg)
		} else {
			tc = tls.Client(c, cfg)
		}
	} else {
		cfg, err := s.ktlsConfig(server)
		if err != nil {
			return nil, nil, err
		}
		if server {
			tc = ktls.Server(c, cfg)
		} else {
			tc = ktls.Client(c, cfg)
		}
	}
	if err := tc.Handshake(); err != nil {
		return nil, nil, fmt.Errorf("handshake: %w", err)
	}
	st := tc.ConnectionState()
	res.Version, res.Suite = st.Version, st.CipherSuite
	if kc, ok := tc.(*ktls.Conn); ok && mode {
		tx, rx := kc.Mode()
		res.TX, res.RX = tx.String(), rx.String()
	}
	return tc, res, nil
}

// send accepts the receiver (and, for a TCP source, the feeder) and sends
// Size bytes by the method.
func (s *childSpec) send(stdout io.Writer) (*childResult, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	defer ln.Close()
	ready := "ready " + ln.Addr().String()
	var srcLn net.Listener
	if s.Method == MethodSpliceTCP || s.Method == MethodCopyTCP {
		if srcLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return nil, err
		}
		defer srcLn.Close()
		ready += " " + srcLn.Addr().String()
	}
	fmt.Fprintln(stdout, ready)
	c, err := ln.Accept()
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var src net.Conn
	if srcLn != nil {
		if src, err = srcLn.Accept(); err != nil {
			return nil, err
		}
		defer src.Close()
	}
	conn, res, err := s.wrap(c, true, true)
	if err != nil {
		return nil, err
	}
	sendfile := s.Method == MethodSendfile
	m := startMeter(sendfile)
	var n int64
	switch s.Method {
	case MethodWrite:
		n, err = writeN(conn, s.Size, s.WriteSize)
	case MethodSendfile, MethodCopyFile, MethodReadFromFile:
		n, err = s.sendFile(conn)
	case MethodSpliceTCP, MethodCopyTCP:
		n, err = io.Copy(conn, src)
	default:
		err = fmt.Errorf("unknown method %q", s.Method)
	}
	if err != nil {
		return nil, err
	}
	if err := conn.Close(); err != nil {
		return nil, fmt.Errorf("close: %w", err)
	}
	res.Bytes = n
	return m.stop(res), nil
}

// writeN writes size bytes to w in writes of chunk bytes.
func writeN(w io.Writer, size int64, chunk int) (int64, error) {
	buf := make([]byte, chunk)
	rand.Read(buf)
	var n int64
	for n < size {
		p := buf[:min(int64(len(buf)), size-n)]
		m, err := w.Write(p)
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// sendFile sends File over and over until Size bytes have gone: with
// ReadFrom for the sendfile and ReadFrom methods (sendfile(2) for plain TCP
// and a kernel engine; records sealed in place for the user-space engine),
// and io.Copy for crypto/tls, which has no ReadFrom.
func (s *childSpec) sendFile(conn net.Conn) (int64, error) {
	f, err := os.Open(s.File)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var n int64
	for n < s.Size {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return n, err
		}
		r := &io.LimitedReader{R: f, N: s.Size - n}
		var m int64
		if s.Method == MethodCopyFile {
			m, err = io.Copy(conn, r)
		} else {
			m, err = conn.(io.ReaderFrom).ReadFrom(r)
		}
		n += m
		if err != nil {
			return n, err
		}
		if m == 0 {
			return n, errors.New("empty file")
		}
	}
	return n, nil
}

// recv dials the sender and reads until the end of the stream.
func (s *childSpec) recv() (*childResult, error) {
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	conn, res, err := s.wrap(c, false, true)
	if err != nil {
		return nil, err
	}
	m := startMeter(false)
	buf := make([]byte, 256<<10)
	for {
		k, err := conn.Read(buf)
		res.Bytes += int64(k)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	m.stop(res)
	if res.Bytes != s.Size {
		return nil, fmt.Errorf("received %d bytes, want %d", res.Bytes, s.Size)
	}
	return res, nil
}

// feed dials the sender's source port and writes Size plain bytes.
func (s *childSpec) feed() (*childResult, error) {
	c, err := net.Dial("tcp", s.Addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	m := startMeter(false)
	n, err := writeN(c, s.Size, s.WriteSize)
	if err != nil {
		return nil, err
	}
	return m.stop(&childResult{Bytes: n}), c.Close()
}

// untilEOF returns a channel closed when r ends.
func untilEOF(r io.Reader) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		io.Copy(io.Discard, r)
		close(done)
	}()
	return done
}

// hsServer accepts connections until stdin ends; on each it runs the
// handshake (and the hand-off), echoes one byte and closes after the
// client.
func (s *childSpec) hsServer(stdin io.Reader, stdout io.Writer) (*childResult, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	res := &childResult{}
	var ops atomic.Int64
	var measured atomic.Bool // the modes are taken on the first connection
	var first sync.Once
	var firstErr error
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				conn, r, err := s.wrap(c, true, !measured.Swap(true))
				b := make([]byte, 1)
				if err == nil {
					_, err = io.ReadFull(conn, b)
				}
				if err == nil {
					_, err = conn.Write(b)
				}
				if err == nil {
					// The client closes first: a kernel hand-off fails
					// (ENOTCONN) on a socket whose peer has closed.
					_, err = io.Copy(io.Discard, conn)
				}
				if err != nil {
					first.Do(func() { firstErr = err })
					return
				}
				if r.TX != "" || ops.Load() == 0 {
					mu.Lock()
					res.Version, res.Suite = r.Version, r.Suite
					if r.TX != "" {
						res.TX, res.RX = r.TX, r.RX
					}
					mu.Unlock()
				}
				ops.Add(1)
				conn.Close()
			}()
		}
	}()
	m := startMeter(false)
	fmt.Fprintln(stdout, "ready "+ln.Addr().String())
	<-untilEOF(stdin)
	ln.Close()
	mu.Lock()
	defer mu.Unlock()
	m.stop(res)
	res.Ops = ops.Load()
	first.Do(func() {})
	return res, firstErr
}

// hsClient runs handshakes one after another for Duration: connect,
// handshake (and hand-off), one byte there and back, close.
func (s *childSpec) hsClient() (*childResult, error) {
	res := &childResult{}
	m := startMeter(false)
	b := make([]byte, 1)
	for time.Since(m.start) < s.Duration || res.Ops == 0 {
		c, err := net.Dial("tcp", s.Addr)
		if err != nil {
			return nil, err
		}
		conn, r, err := s.wrap(c, false, false)
		if err == nil {
			_, err = conn.Write(b)
		}
		if err == nil {
			_, err = io.ReadFull(conn, b)
		}
		if err == nil {
			err = conn.Close()
		}
		c.Close()
		if err != nil {
			return nil, err
		}
		res.Version, res.Suite = r.Version, r.Suite
		res.Ops++
	}
	return m.stop(res), nil
}

// httpServer serves Dir until stdin ends: with ktlshttp and the handler of
// ktls serve (internal/fileserve, without the access log, as nginx's
// reference configuration has access_log off), or with http.FileServer,
// net/http and crypto/tls (EngineCryptoTLS).
func (s *childSpec) httpServer(stdin io.Reader, stdout io.Writer) (*childResult, error) {
	root, err := os.OpenRoot(s.Dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	// The files are *.bin, application/octet-stream in a Debian host's
	// /etc/mime.types and nginx's default_type; the lab's guest has no
	// mime.types, and without a type net/http reads and sniffs the first
	// 512 bytes of each file (a read and a seek more per request).
	if err := mime.AddExtensionType(".bin", "application/octet-stream"); err != nil {
		return nil, err
	}
	fsys := ktlshttp.RootFS(root)
	cfg, err := s.tlsConfig(true)
	if err != nil {
		return nil, err
	}
	kcfg, err := s.ktlsConfig(true)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	var srv interface {
		Shutdown(context.Context) error
	}
	served := make(chan error, 1)
	if s.Engine == EngineCryptoTLS {
		hs := &http.Server{Handler: http.FileServer(fsys), TLSConfig: cfg, ErrorLog: discardLog()}
		srv = hs
		go func() { served <- hs.ServeTLS(ln, "", "") }()
	} else {
		ks := &ktlshttp.Server{
			Server: http.Server{Handler: fileserve.Handler(fsys, fileserve.DefaultWriteTimeout), ErrorLog: discardLog()},
			Config: kcfg,
		}
		srv = ks
		go func() { served <- ks.Serve(ln) }()
	}
	m := startMeter(false)
	fmt.Fprintln(stdout, "ready "+ln.Addr().String())
	// The parent writes "start" once the clients are connected, and
	// closes stdin when they are done. On "mem" (the memory scenario) the
	// server answers "mem RSS HEAP" (see memUsage).
	sc := bufio.NewScanner(stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "start":
			m = startMeter(false)
		case "mem":
			rss, heap := memUsage()
			fmt.Fprintf(stdout, "mem %d %d\n", rss, heap)
		}
	}
	select {
	case err := <-served:
		return nil, err
	default:
	}
	res := m.stop(&childResult{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	return res, nil
}

// httpClient GETs URLPath with Concurrency clients, each on its own
// connection (with NewConn, a new connection for every request), until Size
// bytes have arrived (Size > 0) or for Duration, over HTTP/1.1 (or HTTP/2
// with HTTP2) and crypto/tls.
func (s *childSpec) httpClient(stdin io.Reader, stdout io.Writer) (*childResult, error) {
	cfg, _ := s.tlsConfig(false)
	newTransport := func() *http.Transport {
		tr := &http.Transport{
			TLSClientConfig:    cfg.Clone(), // its HTTP/2 set-up writes NextProtos
			Protocols:          new(http.Protocols),
			DisableCompression: true,
			DisableKeepAlives:  s.NewConn && !s.HTTP2,
		}
		tr.Protocols.SetHTTP1(!s.HTTP2)
		tr.Protocols.SetHTTP2(s.HTTP2)
		return tr
	}
	var state atomic.Pointer[tls.ConnectionState]
	get := func(tr *http.Transport, url string, buf []byte) (int64, error) {
		resp, err := (&http.Client{Transport: tr}).Get(url)
		if err != nil {
			return 0, err
		}
		n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{resp.Body}, buf)
		resp.Body.Close()
		if s.NewConn {
			tr.CloseIdleConnections()
		}
		switch {
		case err != nil:
		case resp.StatusCode != http.StatusOK:
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		case s.HTTP2 != (resp.ProtoMajor == 2):
			err = fmt.Errorf("GET %s: answered over %s", url, resp.Proto)
		case resp.TLS != nil:
			state.Store(resp.TLS)
		}
		return n, err
	}
	// Warm up: each client connects (and handshakes) with one small
	// request; then the parent tells the server to start measuring and
	// says "go" on stdin.
	trs := make([]*http.Transport, s.Concurrency)
	var wg sync.WaitGroup
	errc := make(chan error, s.Concurrency)
	for i := range trs {
		trs[i] = newTransport()
		defer trs[i].CloseIdleConnections()
		wg.Go(func() {
			if _, err := get(trs[i], "https://"+s.Addr+"/small.bin", make([]byte, 8<<10)); err != nil {
				errc <- err
			}
		})
	}
	wg.Wait()
	select {
	case err := <-errc:
		return nil, fmt.Errorf("warm-up: %w", err)
	default:
	}
	fmt.Fprintln(stdout, "warm")
	if _, err := bufio.NewReader(stdin).ReadString('\n'); err != nil {
		return nil, fmt.Errorf("waiting for go: %w", err)
	}
	var bytes, ops atomic.Int64
	url := "https://" + s.Addr + s.URLPath
	m := startMeter(false)
	for _, tr := range trs {
		wg.Go(func() {
			buf := make([]byte, 256<<10)
			// Every client makes one request at least, however late
			// it starts on a busy machine.
			for first := true; ; first = false {
				if !first && (s.Size > 0 && bytes.Load() >= s.Size || s.Size == 0 && time.Since(m.start) >= s.Duration) {
					return
				}
				if s.NewConn {
					tr = newTransport()
				}
				n, err := get(tr, url, buf)
				if err != nil {
					errc <- err
					return
				}
				bytes.Add(n)
				ops.Add(1)
			}
		})
	}
	wg.Wait()
	res := m.stop(&childResult{Bytes: bytes.Load(), Ops: ops.Load()})
	select {
	case err := <-errc:
		return nil, err
	default:
	}
	if st := state.Load(); st != nil {
		res.Version, res.Suite = st.Version, st.CipherSuite
	}
	return res, nil
}

// readLine reads one line of a child's output.
func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return line[:len(line)-1], nil
}
