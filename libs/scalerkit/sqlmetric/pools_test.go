package sqlmetric

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakePool is a pool of the Pools tests: down fails a ping, closed counts
// Close calls.
type fakePool struct {
	down   bool
	closed atomic.Int32
	inUse  int
}

func testPools() (Pools[*fakePool], map[string]*fakePool) {
	p := NewPools[*fakePool]()
	all := map[string]*fakePool{}
	for _, name := range []string{"reports", DefaultConnection, "billing"} {
		p.Value[name], p.Target[name] = &fakePool{inUse: 1}, &fakePool{inUse: 2}
		all[name], all[name+"/target"] = p.Value[name], p.Target[name]
		p.URLVars[name] = Vars("DB").URL(name)
	}
	return p, all
}

func TestPoolsPing(t *testing.T) {
	p, _ := testPools()
	p.Value["reports"].down, p.Value["billing"].down = true, true
	p.Target[DefaultConnection].down = true // targets are not pinged
	ping := func(_ context.Context, fp *fakePool) error {
		if fp.down {
			return errors.New("connection refused")
		}
		return nil
	}
	err := p.Ping(context.Background(), ping)
	want := "DB_URL_BILLING: connection refused\nDB_URL_REPORTS: connection refused"
	if err == nil || err.Error() != want {
		t.Errorf("Ping() = %v, want %q (each failure by its variable, in name order)", err, want)
	}
	p.Value["reports"].down, p.Value["billing"].down = false, false
	if err := p.Ping(context.Background(), ping); err != nil {
		t.Errorf("Ping() with every database up = %v", err)
	}
}

func TestPoolsClose(t *testing.T) {
	p, all := testPools()
	err := p.Close(func(fp *fakePool) error {
		fp.closed.Add(1)
		if fp == p.Target["billing"] {
			return errors.New("busy")
		}
		return nil
	})
	for name, fp := range all {
		if n := fp.closed.Load(); n != 1 {
			t.Errorf("pool %s closed %d times, want 1", name, n)
		}
	}
	if err == nil || !strings.Contains(err.Error(), "closing connection billing: busy") {
		t.Errorf("Close() = %v, want the error of billing's target pool", err)
	}
}

func TestPoolsExport(t *testing.T) {
	p, _ := testPools()
	reg := prometheus.NewRegistry()
	b, err := NewBackend(settings(t, validConfig()), Options{Conns: map[string]Querier{DefaultConnection: &fakeQuerier{}}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	p.Export(b, func(fp *fakePool) func() (int, int) { return func() (int, int) { return fp.inUse, 0 } })
	// Three connections, two pools each, two states each.
	if n := testutil.CollectAndCount(reg, "kedascalers_sql_pool_connections"); n != 12 {
		t.Errorf("kedascalers_sql_pool_connections has %d series, want 12", n)
	}
	if got := p.Names(); !slices.Equal(got, []string{"billing", DefaultConnection, "reports"}) {
		t.Errorf("Names() = %q, want them sorted", got)
	}
}
