package session

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
)

// The clients of the databases triggers use: one per database, created on
// first use, shared by every read of that database, closed when idle, at
// most REDIS_MAX_DATABASES.

// acquire returns the client of database n, creating it when needed, for
// one read: call release when the read is done. A databaseIndex the
// server does not have is FailedPrecondition; a database past
// REDIS_MAX_DATABASES is ResourceExhausted.
func (b *Backend) acquire(ctx context.Context, n int) (d *database, release func(), err error) {
	if !b.cluster && n != b.opts.DB {
		if err := b.checkIndex(ctx, n); err != nil {
			return nil, nil, err
		}
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil, nil, errClosed
	}
	d = b.dbs[n]
	var evicted *database
	if d == nil {
		if len(b.dbs) >= b.cfg.MaxDatabases {
			if evicted = b.idlestLocked(time.Now()); evicted == nil {
				b.mu.Unlock()
				b.limitReached(limitDatabases) // scalerkit logs the failed read
				return nil, nil, status.Errorf(codes.ResourceExhausted,
					"databaseIndex %d: too many Redis databases in use (%d, %s); a database's client is closed after %v without a read (REDIS_CLIENT_IDLE_TIMEOUT)",
					n, b.cfg.MaxDatabases, limitDatabases, b.cfg.ClientIdleTimeout)
			}
			delete(b.dbs, evicted.n)
		}
		opts := b.opts
		opts.DB = n
		d = &database{n: n, client: redis.NewUniversalClient(&opts), cluster: b.cluster}
		b.dbs[n] = d
		b.metrics.clients.Set(float64(len(b.dbs)))
		b.log.Debug("redis client created", slog.Int("db", n))
	}
	d.refs++
	b.mu.Unlock()
	b.closeClient(evicted, "idle")
	return d, func() {
		b.mu.Lock()
		d.refs--
		d.used = time.Now()
		b.mu.Unlock()
	}, nil
}

// idlestLocked returns the client unused for REDIS_CLIENT_IDLE_TIMEOUT
// the longest, or nil. b.mu must be held.
func (b *Backend) idlestLocked(now time.Time) *database {
	var idlest *database
	for _, d := range b.dbs {
		if d.refs == 0 && now.Sub(d.used) >= b.cfg.ClientIdleTimeout && (idlest == nil || d.used.Before(idlest.used)) {
			idlest = d
		}
	}
	return idlest
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
				d := b.idlestLocked(now)
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

// readDBCount reads CONFIG GET databases through a client already open,
// or the default database's.
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
	b.mu.Lock()
	var d *database
	for _, c := range b.dbs {
		d = c
		break
	}
	release := func() {}
	if d != nil {
		d.refs++
		release = func() { b.mu.Lock(); d.refs--; d.used = time.Now(); b.mu.Unlock() }
	}
	b.mu.Unlock()
	if d == nil {
		var err error
		if d, release, err = b.acquire(ctx, b.opts.DB); err != nil {
			return err
		}
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
