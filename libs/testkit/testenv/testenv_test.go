package testenv

import (
	"context"
	"errors"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The production servers on this machine; a throwaway server must never be
// given their ports.
var productionPorts = map[string]bool{"6379": true, "5432": true}

func checkLoopbackAddr(t *testing.T, addr string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("Addr() = %q: %v", addr, err)
	}
	if host != "127.0.0.1" {
		t.Errorf("Addr() host = %q, want 127.0.0.1", host)
	}
	if productionPorts[port] {
		t.Errorf("Addr() = %q uses a production port", addr)
	}
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func newRedisClient(t *testing.T, r *Redis) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(r.URL())
	if err != nil {
		t.Fatalf("ParseURL(%q): %v", r.URL(), err)
	}
	opts.DialTimeout = time.Second
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// checkGone checks that Close reaped the server and removed its directory.
func checkGone(t *testing.T, pid int, dir, addr string) {
	t.Helper()
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("server pid %d still exists after Close (kill 0: %v)", pid, err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("directory %s still exists after Close (stat: %v)", dir, err)
	}
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Errorf("%s still accepts connections after Close", addr)
	}
}

func TestFreePortIsLoopbackAndFree(t *testing.T) {
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatalf("port %d from freePort is not free: %v", port, err)
	}
	l.Close()
}

func TestRedisStopStart(t *testing.T) {
	t.Parallel()
	r := NewRedis(t)
	checkLoopbackAddr(t, r.Addr())
	if want := "redis://" + r.Addr() + "/0"; r.URL() != want {
		t.Errorf("URL() = %q, want %q", r.URL(), want)
	}
	c := newRedisClient(t, r)
	ctx := ctxTimeout(t, time.Minute)

	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("GET = %q, %v; want \"v\"", got, err)
	}

	addr := r.Addr()
	if err := r.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := r.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("PING succeeded while the server was stopped")
	}

	if err := r.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := r.Start(); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	if r.Addr() != addr {
		t.Errorf("Addr() after Start = %q, want %q", r.Addr(), addr)
	}
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("PING after Start: %v", err)
	}
	// Persistence is off, so a restarted server is empty.
	if err := c.Get(ctx, "k").Err(); !errors.Is(err, redis.Nil) {
		t.Errorf("GET after restart: err = %v, want redis.Nil", err)
	}
	if err := c.Set(ctx, "k", "v2", 0).Err(); err != nil {
		t.Fatalf("SET after restart: %v", err)
	}
}

func TestRedisArgs(t *testing.T) {
	t.Parallel()
	sortChars := func(s string) string {
		b := []byte(s)
		sort.Slice(b, func(i, j int) bool { return b[i] < b[j] })
		return string(b)
	}
	tests := []struct {
		name  string
		args  []string
		param string
		want  string
		norm  func(string) string // applied to both sides before comparing
	}{
		{name: "keyspace events", args: []string{"--notify-keyspace-events", "KEA"},
			param: "notify-keyspace-events", want: "KEA", norm: sortChars},
		{name: "maxmemory policy", args: []string{"--maxmemory-policy", "allkeys-lru"},
			param: "maxmemory-policy", want: "allkeys-lru"},
		{name: "default no snapshots", param: "save", want: ""},
		{name: "default no AOF", param: "appendonly", want: "no"},
		{name: "default bind", param: "bind", want: "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := NewRedis(t, tt.args...)
			c := newRedisClient(t, r)
			got, err := c.ConfigGet(ctxTimeout(t, 30*time.Second), tt.param).Result()
			if err != nil {
				t.Fatalf("CONFIG GET %s: %v", tt.param, err)
			}
			g, w := got[tt.param], tt.want
			if tt.norm != nil {
				g, w = tt.norm(g), tt.norm(w)
			}
			if g != w {
				t.Errorf("CONFIG GET %s = %q, want %q", tt.param, got[tt.param], tt.want)
			}
		})
	}
}

func TestSentinel(t *testing.T) {
	t.Parallel()
	master := NewRedis(t)
	sentinel := NewSentinel(t, master, "sessions")
	sc := redis.NewSentinelClient(&redis.Options{Addr: sentinel.Addr()})
	t.Cleanup(func() { _ = sc.Close() })
	addr, err := sc.GetMasterAddrByName(ctxTimeout(t, 30*time.Second), "sessions").Result()
	if err != nil {
		t.Fatalf("SENTINEL GET-MASTER-ADDR-BY-NAME: %v", err)
	}
	if got := strings.Join(addr, ":"); got != master.Addr() {
		t.Errorf("sentinel names master %s, want %s", got, master.Addr())
	}
	if sentinel.Addr() == master.Addr() {
		t.Errorf("sentinel and master share %s", master.Addr())
	}
}

