package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// sent records how many calls the attack made.
func (a *attack) sent(n int) { a.value("sent", float64(n)) }

// streams opens a.n StreamIsActive streams, 64 at a time, each with the
// metadata md(i), waits up to 20 s for each one's first message, holds them
// for a.hold, and counts WARN and ERROR lines in the scaler's log during the second
// half of the hold (value warnPerSec).
func (a *attack) streams(ctx context.Context, md func(i int) map[string]string) {
	h := a.holdStreams(ctx, a.n, 64, a.limit/2, a.isActiveStreams("tenant-a", md))
	defer h.stop()
	a.value("opened", float64(h.opened.Load()))
	a.res.note("%d of %d streams got their first message", h.opened.Load(), a.n)
	// Each half of the hold spans more than a PUSH_INTERVAL (5 s), also in
	// a quick run, so that a warning repeated per re-check shows.
	half := max(a.hold/2, 6*time.Second)
	sleep(ctx, half)
	w0 := warnLines(a.scaler.logBytes())
	t0 := time.Now()
	sleep(ctx, half)
	w1 := warnLines(a.scaler.logBytes())
	rate := float64(w1-w0) / max(time.Since(t0).Seconds(), 0.001)
	a.value("warnPerSec", rate)
	a.res.note("WARN and ERROR lines in the log: %d by the middle of the hold, %.1f/s after", w0, rate)
}

// rawConnections opens a.n TCP connections to the gRPC port that never
// send anything, and counts how many the server closes within 25 s.
func rawConnections(ctx context.Context, a *attack) {
	const hold = 25 * time.Second
	var (
		mu     sync.Mutex
		conns  []net.Conn
		dialEr int
		sample string
	)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	dialCtx, stop := context.WithTimeout(ctx, 20*time.Second)
	var wg sync.WaitGroup
	next := make(chan struct{})
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := net.Dialer{Timeout: 2 * time.Second}
			for range next {
				c, err := d.DialContext(dialCtx, "tcp", a.scaler.grpcAddr)
				mu.Lock()
				if err != nil {
					dialEr++
					if sample == "" {
						sample = err.Error()
					}
				} else {
					conns = append(conns, c)
				}
				mu.Unlock()
			}
		}()
	}
dial:
	for range a.n {
		select {
		case next <- struct{}{}:
		case <-dialCtx.Done():
			break dial
		}
	}
	close(next)
	wg.Wait()
	stop()
	a.sent(len(conns) + dialEr)
	// Read until the server closes (the server sends its SETTINGS first).
	end := time.Now().Add(hold)
	var closed atomic.Int64
	var readers sync.WaitGroup
	for _, c := range conns {
		readers.Add(1)
		go func() {
			defer readers.Done()
			_ = c.SetReadDeadline(end)
			_, err := io.Copy(io.Discard, c)
			var ne net.Error
			if !(errors.As(err, &ne) && ne.Timeout()) {
				closed.Add(1)
			}
		}()
	}
	readers.Wait()
	dialed := float64(len(conns))
	a.value("dialed", dialed)
	a.value("held", dialed-float64(closed.Load()))
	a.res.note("%d connections dialed (%d dial errors%s); %d closed by the server within %v",
		len(conns), dialEr, map[bool]string{true: ": " + sample}[sample != ""], closed.Load(), hold)
}

// dblinkWrite asks, as a superuser's scaler, a query whose dblink_exec
// writes through another session, and says whether the write got through.
func dblinkWrite(ctx context.Context, a *attack) {
	pg := a.backend.(*pgBackend)
	q := fmt.Sprintf(`select * from dblink_exec('host=127.0.0.1 port=%s dbname=postgres user=postgres', 'create table abuse_dblink_wrote (x int)')`,
		pg.srv.Addr()[strings.LastIndexByte(pg.srv.Addr(), ':')+1:])
	a.sent(a.fanout(ctx, 1, 1, func(ctx context.Context, i int) error {
		return a.getMetrics(ctx, i, map[string]string{"query": q, "targetQueryValue": "1"})
	}))
	if wrote, err := pg.tableExists(ctx, "abuse_dblink_wrote"); err == nil {
		a.res.note("dblink_exec from the read-only transaction created a table: %v", wrote)
	}
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
