package redissession

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/scalerkit/fault"
	"github.com/kedascalers/kedascalers/libs/scalerkit/scaler"
	"github.com/kedascalers/kedascalers/libs/scalerkit/share"
)

// The clients of the databases triggers use: one per database, created on
// first use, shared by every read of that database, closed when idle. What
// is scarce is connections, not databases: every read takes its turn for
// one of the REDIS_MAX_CONNECTIONS (the gate, round robin among
// namespaces), and a database's client holds connections only while it
// is used. A databaseIndex the server has is never refused.

// acquire returns the client of database n, creating it when needed, for
// one read of the namespace of ctx: call release when the read is done.
// It waits for room among REDIS_MAX_DATABASES clients, then its turn for
// a connection, within ctx (BACKEND_TIMEOUT): a read waiting for a client
// holds no connection turn. A databaseIndex the server does not have is
// FailedPrecondition.
func (b *Backend) acquire(ctx context.Context, n int) (d *database, release func(), err error) {
	if !b.cluster && n != b.opts.DB {
		if err := b.checkIndex(ctx, n); err != nil {
			return nil, nil, err
		}
	}
	if d, err = b.client(ctx, n); err != nil {
		return nil, nil, b.clientWaitFailed(ctx, n, err)
	}
	done := func() {
		b.mu.Lock()
		d.refs--
		d.used = time.Now()
		idle := d.refs == 0
		b.mu.Unlock()
		if idle {
			b.conns.freed.broadcast() // its connections may be closed for another database
		}
	}
	leave, err := b.gate.acquire(ctx, scaler.Namespace(ctx))
	if err != nil {
		done()
		return nil, nil, b.waitFailed(ctx, n, err)
	}
	return d, func() {
		done()
		leave()
	}, nil
}

// clientWaitFailed explains a read that found no room for its database's
// client in time.
func (b *Backend) clientWaitFailed(ctx context.Context, n int, err error) error {
	if ctx.Err() == nil {
		return err
	}
	b.limitReached(limitDatabases)
	return status.Errorf(codes.DeadlineExceeded, "databaseIndex %d: no room for its Redis client in time: the %d clients of %s are all reading (%v)",
		n, b.cfg.MaxDatabases, limitDatabases, err)
}

// waitFailed explains a read that found no connection in time.
func (b *Backend) waitFailed(ctx context.Context, n int, err error) error {
	if ctx.Err() == nil && !errors.Is(err, share.ErrQueueFull) {
		return err
	}
	b.limitReached(limitConnections)
	code := codes.DeadlineExceeded
	if errors.Is(err, share.ErrQueueFull) {
		code = codes.ResourceExhausted
	}
	return status.Errorf(code, "databaseIndex %d: no Redis connection free in time: the %d of %s are shared by every database and namespace in turn (%v)",
		n, b.gate.capacity, limitConnections, err)
}

// client returns the client of database n with one more reference,
// creating it when needed. With REDIS_MAX_DATABASES clients open it
// closes the one unused the longest, or waits for one to fall idle.
func (b *Backend) client(ctx context.Context, n int) (*database, error) {
	for {
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			return nil, errClosed
		}
		if d := b.dbs[n]; d != nil {
			d.refs++
			b.mu.Unlock()
			return d, nil
		}
		if len(b.dbs) >= b.cfg.MaxDatabases {
			evicted := b.idlestLocked(time.Now(), false)
			if evicted == nil {
				freed := b.conns.freed.wait()
				b.mu.Unlock()
				select {
				case <-freed:
					continue
				case <-ctx.Done():
					return nil, ctx.Err()
				}
			}
			delete(b.dbs, evicted.n)
			b.mu.Unlock()
			b.closeClient(evicted, "room for another database")
			continue
		}
		d := &database{n: n, client: redis.NewUniversalClient(b.clientOptions(n)), cluster: b.cluster, refs: 1}
		b.dbs[n] = d
		b.metrics.clients.Set(float64(len(b.dbs)))
		b.mu.Unlock()
		b.log.Debug("redis client created", slog.Int("db", n))
		return d, nil
	}
}

// clientOptions are the options of database n's client: a pool of at
// most the per-database size; the default database keeps
// REDIS_MIN_IDLE_CONNS open, the others one idle connection at most, so
// that connections go where the reads are.
func (b *Backend) clientOptions(n int) *redis.UniversalOptions {
	opts := b.opts
	opts.DB = n
	if n != b.opts.DB {
		opts.MinIdleConns, opts.MaxIdleConns = 0, 1
	}
	return &opts
}

