package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteJSON writes the results as one JSON array, one object per path.
func WriteJSON(w io.Writer, results []Result) error {
	if results == nil {
		results = []Result{}
	}
	b, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// ReadJSON reads what WriteJSON wrote.
func ReadJSON(r io.Reader) ([]Result, error) {
	var results []Result
	if err := json.NewDecoder(r).Decode(&results); err != nil {
		return nil, fmt.Errorf("reading bench results: %w", err)
	}
	return results, nil
}

// kinds sorts the available results by kind: bulk paths, handshakes and
// HTTP scenarios (operations per second), the memory scenario, servers.
func kinds(results []Result) (bulk, ops, mem, srv []Result) {
	for _, r := range results {
		switch {
		case !r.Available:
		case r.Server != "":
			srv = append(srv, r)
		case r.Memory != nil:
			mem = append(mem, r)
		case r.OpsPerSecond != 0:
			ops = append(ops, r)
		default:
			bulk = append(bulk, r)
		}
	}
	return bulk, ops, mem, srv
}

// WriteTable writes the results as a text table: the bulk paths, then the
// handshakes and HTTP scenarios (operations per second), then the memory
// scenario, then the paths that could not run and why.
func WriteTable(w io.Writer, results []Result) error {
	bulk, ops, mem, srv := kinds(results)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	if len(bulk) > 0 {
		fmt.Fprintln(tw, "engine\tpath\tversion\tsuite\tGbit/s\tsnd CPU s/GB\trcv CPU s/GB\tsyscalls/MiB\tvs crypto/tls\trounds' range\tsnd CPU vs\trcv CPU vs\t")
	}
	for _, r := range bulk {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.2f\t%.3f\t%.3f\t%s\t%.2fx\t%s\t%.2fx\t%.2fx\t\n",
			r.Engine, r.Path, dash(r.Version), dash(r.Suite), r.ThroughputGbps, r.SenderCPUPerGB, r.ReceiverCPUPerGB,
			syscalls(r.SyscallsPerMiB), r.RatioVsCryptoTLS, ratioRange(r), r.SenderCPURatio, r.ReceiverCPURatio)
	}
	if len(bulk) > 0 && len(ops) > 0 {
		fmt.Fprintln(tw, "\t\t\t\t\t\t\t\t\t\t\t\t")
	}
	if len(ops) > 0 {
		fmt.Fprintln(tw, "engine\tpath\tversion\tsuite\tops/s\tsnd CPU µs/op\trcv CPU µs/op\t\tvs crypto/tls\trounds' range\tsnd CPU vs\trcv CPU vs\t")
	}
	for _, r := range ops {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.0f\t%.0f\t%.0f\t\t%.2fx\t%s\t%.2fx\t%.2fx\t\n",
			r.Engine, r.Path, dash(r.Version), dash(r.Suite), r.OpsPerSecond, r.SenderCPUPerOpUs, r.ReceiverCPUPerOpUs,
			r.RatioVsCryptoTLS, ratioRange(r), r.SenderCPURatio, r.ReceiverCPURatio)
	}
	if len(mem) > 0 && len(bulk)+len(ops) > 0 {
		fmt.Fprintln(tw, "\t\t\t\t\t\t\t\t\t\t\t\t")
	}
	if len(mem) > 0 {
		fmt.Fprintln(tw, "engine\tpath\tconns\tstate\tRSS kB/conn\theap kB/conn\tRSS vs crypto/tls\theap vs crypto/tls\t")
	}
	for _, r := range mem {
		for _, m := range r.Memory {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%.1f\t%s\t%s\t\n",
				r.Engine, r.Path, r.Conns, m.State, kB(m.RSS), m.Heap/1e3, memRatio(m.RSSRatio), memRatio(m.HeapRatio))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(srv) > 0 {
		if len(bulk)+len(ops)+len(mem) > 0 {
			fmt.Fprintln(w)
		}
		if err := writeServers(w, srv, false); err != nil {
			return err
		}
	}
	// Unavailable paths, grouped by reason.
	var reasons []string
	names := map[string][]string{}
	for _, r := range results {
		if r.Available {
			continue
		}
		if names[r.Reason] == nil {
			reasons = append(reasons, r.Reason)
		}
		names[r.Reason] = append(names[r.Reason], r.Name())
	}
	if len(reasons) > 0 {
		fmt.Fprintln(w, "\nNot measured:")
	}
	for _, why := range reasons {
		fmt.Fprintf(w, "  %s:\n", why)
		for _, n := range names[why] {
			fmt.Fprintf(w, "    %s\n", n)
		}
	}
	return nil
}

