package postgresquery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/kedascalers/kedascalers/libs/scalerkit/sqlmetric"
	"github.com/kedascalers/kedascalers/libs/testkit/scalertest"
	"github.com/kedascalers/kedascalers/libs/testkit/testenv"
	"github.com/kedascalers/kedascalers/libs/testkit/wait"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

const waiting = "select count(*) from bookings where status = 'waiting'"

// streamIsActive opens StreamIsActive for ref and returns its messages.
func (e *env) streamIsActive(t testing.TB, ref *pb.ScaledObjectRef) (<-chan bool, context.CancelFunc) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := e.s.Client.StreamIsActive(ctx, ref)
	must(t, err)
	return scalertest.Messages(ctx, func() (bool, error) {
		m, err := st.Recv()
		return m.GetResult(), err
	}), cancel
}

// listenSessions returns the number of the scaler's LISTEN sessions on
// conn's database that have run LISTEN.
func listenSessions(t testing.TB, conn *pgx.Conn) int {
	t.Helper()
	return count(t, conn, `select count(*) from pg_stat_activity
		where application_name = $1 and datname = current_database() and query ilike 'listen %'`, AppName+ListenSuffix)
}

// waitListenSessions waits until conn's database has n LISTEN sessions
// of the scaler.
func waitListenSessions(t testing.TB, conn *pgx.Conn, n int, within time.Duration) {
	t.Helper()
	err := wait.Until(within, func() error {
		if got := listenSessions(t, conn); got != n {
			return fmt.Errorf("%d LISTEN sessions, want %d", got, n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// notify makes a change and sends NOTIFY, from the test's connection.
func notify(t testing.TB, conn *pgx.Conn, change string) time.Time {
	t.Helper()
	exec(t, conn, change)
	exec(t, conn, "notify bookings")
	return time.Now()
}

// waitingBookings opens StreamIsActive for the waiting bookings, woken by
// NOTIFY bookings, and returns its messages once the first (false: none
// waiting) came and the LISTEN session is in place.
func (e *env) waitingBookings(t testing.TB) <-chan bool {
	t.Helper()
	md := map[string]string{"query": waiting, "targetQueryValue": "1", "notifyChannel": "bookings"}
	ch, _ := e.streamIsActive(t, scalertest.Ref(md))
	if scalertest.Next(t, ch, 5*time.Second, "first message") {
		t.Fatal("first message is true with no waiting booking")
	}
	waitListenSessions(t, e.db, 1, 5*time.Second)
	return ch
}

// TestNotifyPushesAtOnce: with a push interval of 30 s, a NOTIFY makes
// StreamIsActive say true within a second.
func TestNotifyPushesAtOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sharedPostgres(t), nil, scalertest.Options{PushInterval: 30 * time.Second})
	ch := e.waitingBookings(t)

	sent := notify(t, e.db, "insert into bookings (status, seats) values ('waiting', 2)")
	if !scalertest.Next(t, ch, time.Second, "after NOTIFY") {
		t.Fatal("got false after a waiting booking came")
	}
	t.Logf("true %v after NOTIFY (push interval 30s)", time.Since(sent))

	sent = notify(t, e.db, "update bookings set status = 'confirmed' where status = 'waiting'")
	if scalertest.Next(t, ch, time.Second, "after the second NOTIFY") {
		t.Fatal("got true after the waiting booking left")
	}
	t.Logf("false %v after NOTIFY", time.Since(sent))
}

// TestNotifySharesOneSession: streams of different queries on one channel
// share one LISTEN session, which closes when the last of them ends.
func TestNotifySharesOneSession(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sharedPostgres(t), nil, scalertest.Options{PushInterval: 30 * time.Second})
	mdA := map[string]string{"query": waiting, "targetQueryValue": "1", "notifyChannel": "bookings"}
	mdB := map[string]string{"query": "select count(*) from bookings where status = 'waiting' and seats > 1", "targetQueryValue": "1", "notifyChannel": "bookings"}
	a, stopA := e.streamIsActive(t, &pb.ScaledObjectRef{Name: "a", Namespace: "test", ScalerMetadata: mdA})
	a2, stopA2 := e.streamIsActive(t, &pb.ScaledObjectRef{Name: "a2", Namespace: "test", ScalerMetadata: mdA})
	b, stopB := e.streamIsActive(t, &pb.ScaledObjectRef{Name: "b", Namespace: "test", ScalerMetadata: mdB})
	for name, ch := range map[string]<-chan bool{"a": a, "a2": a2, "b": b} {
		if scalertest.Next(t, ch, 5*time.Second, name+": first message") {
			t.Fatalf("%s: first message is true", name)
		}
	}
	waitListenSessions(t, e.db, 1, 5*time.Second)
	time.Sleep(200 * time.Millisecond) // a second session would show by now
	if n := listenSessions(t, e.db); n != 1 {
		t.Fatalf("%d LISTEN sessions for one channel, want 1", n)
	}
	if n := e.b.listeners["default"].Channels(); n != 1 {
		t.Fatalf("listener has %d channels, want 1", n)
	}

	notify(t, e.db, "insert into bookings (status, seats) values ('waiting', 2)")
	for name, ch := range map[string]<-chan bool{"a": a, "a2": a2, "b": b} {
		if !scalertest.Next(t, ch, time.Second, name+": after NOTIFY") {
			t.Fatalf("%s: false after NOTIFY", name)
		}
	}

	stopA()
	stopA2()
	time.Sleep(200 * time.Millisecond)
	if n := listenSessions(t, e.db); n != 1 {
		t.Fatalf("%d LISTEN sessions with one stream left, want 1", n)
	}
	stopB()
	waitListenSessions(t, e.db, 0, 5*time.Second)
	if n := e.b.listeners["default"].Channels(); n != 0 {
		t.Errorf("listener has %d channels after the last stream ended, want 0", n)
	}
}

// TestNotifyAfterRestart: the LISTEN session reconnects by itself after a
// PostgreSQL restart, and NOTIFY works again.
func TestNotifyAfterRestart(t *testing.T) {
	t.Parallel()
	pg := testenv.NewPostgres(t)
	e := newEnv(t, pg, nil, scalertest.Options{PushInterval: 30 * time.Second, BackendTimeout: 2 * time.Second})
	md := map[string]string{"query": waiting, "targetQueryValue": "1", "notifyChannel": "bookings"}
	ch, _ := e.streamIsActive(t, scalertest.Ref(md))
	if scalertest.Next(t, ch, 5*time.Second, "first message") {
		t.Fatal("first message is true")
	}
	waitListenSessions(t, e.db, 1, 5*time.Second)
	notify(t, e.db, "insert into bookings (status, seats) values ('waiting', 2)")
	if !scalertest.Next(t, ch, time.Second, "after NOTIFY") {
		t.Fatal("false after NOTIFY")
	}

	must(t, pg.Stop())
	must(t, pg.Start())
	restarted := time.Now()
	db := connect(t, e.url) // the old connection died with the server
	waitListenSessions(t, db, 1, 15*time.Second)
	t.Logf("listening again %v after the restart", time.Since(restarted))

	notify(t, db, "update bookings set status = 'done' where status = 'waiting'")
	if scalertest.Next(t, ch, time.Second, "after the restart") {
		t.Fatal("true after the waiting booking left")
	}
	notify(t, db, "insert into bookings (status, seats) values ('waiting', 1)")
	if !scalertest.Next(t, ch, time.Second, "after the restart, again") {
		t.Fatal("false after a waiting booking came")
	}
}

// newListener returns a Listener on the database at url, closed when the
// test ends.
func newListener(t *testing.T, url string, opts ListenerOptions) *Listener {
	t.Helper()
	cfg := testConfig(url)
	pc, err := cfg.poolConfig(sqlmetric.Connection{URL: url, URLVar: "POSTGRES_URL"})
	must(t, err)
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	l := NewListener(listenConfig(pc), opts)
	t.Cleanup(l.Close)
	return l
}

// watch runs l.Watch in the background and returns its result channel.
func watch(ctx context.Context, l *Listener, channel string, changed func()) <-chan error {
	done := make(chan error, 1)
	go func() { done <- l.Watch(ctx, channel, changed) }()
	return done
}

func TestListener(t *testing.T) {
	t.Parallel()
	url := newDatabase(t, sharedPostgres(t))
	db := connect(t, url)
	var logs wait.Buffer
	var waited atomic.Int32
	l := newListener(t, url, ListenerOptions{MaxChannels: 2, Refused: func() { waited.Add(1) }, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	if err := l.Watch(ctx, "Bad-Channel", func() {}); err == nil || !strings.Contains(err.Error(), "Bad-Channel") {
		t.Errorf("Watch of a bad channel: %v", err)
	}

	var signals atomic.Int32
	first := watch(ctx, l, "bookings", func() { signals.Add(1) })
	second := watch(ctx, l, "bookings", func() { signals.Add(1) })
	otherCtx, stopOther := context.WithCancel(ctx)
	other := watch(otherCtx, l, "other", func() {})
	waitListenSessions(t, db, 2, 5*time.Second)

	// Channels over MaxChannels wait (their feeds poll) with one warning
	// for all of them, not a line per watch or per retry.
	var overs []<-chan error
	for i := range 5 {
		overs = append(overs, watch(ctx, l, fmt.Sprintf("over_%d", i), func() {}))
	}
	logs.WaitFor(t, 5*time.Second, "POSTGRES_MAX_LISTEN_CHANNELS")
	time.Sleep(100 * time.Millisecond)
	if n := strings.Count(logs.String(), "POSTGRES_MAX_LISTEN_CHANNELS"); n != 1 {
		t.Errorf("%d warnings for 5 watches over the limit, want 1:\n%s", n, logs.String())
	}
	wait.For(t, 5*time.Second, "each watch over the limit counted", func() bool { return waited.Load() == 5 })
	for _, over := range overs {
		select {
		case err := <-over:
			t.Fatalf("a watch over MaxChannels returned %v, want it to wait", err)
		default:
		}
	}
	if n := l.Channels(); n != 2 {
		t.Errorf("%d channels, want MaxChannels (2)", n)
	}

	// Each watcher is signalled once when LISTEN is in place (its feed
	// read before), then once per NOTIFY of its channel.
	wantSignals := func(want int32, why string) {
		t.Helper()
		if err := wait.Until(time.Second, func() error {
			if n := signals.Load(); n != want {
				return fmt.Errorf("%d signals, want %d (%s)", n, want, why)
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	}
	wantSignals(2, "one per watcher of bookings, once listening")
	exec(t, db, "notify bookings, 'payload is ignored'")
	exec(t, db, "notify other")
	wantSignals(4, "one more per watcher of bookings, for the NOTIFY")
	late := watch(ctx, l, "bookings", func() { signals.Add(1) })
	wantSignals(5, "a watcher joining a session that listens already, at once")

	stopOther()
	if err := <-other; !errors.Is(err, context.Canceled) {
		t.Errorf("Watch after its context ended = %v, want context.Canceled", err)
	}
	// The freed session goes to one of the waiting channels.
	waitListenSessions(t, db, 2, 5*time.Second)
	if n := l.Channels(); n != 2 {
		t.Errorf("%d channels after one was freed, want 2", n)
	}

	l.Close()
	for _, done := range append([]<-chan error{first, second, late}, overs...) {
		select {
		case err := <-done:
			if !errors.Is(err, errListenerClosed) {
				t.Errorf("Watch after Close = %v, want errListenerClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Watch still running 5s after Close")
		}
	}
	waitListenSessions(t, db, 0, 5*time.Second)
	if err := l.Watch(ctx, "bookings", func() {}); !errors.Is(err, errListenerClosed) {
		t.Errorf("Watch on a closed listener = %v", err)
	}
}

// TestListenerWhileDown: Watch does not fail while the database is
// unreachable; it keeps trying, and ends with its context.
func TestListenerWhileDown(t *testing.T) {
	t.Parallel()
	l := newListener(t, "postgres://postgres@127.0.0.1:1/none?sslmode=disable",
		ListenerOptions{MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := l.Watch(ctx, "bookings", func() {}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Watch = %v, want it to wait until its context ended", err)
	}
	if n := l.Channels(); n != 0 {
		t.Errorf("%d channels after the last watcher left", n)
	}
}

// TestNotifyChangeRightAfterOpen: a change made as soon as the first
// message came, before LISTEN may be in place, is pushed within a second,
// not at the 30 s push interval: the feed re-checks once listening.
func TestNotifyChangeRightAfterOpen(t *testing.T) {
	t.Parallel()
	e := newEnv(t, sharedPostgres(t), nil, scalertest.Options{PushInterval: 30 * time.Second})
	for i := range 5 { // a fresh feed and session each time: a distinct channel
		channel := fmt.Sprintf("early_%d", i)
		md := map[string]string{"query": fmt.Sprintf("select count(*) from bookings where seats = %d", 100+i),
			"targetQueryValue": "1", "notifyChannel": channel}
		ch, _ := e.streamIsActive(t, scalertest.Ref(md))
		if scalertest.Next(t, ch, 5*time.Second, "first message") {
			t.Fatal("first message is true with no booking")
		}
		exec(t, e.db, fmt.Sprintf("insert into bookings (status, seats) values ('waiting', %d); notify %s", 100+i, channel))
		if !scalertest.Next(t, ch, time.Second, channel+": after a change right after the first message") {
			t.Fatal("false after the booking came")
		}
	}
}
