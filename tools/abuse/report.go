package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// verdict is a case's outcome in a few words.
func verdict(r *result) string {
	switch {
	case r.skipped != "":
		return "did not run: " + clip(r.skipped, 400)
	case len(r.missed) == 0:
		return "every aim met"
	default:
		return "missed: " + strings.Join(r.missed, "; ")
	}
}

// missedString is the aims missed, for a table cell.
func missedString(r *result) string {
	if len(r.missed) == 0 {
		return "none"
	}
	return strings.ReplaceAll(strings.Join(r.missed, "; "), "|", "/")
}

// loadAverage returns the 1-minute load average of the machine, or "?":
// latencies measured on a busy machine say so.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

// printReport writes the results as a Markdown table, then the notes of
// each case.
func printReport(w io.Writer, rn *runner, results []*result) {
	fmt.Fprintf(w, "\nabuse suite, %s, -scale %g, load average at start %s, at end %s\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 UTC"), rn.scale, rn.loadStart, loadAverage())
	fmt.Fprintln(w, "| case | calls | attack s | peak RSS MB | goroutines | fds | backend conns (base/peak) | backend MB (base/peak/end) | innocent p50/max ms (errors) | attacker got | exit s | aims missed |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range results {
		if r.skipped != "" {
			fmt.Fprintf(w, "| %s | - | - | - | - | - | - | - | - | - | - | did not run |\n", r.name)
			continue
		}
		if r.values["refused"] == 1 {
			fmt.Fprintf(w, "| %s | - | - | - | - | - | - | - | - | refused to start | - | %s |\n", r.name, missedString(r))
			continue
		}
		innocent := "-"
		if len(r.innocent) > 0 {
			innocent = fmt.Sprintf("%d / %d (%d)", percentile(r.innocent, 50).Milliseconds(), percentile(r.innocent, 100).Milliseconds(), r.innocentErrs)
		}
		exit := fmt.Sprintf("%.1f", r.exit.Seconds())
		if r.killed {
			exit += " (killed)"
		}
		fmt.Fprintf(w, "| %s | %.0f | %.1f | %d | %d | %d | %d / %d | %d / %d / %d | %s | %s | %s | %s |\n",
			r.name, r.values["sent"], r.attackTook.Seconds(), r.peakRSS>>20, r.peakGoroutines, r.peakFDs,
			r.baseConns, r.peakConns, r.baseMem>>20, r.peakMem>>20, r.endMem>>20,
			innocent, codeString(r.codes), exit, missedString(r))
	}
	fmt.Fprintln(w)
	for _, r := range results {
		var lines []string
		if r.skipped != "" {
			lines = append(lines, "did not run: "+r.skipped)
		}
		if r.ceiling != "" {
			lines = append(lines, r.ceiling)
		}
		lines = append(lines, r.notes...)
		for c, m := range r.codeSamples {
			lines = append(lines, fmt.Sprintf("%s: %s", c, m))
		}
		if r.innocentErrSample != "" {
			lines = append(lines, "innocent error: "+r.innocentErrSample)
		}
		if r.servingErr != nil {
			lines = append(lines, "after: "+clip(r.servingErr.Error(), 200))
		}
		if r.acceptingErr != nil {
			lines = append(lines, "backend: "+clip(r.acceptingErr.Error(), 200))
		}
		if len(lines) == 0 {
			continue
		}
		fmt.Fprintf(w, "- %s:\n", r.name)
		for _, l := range lines {
			fmt.Fprintf(w, "  - %s\n", strings.ReplaceAll(l, "\n", " "))
		}
	}
}