// idlestLocked returns the client without a read the longest: of those
// unused since REDIS_CLIENT_IDLE_TIMEOUT when timedOut, of any idle one
// otherwise; nil when none. b.mu must be held.
func (b *Backend) idlestLocked(now time.Time, timedOut bool) *database {
	var idlest *database
	for _, d := range b.dbs {
		if d.refs == 0 && (!timedOut || now.Sub(d.used) >= b.cfg.ClientIdleTimeout) && (idlest == nil || d.used.Before(idlest.used)) {
			idlest = d
		}
	}
	return idlest
}

// evictForConn closes the idle client unused the longest that holds
// connections, for a dial at REDIS_MAX_CONNECTIONS, and reports whether
// there was one.
func (b *Backend) evictForConn() bool {
	b.mu.Lock()
	var idlest *database
	for _, d := range b.dbs {
		if d.refs == 0 && (idlest == nil || d.used.Before(idlest.used)) {
			if st := d.client.PoolStats(); st != nil && st.TotalConns > 0 {
				idlest = d
			}
		}
	}
	if idlest != nil {
		delete(b.dbs, idlest.n)
	}
	b.mu.Unlock()
	b.closeClient(idlest, "its connections for another database")
	return idlest != nil
}

// closeClient closes d's client (nil: nothing), already out of b.dbs.
func (b *Backend) closeClient(d *database, why string) {
	if d == nil {
		return
	}
	b.mu.Lock()
	b.metrics.clients.Set(float64(len(b.dbs)))
	b.mu.Unlock()
	if err := d.client.Close(); err != nil {
		b.log.Debug("closing a redis client", slog.Int("db", d.n), slog.Any("error", err))
	}
	b.conns.freed.broadcast()
	b.log.Debug("redis client closed", slog.Int("db", d.n), slog.String("why", why))
}

// sweep closes the clients idle for REDIS_CLIENT_IDLE_TIMEOUT until Close.
func (b *Backend) sweep() {
	defer close(b.swept)
	every := min(max(b.cfg.ClientIdleTimeout/4, 10*time.Millisecond), 30*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case now := <-t.C:
			for {
				b.mu.Lock()
				d := b.idlestLocked(now, true)
				if d != nil {
					delete(b.dbs, d.n)
				}
				b.mu.Unlock()
				if d == nil {
					break
				}
				b.closeClient(d, "idle")
			}
		}
	}
}

// connsInUse is the number of pooled connections busy with a command.
func (b *Backend) connsInUse() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, d := range b.dbs {
		if st := d.client.PoolStats(); st != nil {
			n += int(st.TotalConns) - int(st.IdleConns)
		}
	}
	return n
}

// dbCount is the number of databases the server has, read once with
// CONFIG GET databases on first need and kept: it cannot change while the
// server runs. n is 0 when the server refused CONFIG (managed services
// often rename it): Redis's own SELECT error then says.
type dbCount struct {
	sem   chan struct{} // one reader at a time
	known atomic.Bool
	n     atomic.Int64
}

// checkIndex refuses a database index the server does not have, before
// any client or connection is spent on it.
func (b *Backend) checkIndex(ctx context.Context, n int) error {
	if !b.dbCount.known.Load() {
		if err := b.readDBCount(ctx); err != nil {
			return err
		}
	}
	if count := b.dbCount.n.Load(); count > 0 && int64(n) >= count {
		return fault.Tenantf(codes.FailedPrecondition,
			"databaseIndex %d does not exist on this Redis: it has %d databases (0 to %d, CONFIG GET databases)", n, count, count-1)
	}
	return nil
}

// readDBCount reads CONFIG GET databases through the default database's
// client.
func (b *Backend) readDBCount(ctx context.Context) error {
	select {
	case b.dbCount.sem <- struct{}{}:
		defer func() { <-b.dbCount.sem }()
	case <-ctx.Done():
		return ctx.Err()
	}
	if b.dbCount.known.Load() {
		return nil
	}
	d, release, err := b.acquire(ctx, b.opts.DB) // its turn among the reads
	if err != nil {
		return err
	}
	defer release()
	res, err := d.client.ConfigGet(ctx, "databases").Result()
	var rerr redis.Error
	switch {
	case err == nil:
		count, perr := strconv.ParseInt(res["databases"], 10, 64)
		if perr != nil || count <= 0 {
			count = 0
		}
		b.dbCount.n.Store(count)
		b.log.Debug("redis databases", slog.Int64("databases", count))
	case errors.As(err, &rerr) && !isSetupError(err):
		// CONFIG renamed or forbidden: SELECT will tell.
		b.log.Info("CONFIG GET databases refused: a databaseIndex the server lacks is reported by Redis on SELECT",
			slog.String("reply", err.Error()))
	default:
		return redisError("CONFIG GET databases", d.n, "", err)
	}
	b.dbCount.known.Store(true)
	return nil
}
