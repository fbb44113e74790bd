package sqlmetric

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
)

// Pools are a SQL service's database pools, of its driver's type P, by
// lowercase connection name: two per connection, value reads and
// background target reads apart, and the variable that defines each
// connection, which errors name.
type Pools[P any] struct {
	// Value are the pools of value reads (query, queryName).
	Value map[string]P
	// Target are the pools of background target reads (targetQuery).
	Target map[string]P
	// URLVars name the variable of each connection.
	URLVars map[string]string
}

// NewPools returns empty Pools.
func NewPools[P any]() Pools[P] {
	return Pools[P]{Value: make(map[string]P), Target: make(map[string]P), URLVars: make(map[string]string)}
}

// Names returns the names of the connections, sorted.
func (p Pools[P]) Names() []string { return slices.Sorted(maps.Keys(p.Value)) }

// Check runs try on every value pool at once and joins what judge makes
// of each result, in the order of the names.
func (p Pools[P]) Check(ctx context.Context, try func(context.Context, P) error, judge func(name string, err error) error) error {
	names := p.Names()
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() { errs[i] = judge(name, try(ctx, p.Value[name])) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Ping runs ping on every value pool at once and joins the failures,
// each named by its connection's variable: a service's
// scalerkit.Pinger.
func (p Pools[P]) Ping(ctx context.Context, ping func(context.Context, P) error) error {
	return p.Check(ctx, ping, func(name string, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %w", p.URLVars[name], err)
		}
		return nil
	})
}

// Export reports the connections of every pool, as stats reads them, in
// b's kedascalers_sql_pool_connections.
func (p Pools[P]) Export(b *Backend, stats func(P) func() (inUse, idle int)) {
	for name, pool := range p.Value {
		b.AddPool(name, PoolValue, stats(pool))
	}
	for name, pool := range p.Target {
		b.AddPool(name, PoolTarget, stats(pool))
	}
}

// Close closes every pool with closePool and joins the errors, each
// named by its connection.
func (p Pools[P]) Close(closePool func(P) error) error {
	var errs []error
	for _, pools := range []map[string]P{p.Value, p.Target} {
		for _, name := range slices.Sorted(maps.Keys(pools)) {
			if err := closePool(pools[name]); err != nil {
				errs = append(errs, fmt.Errorf("closing connection %s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}
