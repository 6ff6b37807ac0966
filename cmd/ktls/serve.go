package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/ktls-go/ktls"
	"github.com/ktls-go/ktls/internal/fileserve"
	"github.com/ktls-go/ktls/internal/kernel"
	"github.com/ktls-go/ktls/ktlshttp"
)

const serveUsage = `Usage: ktls serve [flags] [DIR]

Serve the files under DIR (default: the current directory) over HTTPS, with
HTTP/1.1 and HTTP/2. After each TLS handshake the records of each direction
are handed to the kernel when it has kernel TLS, else to ktls's user-space
record layer; on HTTP/1.1 file bodies then go out with sendfile(2).

Without --cert and --key, a self-signed ECDSA P-256 certificate is made at
start and its SHA-256 fingerprint logged. Names that lead outside DIR
(through "..", or through symbolic links pointing outside) are refused with
403 Forbidden unless --follow-symlinks is given; so are names that are not
regular files or directories (FIFOs, sockets, devices), which are never
opened. Each request is logged (at the info level), with --client-ca the
client certificate's subject CN and first URI (else DNS) SAN too (client_cn,
client_san). SIGHUP re-reads --cert, --key and --client-ca. SIGINT or
SIGTERM stops the server gracefully; a second signal stops it at once.

Under systemd (Linux), the listening sockets it passes (socket activation,
LISTEN_FDS) replace --addr, and readiness is reported (NOTIFY_SOCKET: READY=1,
RELOADING=1, STOPPING=1); see ktls(1).

Flags:
`

// serveOptions are the settings of ktls serve.
type serveOptions struct {
	addr string
	certOptions
	clientAuth clientAuthOptions
	logOptions
	followSymlinks bool
	proxyProto     proxyProtoOptions
	metrics        string
	tx, rx         ktls.Offload
	grace          time.Duration
	writeTimeout   time.Duration
	version        bool
	dir            string
}

// serveFlags returns the flag set of ktls serve. Its Usage prints to w;
// parsing prints nothing.
func serveFlags(w io.Writer) (*flag.FlagSet, *serveOptions) {
	o := &serveOptions{}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8443", "listen on `HOST:PORT`")
	addCertFlags(fs, &o.certOptions, "")
	addClientAuthFlags(fs, &o.clientAuth)
	addLogFlags(fs, &o.logOptions, "info logs every request, debug every connection too (tx=MODE rx=MODE)")
	addProxyProtoFlags(fs, &o.proxyProto, false)
	fs.BoolVar(&o.followSymlinks, "follow-symlinks", false, "follow symbolic links even where they lead outside DIR")
	fs.StringVar(&o.metrics, "metrics", "", "serve counters on `HOST:PORT`: Prometheus text at /metrics, expvar at /debug/vars (plain HTTP)")
	fs.Func("tx", "where the sending direction's records go, `MODE` auto (the kernel if it can, else user space), kernel (required), user or off (crypto/tls) (default auto)", offloadFlag(&o.tx))
	fs.Func("rx", "where the receiving direction's records go, `MODE` as for --tx (default auto)", offloadFlag(&o.rx))
	fs.DurationVar(&o.grace, "shutdown-timeout", 10*time.Second, "on SIGINT/SIGTERM, wait this `DURATION` for requests in flight")
	fs.DurationVar(&o.writeTimeout, "write-timeout", fileserve.DefaultWriteTimeout, "cut off a client that takes no data for `DURATION` (0: never)")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	fs.Usage = func() {
		fmt.Fprint(w, serveUsage)
		printFlags(w, fs)
	}
	return fs, o
}

// offloadFlag parses a ktls.Offload by its String form.
func offloadFlag(p *ktls.Offload) func(string) error {
	return func(s string) error {
		for o := ktls.OffloadAuto; o <= ktls.OffloadOff; o++ {
			if s == o.String() {
				*p = o
				return nil
			}
		}
		return errors.New("want auto, kernel, user or off")
	}
}