func TestRedisClose(t *testing.T) {
	t.Parallel()
	r, err := StartRedis()
	if err != nil {
		t.Fatal(err)
	}
	pid, dir, addr := r.srv.p.Pid(), r.srv.dir, r.Addr()
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	checkGone(t, pid, dir, addr)
	if err := r.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := r.Start(); err == nil {
		t.Error("Start after Close succeeded")
	}
}

func TestRedisBadArgsReportLog(t *testing.T) {
	t.Parallel()
	r, err := StartRedis("--no-such-option", "1")
	if err == nil {
		r.Close()
		t.Fatal("StartRedis with a bad option succeeded")
	}
	if !strings.Contains(err.Error(), "no-such-option") {
		t.Errorf("error does not quote the server's log: %v", err)
	}
}

func TestPostgresStopStart(t *testing.T) {
	t.Parallel()
	pg := NewPostgres(t)
	checkLoopbackAddr(t, pg.Addr())
	if want := "postgres://postgres@" + pg.Addr() + "/postgres?sslmode=disable"; pg.URL() != want {
		t.Errorf("URL() = %q, want %q", pg.URL(), want)
	}
	ctx := ctxTimeout(t, 2*time.Minute)

	conn, err := pgx.Connect(ctx, pg.URL())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "create table t (v text); insert into t values ('kept')"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	for _, tt := range []struct{ setting, want string }{
		{"max_connections", "200"},
		{"listen_addresses", "127.0.0.1"},
		{"fsync", "off"},
	} {
		var got string
		if err := conn.QueryRow(ctx, "show "+tt.setting).Scan(&got); err != nil {
			t.Fatalf("show %s: %v", tt.setting, err)
		}
		if got != tt.want {
			t.Errorf("%s = %q, want %q", tt.setting, got, tt.want)
		}
	}

	addr := pg.Addr()
	if err := pg.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := pg.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	if _, err := conn.Exec(ctx, "select 1"); err == nil {
		t.Error("query on a connection opened before Stop succeeded")
	}
	if c, err := pgx.Connect(ctxTimeout(t, 5*time.Second), pg.URL()); err == nil {
		c.Close(context.Background())
		t.Fatal("connect succeeded while the server was stopped")
	}

	if err := pg.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := pg.Start(); err != nil {
		t.Fatalf("second Start: %v", err)
	}
	if pg.Addr() != addr {
		t.Errorf("Addr() after Start = %q, want %q", pg.Addr(), addr)
	}
	conn2, err := pgx.Connect(ctx, pg.URL())
	if err != nil {
		t.Fatalf("connect after Start: %v", err)
	}
	defer conn2.Close(context.Background())
	var v string
	if err := conn2.QueryRow(ctx, "select v from t").Scan(&v); err != nil || v != "kept" {
		t.Errorf("select after restart = %q, %v; want \"kept\"", v, err)
	}
}

func TestPostgresManyConnections(t *testing.T) {
	t.Parallel()
	pg := NewPostgres(t)
	ctx := ctxTimeout(t, 2*time.Minute)
	const n = 100
	conns := make([]*pgx.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close(context.Background())
		}
	}()
	for i := 0; i < n; i++ {
		c, err := pgx.Connect(ctx, pg.URL())
		if err != nil {
			t.Fatalf("connection %d: %v", i+1, err)
		}
		conns = append(conns, c)
	}
	var count int
	if err := conns[0].QueryRow(ctx, "select count(*) from pg_stat_activity where backend_type = 'client backend'").Scan(&count); err != nil {
		t.Fatal(err)
	}
	if count < n {
		t.Errorf("pg_stat_activity shows %d client connections, want at least %d", count, n)
	}
}

func TestPostgresClose(t *testing.T) {
	t.Parallel()
	pg, err := StartPostgres()
	if err != nil {
		t.Fatal(err)
	}
	pid, dir, addr := pg.srv.p.Pid(), pg.srv.dir, pg.Addr()
	if err := pg.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	checkGone(t, pid, dir, addr)
	if err := pg.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := pg.Start(); err == nil {
		t.Error("Start after Close succeeded")
	}
}

func TestMissingBinaries(t *testing.T) {
	// Not parallel: t.Setenv changes the whole process's PATH.
	t.Setenv("PATH", t.TempDir())
	saved := postgresBinGlob
	postgresBinGlob = "/nonexistent/postgresql/*/bin"
	t.Cleanup(func() { postgresBinGlob = saved })

	tests := []struct {
		name  string
		start func() (interface{ Close() error }, error)
		want  string
	}{
		{"redis", func() (interface{ Close() error }, error) { return StartRedis() },
			`redis-server not found on PATH: install it with "apt-get install -y redis-server"`},
		{"postgres", func() (interface{ Close() error }, error) { return StartPostgres() },
			`install it with "apt-get install -y postgresql"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := tt.start()
			if err == nil {
				s.Close()
				t.Fatal("start succeeded without binaries")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}