// kB formats a memory size per connection in kB (1000 bytes), or "n/a"
// where the resident set size is unknown (negative).
func kB(v float64) string {
	if v < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f", v/1e3)
}

func memRatio(v float64) string {
	if v <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2fx", v)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// ratioRange is "min–max" of the per-round throughput ratios, or "-" for
// one round, a baseline, or results without them.
func ratioRange(r Result) string {
	if r.Rounds < 2 || r.RatioMin == 0 || r.RatioMin == r.RatioMax {
		return "-"
	}
	return fmt.Sprintf("%.2f–%.2f", r.RatioMin, r.RatioMax)
}

func syscalls(v float64) string {
	if v < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f", v)
}

// WriteMarkdown writes the results as Markdown tables, as WriteTable does
// in text.
func WriteMarkdown(w io.Writer, results []Result) error {
	bulk, ops, mem, srv := kinds(results)
	if len(bulk) > 0 {
		fmt.Fprintln(w, "| engine | path | version | suite | Gbit/s | sender CPU s/GB | receiver CPU s/GB | syscalls/MiB | throughput vs crypto/tls | rounds' range | sender CPU vs | receiver CPU vs |")
		fmt.Fprintln(w, "|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|")
	}
	for _, r := range bulk {
		fmt.Fprintf(w, "| %s | %s | %s | %s | %.2f | %.3f | %.3f | %s | %.2fx | %s | %.2fx | %.2fx |\n",
			r.Engine, r.Path, dash(r.Version), dash(r.Suite), r.ThroughputGbps, r.SenderCPUPerGB, r.ReceiverCPUPerGB,
			syscalls(r.SyscallsPerMiB), r.RatioVsCryptoTLS, ratioRange(r), r.SenderCPURatio, r.ReceiverCPURatio)
	}
	if len(ops) > 0 {
		if len(bulk) > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w, "| engine | path | version | ops/s | server CPU µs/op | client CPU µs/op | ops/s vs crypto/tls | rounds' range | server CPU vs | client CPU vs |")
		fmt.Fprintln(w, "|---|---|---|--:|--:|--:|--:|--:|--:|--:|")
	}
	for _, r := range ops {
		fmt.Fprintf(w, "| %s | %s | %s | %.0f | %.0f | %.0f | %.2fx | %s | %.2fx | %.2fx |\n",
			r.Engine, r.Path, dash(r.Version), r.OpsPerSecond, r.SenderCPUPerOpUs, r.ReceiverCPUPerOpUs,
			r.RatioVsCryptoTLS, ratioRange(r), r.SenderCPURatio, r.ReceiverCPURatio)
	}
	if len(mem) > 0 {
		if len(bulk)+len(ops) > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintln(w, "| engine | connections | state | RSS kB/conn | heap kB/conn | RSS vs crypto/tls | heap vs crypto/tls |")
		fmt.Fprintln(w, "|---|--:|---|--:|--:|--:|--:|")
	}
	for _, r := range mem {
		for _, m := range r.Memory {
			fmt.Fprintf(w, "| %s | %d | %s | %s | %.1f | %s | %s |\n",
				r.Engine, r.Conns, m.State, kB(m.RSS), m.Heap/1e3, memRatio(m.RSSRatio), memRatio(m.HeapRatio))
		}
	}
	if len(srv) > 0 {
		if len(bulk)+len(ops)+len(mem) > 0 {
			fmt.Fprintln(w)
		}
		if err := writeServers(w, srv, true); err != nil {
			return err
		}
	}
	first := true
	for _, r := range results {
		if r.Available {
			continue
		}
		if first {
			fmt.Fprint(w, "\nNot measured:\n\n")
			first = false
		}
		fmt.Fprintf(w, "- %s: %s\n", r.Name(), r.Reason)
	}
	return nil
}

