package record

import (
	"bytes"
	"crypto/tls"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// Benchmarks of the record layer next to the raw AEAD, measured in the same
// run. Open decrypts in place, so each Open benchmark (ours and the raw
// AEAD's) first restores the ciphertext with a copy of the record.
//
//	go test -run '^$' -bench . -benchmem ./record

const benchSize = MaxPlaintext

func BenchmarkRawAEAD(b *testing.B) {
	for _, st := range allSuites[3:] { // one of each AEAD
		s := testSession(st.version, st.suite)
		var p protection
		if err := p.init(s); err != nil {
			b.Fatal(err)
		}
		nonce, ad := make([]byte, 12), make([]byte, 13)
		buf := make([]byte, benchSize+tagLen)
		b.Run(s.Cipher().String()+"/Seal", func(b *testing.B) {
			b.SetBytes(benchSize)
			b.ReportAllocs()
			for b.Loop() {
				p.aead.Seal(buf[:0], nonce, buf[:benchSize], ad)
			}
		})
		ct := p.aead.Seal(nil, nonce, buf[:benchSize], ad)
		b.Run(s.Cipher().String()+"/Open", func(b *testing.B) {
			b.SetBytes(benchSize)
			b.ReportAllocs()
			for b.Loop() {
				copy(buf, ct)
				if _, err := p.aead.Open(buf[:0], nonce, buf, ad); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func suiteName(version, suite uint16) string {
	if version == VersionTLS13 {
		return "TLS13/" + tls.CipherSuiteName(suite)
	}
	return "TLS12/" + tls.CipherSuiteName(suite)
}

func BenchmarkSeal(b *testing.B) {
	for _, st := range allSuites {
		sl, _ := pair(b, st.version, st.suite)
		payload := make([]byte, benchSize)
		buf := make([]byte, 0, benchSize+sl.Overhead())
		b.Run(suiteName(st.version, st.suite), func(b *testing.B) {
			b.SetBytes(benchSize)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := sl.Seal(buf, TypeApplicationData, payload); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkOpen(b *testing.B) {
	for _, st := range allSuites {
		sl, o := pair(b, st.version, st.suite)
		rec, _ := sl.Seal(nil, TypeApplicationData, make([]byte, benchSize))
		buf := make([]byte, len(rec))
		seq := o.Seq()
		b.Run(suiteName(st.version, st.suite), func(b *testing.B) {
			b.SetBytes(benchSize)
			b.ReportAllocs()
			for b.Loop() {
				copy(buf, rec)
				o.p.seq = seq
				if _, _, err := o.Open(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWriter writes 1 MiB per operation through a Writer to
// io.Discard.
func BenchmarkWriter(b *testing.B) {
	for _, st := range allSuites {
		sl, _ := pair(b, st.version, st.suite)
		w := NewWriter(io.Discard, sl)
		p := make([]byte, 1<<20)
		b.Run(suiteName(st.version, st.suite), func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := w.Write(p); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWriterReadFrom reads 1 MiB per operation from a bytes.Reader
// through Writer.ReadFrom to io.Discard, sealing in place.
func BenchmarkWriterReadFrom(b *testing.B) {
	for _, st := range allSuites {
		sl, _ := pair(b, st.version, st.suite)
		w := NewWriter(io.Discard, sl)
		p := make([]byte, 1<<20)
		src := bytes.NewReader(p)
		b.Run(suiteName(st.version, st.suite), func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			b.ReportAllocs()
			for b.Loop() {
				src.Reset(p)
				if _, err := w.ReadFrom(src); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkWriterReadFromFile reads 1 MiB per operation from a file (in
// the page cache) through Writer.ReadFrom to io.Discard: the path of
// Conn.ReadFrom(*os.File) in user space, system calls included.
func BenchmarkWriterReadFromFile(b *testing.B) {
	name := filepath.Join(b.TempDir(), "f")
	if err := os.WriteFile(name, make([]byte, 1<<20), 0o600); err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(name)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	for _, st := range allSuites {
		sl, _ := pair(b, st.version, st.suite)
		w := NewWriter(io.Discard, sl)
		b.Run(suiteName(st.version, st.suite), func(b *testing.B) {
			b.SetBytes(1 << 20)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.Seek(0, io.SeekStart); err != nil {
					b.Fatal(err)
				}
				if _, err := w.ReadFrom(f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReader reads 1 MiB of full records with ReadRecord, which
// opens each record in place in the Reader's buffer.
func BenchmarkReader(b *testing.B) { benchReader(b, nil) }

// BenchmarkReaderTo reads 1 MiB of full records with ReadRecordTo into a
// 256 KiB buffer, as Conn.Read does: each record is opened straight into
// the caller's buffer instead of being opened in place and copied out.
func BenchmarkReaderTo(b *testing.B) { benchReader(b, make([]byte, 256<<10)) }

func benchReader(b *testing.B, dst []byte) {
	for _, st := range allSuites {
		sl, o := pair(b, st.version, st.suite)
		var stream bytes.Buffer
		NewWriter(&stream, sl).Write(make([]byte, 1<<20))
		src := bytes.NewReader(stream.Bytes())
		r := NewReader(src, o)
		seq := o.Seq()
		b.Run(suiteName(st.version, st.suite), func(b *testing.B) {
			b.SetBytes(1 << 20)
			b.ReportAllocs()
			for b.Loop() {
				src.Reset(stream.Bytes())
				o.p.seq = seq
				r.start, r.end, r.rerr = 0, 0, nil
				for {
					_, _, err := r.ReadRecordTo(dst)
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// BenchmarkVsRaw interleaves each Seal or Open of a 16 KiB record with the
// same operation of the raw AEAD on 16 KiB, and reports the ratio of the
// median times (ours/raw), so that load on the machine and preemption affect
// both alike. A ratio of 1.10 would be 10% slower than the raw AEAD.
func BenchmarkVsRaw(b *testing.B) {
	for _, st := range allSuites {
		sl, o := pair(b, st.version, st.suite)
		raw := &sl.p
		nonce, ad := make([]byte, 12), make([]byte, 13)
		payload := make([]byte, benchSize)
		rawBuf := make([]byte, benchSize+tagLen)
		recBuf := make([]byte, 0, benchSize+sl.Overhead())
		b.Run(suiteName(st.version, st.suite)+"/Seal", func(b *testing.B) {
			m := newMedians()
			b.SetBytes(benchSize)
			b.ReportAllocs()
			for b.Loop() {
				t0 := time.Now()
				raw.aead.Seal(rawBuf[:0], nonce, rawBuf[:benchSize], ad)
				t1 := time.Now()
				if _, err := sl.Seal(recBuf, TypeApplicationData, payload); err != nil {
					b.Fatal(err)
				}
				m.add(t1.Sub(t0), time.Since(t1))
			}
			m.report(b)
		})
		b.Run(suiteName(st.version, st.suite)+"/SealInPlace", func(b *testing.B) {
			m := newMedians()
			b.SetBytes(benchSize)
			b.ReportAllocs()
			inPlace := recBuf[sl.PayloadOffset() : sl.PayloadOffset()+benchSize]
			for b.Loop() {
				t0 := time.Now()
				raw.aead.Seal(rawBuf[:0], nonce, rawBuf[:benchSize], ad)
				t1 := time.Now()
				if _, err := sl.Seal(recBuf, TypeApplicationData, inPlace); err != nil {
					b.Fatal(err)
				}
				m.add(t1.Sub(t0), time.Since(t1))
			}
			m.report(b)
		})
		rawCT := raw.aead.Seal(nil, nonce, payload, ad)
		seq := sl.Seq()
		rec, _ := sl.Seal(nil, TypeApplicationData, payload)
		recWork := make([]byte, len(rec))
		b.Run(suiteName(st.version, st.suite)+"/Open", func(b *testing.B) {
			m := newMedians()
			b.SetBytes(benchSize)
			b.ReportAllocs()
			for b.Loop() {
				t0 := time.Now()
				copy(rawBuf, rawCT)
				if _, err := raw.aead.Open(rawBuf[:0], nonce, rawBuf, ad); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				copy(recWork, rec)
				o.p.seq = seq
				if _, _, err := o.Open(recWork); err != nil {
					b.Fatal(err)
				}
				m.add(t1.Sub(t0), time.Since(t1))
			}
			m.report(b)
		})
	}
}

// medians keeps per-operation times of the raw AEAD and of this package.
type medians struct{ raw, ours []time.Duration }

func newMedians() *medians {
	return &medians{make([]time.Duration, 0, 1<<16), make([]time.Duration, 0, 1<<16)}
}

func (m *medians) add(raw, ours time.Duration) {
	if len(m.raw) < cap(m.raw) {
		m.raw = append(m.raw, raw)
		m.ours = append(m.ours, ours)
	}
}

func (m *medians) report(b *testing.B) {
	slices.Sort(m.raw)
	slices.Sort(m.ours)
	mid := len(m.raw) / 2
	b.ReportMetric(float64(m.raw[mid]), "raw-ns/op")
	b.ReportMetric(float64(m.ours[mid]), "ours-ns/op")
	b.ReportMetric(float64(m.ours[mid])/float64(m.raw[mid]), "ours/raw")
}