// runServe runs "ktls serve args" until ctx ends or SIGINT/SIGTERM.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs, o := serveFlags(stdout)
	if status, done := parseArgs("serve", fs, args, fs.Usage, stderr, withSockets(fs, "addr", o.check)); done {
		return status
	}
	if o.version {
		fmt.Fprintln(stdout, version())
		return 0
	}
	return untilSignal(ctx, stderr, o.logOptions, "ktls serve", o.serve)
}

// untilSignal runs a long-running command (serve, proxy) with the logger of
// lo on stderr, SIGHUP kept from ending it, until it returns or
// SIGINT/SIGTERM cancels its context; it returns the exit status. run gets the context, the function
// that restores the default signal action (after the first signal a second
// one ends the process at once) and tells systemd STOPPING=1, the logger,
// and the function that tells systemd READY=1 (see systemd.go).
func untilSignal(ctx context.Context, stderr io.Writer, lo logOptions, name string, run func(context.Context, func(), *slog.Logger, func(net.Addr)) error) int {
	logger := lo.logger(stderr)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	// SIGHUP reloads the certificates (certStore.watch): it must not end
	// the process, whether or not anything is there to reload.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	sdWatchdog(ctx, logger)
	onStop := func() { stop(); sdStopping(logger) }
	ready := func(net.Addr) { sdReady(logger) }
	if err := run(ctx, onStop, logger, ready); err != nil {
		logger.Error(name+" failed", "err", err)
		return 1
	}
	return 0
}

// check validates the options and takes DIR from the positional arguments.
func (o *serveOptions) check(pos []string) error {
	if err := o.certOptions.check(); err != nil {
		return err
	}
	if err := o.clientAuth.check(true); err != nil {
		return err
	}
	switch {
	case len(pos) > 1:
		return fmt.Errorf("too many arguments: %q (want at most one DIR)", pos)
	case o.grace < 0:
		return errors.New("--shutdown-timeout must not be negative")
	case o.writeTimeout < 0:
		return errors.New("--write-timeout must not be negative")
	}
	if err := checkAddr("addr", o.addr); err != nil {
		return err
	}
	if err := o.proxyProto.check(o.acme.enabled()); err != nil {
		return err
	}
	if o.metrics != "" {
		if err := checkAddr("metrics", o.metrics); err != nil {
			return err
		}
	}
	o.dir = "."
	if len(pos) == 1 {
		o.dir = pos[0]
	}
	return nil
}