// writeServers writes the rows of the servers scenarios as a text or
// Markdown table, then the notes on the use of kernel TLS.
func writeServers(w io.Writer, rs []Result, markdown bool) error {
	head := []string{"server", "scenario", "protocol", "version", "suite", "rate", "server CPU", "client CPU",
		"vs nginx-ktls: rate (rounds' range)", "server CPU", "vs net/http: rate (rounds' range)", "server CPU", "kernel TLS"}
	var tw *tabwriter.Writer
	row := func(cells []string) {
		if markdown {
			fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
		} else {
			fmt.Fprintf(tw, "%s\t\n", strings.Join(cells, "\t"))
		}
	}
	if markdown {
		row(head)
		fmt.Fprintln(w, "|---|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|---|")
	} else {
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		row(head)
	}
	for _, r := range rs {
		rate, snd, rcv := fmt.Sprintf("%.0f req/s", r.OpsPerSecond), fmt.Sprintf("%.0f µs/req", r.SenderCPUPerOpUs), fmt.Sprintf("%.0f µs/req", r.ReceiverCPUPerOpUs)
		switch r.Scenario {
		case ScenarioLarge:
			rate, snd, rcv = fmt.Sprintf("%.2f Gbit/s", r.ThroughputGbps), fmt.Sprintf("%.3f s/GB", r.SenderCPUPerGB), fmt.Sprintf("%.3f s/GB", r.ReceiverCPUPerGB)
		case ScenarioNewConn:
			rate, snd, rcv = fmt.Sprintf("%.0f conn/s", r.OpsPerSecond), fmt.Sprintf("%.0f µs/conn", r.SenderCPUPerOpUs), fmt.Sprintf("%.0f µs/conn", r.ReceiverCPUPerOpUs)
		}
		nx, nxCPU := serverRatioCells(r.VsNginxKTLS)
		nh, nhCPU := serverRatioCells(r.VsNetHTTP)
		row([]string{r.Server, r.Scenario, r.Protocol, r.Version, r.Suite, rate, snd, rcv, nx, nxCPU, nh, nhCPU, dash(r.KernelTLS)})
	}
	if tw != nil {
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if markdown {
		fmt.Fprintln(w)
	}
	// Whether nginx-ktls and ktls-serve used kernel TLS, once per verdict.
	said := map[string]bool{}
	for _, r := range rs {
		if r.KernelTLS == "" || r.KernelTLS == KernelTLSUsed || said[r.Note] {
			continue
		}
		said[r.Note] = true
		if r.KernelTLS == KernelTLSNotUsed {
			fmt.Fprintf(w, "%s: %s\n", r.Name(), r.Note)
		} else {
			fmt.Fprintf(w, "%s: %s\n", r.Server, r.Note)
		}
	}
	return nil
}

// serverRatioCells formats a ratio of ktls-serve to another server: the
// rate and the server CPU ratios with their rounds' ranges, or "-".
func serverRatioCells(v *ServerRatio) (rate, cpu string) {
	if v == nil {
		return "-", "-"
	}
	cell := func(med, lo, hi float64) string {
		if med == 0 {
			return "n/a"
		}
		if lo == hi {
			return fmt.Sprintf("%.2fx", med)
		}
		return fmt.Sprintf("%.2fx (%.2f–%.2f)", med, lo, hi)
	}
	return cell(v.Rate, v.RateMin, v.RateMax), cell(v.CPU, v.CPUMin, v.CPUMax)
}
