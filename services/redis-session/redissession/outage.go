package redissession

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kedascalers/kedascalers/libs/scalerkit/subscription"
)

// After Redis restarts, or the subscription's connection breaks, every
// watch's subscription is lost at once. Were the watches to fail, each
// feed would wait a whole PUSH_INTERVAL before watching again: push would
// stop for that long after every restart. Instead the watches wait
// together for Redis to answer (one PING per notifyRetry, whatever their
// number) and subscribe again at once; their feeds poll meanwhile, and
// the first signal of the new subscription has them re-check what changed
// while nobody listened.

// notifyRetry is the pause between PINGs while watches wait for Redis to
// answer again, and each PING's timeout.
const notifyRetry = time.Second

// connLost reports whether err says that the connection to Redis broke or
// could not be made (Redis down, restarting, unreachable), as opposed to
// Redis refusing (an error reply), a limit, a place given to another
// namespace, or the backend closing.
func connLost(err error) bool {
	var rerr redis.Error
	var nerr net.Error
	switch {
	case err == nil, errors.As(err, &rerr), errors.Is(err, errConnLimit), errors.Is(err, errClosed),
		errors.Is(err, subscription.ErrPlaceLost), errors.Is(err, subscription.ErrClosed),
		errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return false
	case errors.As(err, &nerr), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return true
	}
	return false
}

// waitBack waits until Redis answers again after a watch's subscription
// broke (with cause), and returns nil then; or ctx.Err() or errClosed.
// Every watch waiting shares one PING loop, and one warning says so.
func (n *notifier) waitBack(ctx context.Context, cause error) error {
	n.mu.Lock()
	if n.back == nil {
		n.b.log.Warn("keyspace notifications lost: Redis does not answer; feeds poll every PUSH_INTERVAL until it does, then subscribe again",
			slog.Any("error", cause))
		n.back = make(chan struct{})
		n.pinging.Add(1)
		go n.pingUntilBack(n.back)
	}
	back := n.back
	n.waiting++
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		n.waiting--
		n.mu.Unlock()
	}()
	select {
	case <-back:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-n.quit:
		return errClosed
	}
}

// pingUntilBack pings Redis every notifyRetry until it answers (an error
// reply counts: Redis is there, and subscribing tells the rest), nobody
// waits any more or the backend closes; it closes back then.
func (n *notifier) pingUntilBack(back chan struct{}) {
	defer n.pinging.Done()
	opts := n.b.opts
	opts.DB, opts.PoolSize, opts.MaxActiveConns, opts.MinIdleConns = 0, 1, 1, 0
	client := redis.NewUniversalClient(&opts)
	defer func() { _ = client.Close() }()
	tick := time.NewTicker(notifyRetry)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), notifyRetry)
		err := client.Ping(ctx).Err()
		cancel()
		var rerr redis.Error
		answered := err == nil || errors.As(err, &rerr)
		n.mu.Lock()
		if answered || n.waiting == 0 {
			n.back = nil
			n.mu.Unlock()
			if answered {
				n.b.log.Info("Redis answers again: keyspace watches subscribing again")
			}
			close(back)
			return
		}
		n.mu.Unlock()
		select {
		case <-tick.C:
		case <-n.quit:
			return
		}
	}
}
