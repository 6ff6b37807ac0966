package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/ktls-go/ktls"
)

// logOptions are the logging flags of the long-running commands (serve,
// proxy).
type logOptions struct {
	level slog.Level
	json  bool // --log-format json
}

// addLogFlags defines --log-level and --log-format on fs; debug says what
// the debug level adds.
func addLogFlags(fs *flag.FlagSet, o *logOptions, debug string) {
	fs.TextVar(&o.level, "log-level", slog.LevelInfo, "log `LEVEL`: debug, info, warn or error; "+debug)
	fs.Func("log-format", "log lines as `FORMAT` text (key=value) or json (one object a line) (default text)", func(s string) error {
		switch s {
		case "text", "json":
			o.json = s == "json"
			return nil
		}
		return errors.New("want text or json")
	})
}

// logger returns the logger on w with the options' level and format.
func (o logOptions) logger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: o.level}
	if o.json {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// connInfo is what the access log says of a request's connection, found
// once per connection (the modes take a system call on kernel TLS).
type connInfo struct {
	tls    string      // "TLS 1.3"
	tx, rx string      // ktls.Mode
	client []slog.Attr // the verified client certificate (clientAttrs)
}

type connInfoKey struct{}

// logConn returns a ConnContext hook that puts the connection's connInfo in
// its context and logs the connection at debug level after its handshake,
// with the mode of both directions; nothing if the logger is not enabled
// at info level.
func logConn(logger *slog.Logger) func(context.Context, net.Conn) context.Context {
	return func(ctx context.Context, c net.Conn) context.Context {
		kc, ok := c.(*ktls.Conn)
		if !ok || !logger.Enabled(ctx, slog.LevelInfo) {
			// Nothing to log (at info level nor debug): the modes
			// are not asked for (on kernel TLS, sock_diag system calls).
			return ctx
		}
		tx, rx := kc.Mode()
		st := kc.ConnectionState()
		info := connInfo{tls: tls.VersionName(st.Version), tx: tx.String(), rx: rx.String(), client: clientAttrs(st)}
		if logger.Enabled(ctx, slog.LevelDebug) {
			proto := st.NegotiatedProtocol
			if proto == "" {
				proto = "http/1.1"
			}
			attrs := []slog.Attr{slog.String("remote", c.RemoteAddr().String()), slog.String("proto", proto),
				slog.String("tls", info.tls), slog.String("suite", tls.CipherSuiteName(st.CipherSuite)),
				slog.String("tx", info.tx), slog.String("rx", info.rx)}
			logger.LogAttrs(ctx, slog.LevelDebug, "connection", append(attrs, info.client...)...)
		}
		return context.WithValue(ctx, connInfoKey{}, info)
	}
}

// accessLog logs each request at info level once its response is written:
// remote address, method, path with query, status, body bytes, duration,
// user agent, protocol, TLS version, the connection's tx/rx modes and the
// client's verified certificate (client_cn, client_san; see clientAttrs).
func accessLog(logger *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !logger.Enabled(r.Context(), slog.LevelInfo) {
			h.ServeHTTP(w, r)
			return
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			info, _ := r.Context().Value(connInfoKey{}).(connInfo)
			attrs := []slog.Attr{
				slog.String("remote", r.RemoteAddr),
				slog.String("method", r.Method),
				slog.String("path", r.URL.RequestURI()),
				slog.Int("status", sw.status),
				slog.Int64("bytes", sw.n),
				slog.Duration("duration", time.Since(start)),
				slog.String("user_agent", r.UserAgent()),
				slog.String("proto", r.Proto),
				slog.String("tls", info.tls),
				slog.String("tx", info.tx),
				slog.String("rx", info.rx),
			}
			logger.LogAttrs(r.Context(), slog.LevelInfo, "request", append(attrs, info.client...)...)
		}()
		h.ServeHTTP(sw, r)
	})
}

// statusWriter records the status and size of a response. Its ReadFrom
// passes file bodies on to the connection's ReadFrom (sendfile).
type statusWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *statusWriter) ReadFrom(r io.Reader) (int64, error) {
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(struct{ io.Writer }{w.ResponseWriter}, r)
	}
	w.n += n
	return n, err
}

// Unwrap gives http.ResponseController the wrapped writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
