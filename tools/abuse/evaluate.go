package main

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
)

// evaluate fills res.missed with the aims of issue 8 this case missed.
func (rn *runner) evaluate(c *abuseCase, res *result) {
	miss := func(format string, args ...any) { res.missed = append(res.missed, fmt.Sprintf(format, args...)) }
	if res.peakRSS >= aimPeakRSS {
		miss("peak RSS %d MB >= 150 MB", res.peakRSS>>20)
	}
	if len(res.innocent) > 0 && !c.noInnocentAim {
		if m := percentile(res.innocent, 100); m > aimInnocent {
			miss("innocent GetMetrics max %v > 1s", m.Round(time.Millisecond))
		}
		if res.innocentErrs > 0 {
			miss("innocent GetMetrics failed %d times", res.innocentErrs)
		}
	}
	if res.servingErr != nil && (!c.noInnocentAim || strings.Contains(res.servingErr.Error(), "exited")) {
		miss("not serving after: %s", clip(res.servingErr.Error(), 160))
	}
	if c.service == "redis-session" {
		if res.peakConns >= aimRedisConns {
			miss("%d Redis connections >= 50", res.peakConns)
		}
		if res.acceptingErr != nil {
			miss("Redis refuses new clients: %s", clip(res.acceptingErr.Error(), 120))
		}
	}
	if res.exit > res.shutdownTimeout+aimExitSlack || res.killed {
		miss("exit %.1fs > SHUTDOWN_TIMEOUT %v + 1s", res.exit.Seconds(), res.shutdownTimeout)
	}
	for _, check := range c.checks {
		if m := check(res); m != "" {
			miss("%s", m)
		}
	}
}

// envDuration returns the duration of variable name in env, or def.
func envDuration(env []string, name string, def time.Duration) time.Duration {
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			if d, err := time.ParseDuration(v); err == nil {
				return d
			}
		}
	}
	return def
}

// waitTimeout waits for wg, at most d.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// codeString formats code counts, most frequent first.
func codeString(m map[codes.Code]int) string {
	type kv struct {
		c codes.Code
		n int
	}
	var s []kv
	for c, n := range m {
		s = append(s, kv{c, n})
	}
	sort.Slice(s, func(i, j int) bool { return s[i].n > s[j].n || s[i].n == s[j].n && s[i].c < s[j].c })
	parts := make([]string, len(s))
	for i, x := range s {
		parts[i] = fmt.Sprintf("%s %d", x.c, x.n)
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}