// serve runs the server until ctx ends, then shuts it down gracefully.
// onStop is called when shutdown starts; ready, if not nil, gets the
// (first) listening address.
func (o *serveOptions) serve(ctx context.Context, onStop func(), logger *slog.Logger, ready func(net.Addr)) error {
	dir, err := filepath.Abs(o.dir)
	if err != nil {
		return err
	}
	var fsys http.FileSystem
	if o.followSymlinks {
		if fi, err := os.Stat(dir); err != nil {
			return err
		} else if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		fsys = followDir(dir)
	} else {
		root, err := os.OpenRoot(dir)
		if err != nil {
			return err
		}
		defer root.Close()
		fsys = ktlshttp.RootFS(root)
	}

	certs, err := loadCerts(&o.certOptions, o.addr, "--addr", logger)
	if err != nil {
		return err
	}
	certs.watch(ctx)
	tlsConfig, err := o.clientAuth.serverConfig(ctx, certs.tlsConfig(), logger)
	if err != nil {
		return err
	}

	kernelErr := kernel.Supported()
	if kernelErr != nil && (o.tx == ktls.OffloadKernel || o.rx == ktls.OffloadKernel) {
		return fmt.Errorf("--tx/--rx kernel: kernel TLS is unavailable: %w", kernelErr)
	}

	lns, err := listen(o.addr, logger)
	if err != nil {
		return err
	}
	for i := range lns {
		lns[i] = certs.listener(o.proxyProto.listener(lns[i], logger), 10*time.Second)
	}
	if o.metrics != "" {
		stopMetrics, err := serveMetrics(o.metrics, logger)
		if err != nil {
			closeListeners(lns)
			return err
		}
		defer stopMetrics()
	}
	srv := &ktlshttp.Server{
		Server: http.Server{
			Handler:           serveHandler(fsys, o.writeTimeout, logger),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelInfo),
			ConnContext:       logConn(logger),
			// An HTTP/2 connection no byte could be written to for the
			// write timeout is closed, whatever its streams wait for.
			HTTP2: &http.HTTP2Config{WriteByteTimeout: o.writeTimeout},
		},
		Config: &ktls.Config{
			TLS: tlsConfig,
			TX:  o.tx,
			RX:  o.rx,
		},
		HandshakeTimeout: 10 * time.Second,
	}

	attrs := []any{
		"url", "https://" + lns[0].Addr().String() + "/",
		"dir", dir,
		"follow_symlinks", o.followSymlinks,
		"tx", o.tx.String(),
		"rx", o.rx.String(),
	}
	if kernelErr == nil {
		attrs = append(attrs, "kernel_tls", "available")
	} else {
		attrs = append(attrs, "kernel_tls", "unavailable", "reason", kernelErr.Error())
	}
	logger.Info("serving", append(attrs, "version", version())...)
	if ready != nil {
		ready(lns[0].Addr())
	}

	served := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { served <- srv.Serve(ln) }()
	}
	select {
	case err := <-served:
		srv.Close() // and the other listeners
		for range len(lns) - 1 {
			<-served
		}
		return err
	case <-ctx.Done():
	}
	onStop()
	logger.Info("shutting down", "timeout", o.grace)
	sctx, cancel := context.WithTimeout(context.Background(), o.grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		logger.Warn("closing the connections still open", "err", err)
		srv.Close()
	}
	for range lns {
		if err := <-served; !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	}
	logger.Info("stopped")
	return nil
}

// serveHandler returns the handler of ktls serve: the files of fsys (with
// an ETag), each write with its deadline (writeTimeout, 0: none), each
// request logged at info level.
func serveHandler(fsys http.FileSystem, writeTimeout time.Duration, logger *slog.Logger) http.Handler {
	return accessLog(logger, fileserve.Handler(fsys, writeTimeout))
}

// followDir is http.Dir (symbolic links followed wherever they lead) that
// opens only regular files and directories, as ktlshttp.RootFS does: other
// names (FIFO, socket, device) fail with an error wrapping fs.ErrPermission
// (403) without being opened.
type followDir string

func (d followDir) Open(name string) (http.File, error) {
	if filepath.Separator != '/' && strings.ContainsRune(name, filepath.Separator) {
		return nil, errors.New("http: invalid character in file path")
	}
	full := filepath.Join(string(d), filepath.FromSlash(path.Clean("/"+name)))
	fi, err := os.Stat(full)
	if errors.Is(err, syscall.ENOTDIR) { // as http.Dir: a file is not a directory
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	if err == nil {
		err = servable(name, fi)
	}
	if err != nil {
		return nil, err
	}
	// O_NONBLOCK: should the name become a FIFO after Stat, the open does
	// not wait for a writer; reads of regular files ignore it.
	f, err := os.OpenFile(full, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err == nil {
		if fi, err = f.Stat(); err == nil {
			err = servable(name, fi)
		}
		if err != nil {
			f.Close()
		}
	}
	if err != nil {
		return nil, err
	}
	return f, nil
}

// servable returns nil if fi, of name, is a regular file or a directory,
// else an error wrapping fs.ErrPermission.
func servable(name string, fi fs.FileInfo) error {
	if fi.Mode().IsRegular() || fi.IsDir() {
		return nil
	}
	return &fs.PathError{Op: "open", Path: name, Err: fmt.Errorf("not a regular file or directory: %w", fs.ErrPermission)}
}
