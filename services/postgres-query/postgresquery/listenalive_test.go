package postgresquery

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
)

// stallProxy forwards TCP connections from a loopback port to upstream.
// stall makes the connections it holds stop forwarding without closing,
// as a connection that died silently (a NAT or firewall dropping it);
// connections accepted afterwards are forwarded again.
type stallProxy struct {
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	conns    []*proxied
	wg       sync.WaitGroup
}

// proxied is one forwarded connection.
type proxied struct {
	client, server net.Conn
	stalled        atomic.Bool
}

// newStallProxy starts a stallProxy to upstream, closed when the test
// ends.
func newStallProxy(t testing.TB, upstream string) *stallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	p := &stallProxy{ln: ln, upstream: upstream}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// addr is the proxy's address.
func (p *stallProxy) addr() string { return p.ln.Addr().String() }

func (p *stallProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.upstream)
		if err != nil {
			_ = c.Close()
			continue
		}
		pc := &proxied{client: c, server: s}
		p.mu.Lock()
		p.conns = append(p.conns, pc)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(pc, c, s)
		go p.pipe(pc, s, c)
	}
}

// pipe copies from to to until either ends; once pc is stalled what it
// reads is dropped.
func (p *stallProxy) pipe(pc *proxied, from, to net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		if n > 0 && !pc.stalled.Load() {
			if _, werr := to.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		if err != nil {
			_ = pc.client.Close()
			_ = pc.server.Close()
			return
		}
	}
}

// stall stops forwarding on every connection open now.
func (p *stallProxy) stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pc := range p.conns {
		pc.stalled.Store(true)
	}
}

func (p *stallProxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	for _, pc := range p.conns {
		_ = pc.client.Close()
		_ = pc.server.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// listenPID is the backend pid of the scaler's LISTEN session on conn's
// database, or 0.
func listenPID(t testing.TB, conn *pgx.Conn) int {
	t.Helper()
	var pid int
	err := conn.QueryRow(scalertest.Context(t, 10*time.Second), `select pid from pg_stat_activity
		where application_name = $1 and datname = current_database() and query ilike 'listen %'`, AppName+ListenSuffix).Scan(&pid)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0
	}
	must(t, err)
	return pid
}

// TestListenSessionDiesSilently: a LISTEN session that stops answering
// without its connection closing (through a proxy that stops forwarding)
// is found by its ping after PingAfter quiet, within the connect timeout,
// and listens again on a new session; a NOTIFY after that is heard. A
// healthy quiet session answers its pings and is kept.
func TestListenSessionDiesSilently(t *testing.T) {
	t.Parallel()
	pg := sharedPostgres(t)
	url := newDatabase(t, pg)
	db := connect(t, url)
	proxy := newStallProxy(t, pg.Addr())
	const pingAfter = 200 * time.Millisecond
	var logs wait.Buffer
	l := newListener(t, strings.Replace(url, pg.Addr(), proxy.addr(), 1), ListenerOptions{PingAfter: pingAfter,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	connectTimeout := testConfig(url).ConnectTimeout
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var signals atomic.Int32
	done := watch(ctx, l, "bookings", func() { signals.Add(1) })
	wait.For(t, 5*time.Second, "listening", func() bool { return signals.Load() == 1 })
	pid := listenPID(t, db)

	time.Sleep(5 * pingAfter) // quiet spells, each ended by a ping
	exec(t, db, "notify bookings")
	wait.For(t, time.Second, "NOTIFY heard after quiet spells", func() bool { return signals.Load() == 2 })
	if got := listenPID(t, db); got != pid || strings.Contains(logs.String(), "LISTEN session failed") {
		t.Fatalf("a healthy quiet session was replaced (pid %d, then %d):\n%s", pid, got, logs.String())
	}

	proxy.stall()
	stalled := time.Now()
	bound := pingAfter + connectTimeout + minBackoff + time.Second // a new session's connect and LISTEN
	wait.For(t, 2*bound, "listening again after the session died silently", func() bool { return signals.Load() == 3 })
	if took := time.Since(stalled); took > bound {
		t.Errorf("listening again %v after the session died silently, want within %v", took, bound)
	}
	if !strings.Contains(logs.String(), "no answer to a ping") {
		t.Errorf("the failure does not say the ping went unanswered:\n%s", logs.String())
	}
	exec(t, db, "notify bookings")
	wait.For(t, time.Second, "NOTIFY heard on the new session", func() bool { return signals.Load() == 4 })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Watch after cancel = %v, want context.Canceled", err)
	}
}

// TestListenSessionTerminated: a LISTEN session ended by
// pg_terminate_backend is replaced at once, and a NOTIFY after that is
// pushed within a second (PUSH_INTERVAL is a minute: only a push can).
func TestListenSessionTerminated(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sharedPostgres(t), nil, scalertest.Options{PushInterval: time.Minute})
	ch := e.waitingBookings(t)
	for i := range 2 {
		pid := listenPID(t, e.db)
		var ended bool
		must(t, e.db.QueryRow(scalertest.Context(t, 10*time.Second), "select pg_terminate_backend($1)", pid).Scan(&ended))
		if !ended {
			t.Fatalf("pg_terminate_backend(%d) did not end the LISTEN session", pid)
		}
		wait.For(t, 5*time.Second, "a new LISTEN session", func() bool {
			p := listenPID(t, e.db)
			return p != 0 && p != pid
		})
		notify(t, e.db, "insert into bookings (status, seats) values ('waiting', 2)")
		if !scalertest.Next(t, ch, time.Second, "push after the session was terminated") {
			t.Fatalf("%d: false after a waiting booking came", i)
		}
		notify(t, e.db, "update bookings set status = 'done' where status = 'waiting'")
		if scalertest.Next(t, ch, time.Second, "push of the booking leaving") {
			t.Fatalf("%d: true after the waiting booking left", i)
		}
	}
}
