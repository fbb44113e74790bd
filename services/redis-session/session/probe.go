package session

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/scalerkit/fault"
	"github.com/kedascalers/kedascalers/libs/scalerkit/scaler"
)

// probe reads a trigger's session count and, with activeKey, its switch.
type probe struct {
	scaler.NoChanges // on a Cluster; watchingProbe watches elsewhere
	b                *Backend
	s                *spec
	key              string
}

// Key implements scaler.Probe.
func (p *probe) Key() string { return p.key }

// Read implements scaler.Probe: one round trip, except for SCAN walks and
// DBSIZE on a Cluster, which visit every master.
func (p *probe) Read(ctx context.Context) (scaler.Reading, error) {
	c, release, err := p.b.acquire(ctx, p.s.db)
	if err != nil {
		return scaler.Reading{}, err
	}
	defer release()
	if p.s.mode == modePattern || (p.s.mode == modeDBSize && c.cluster) {
		n, err := p.countAll(ctx, c.client)
		if err != nil {
			return scaler.Reading{}, p.fail(p.s.command(), wantType(p.s.mode), err)
		}
		r := scaler.Reading{Value: float64(n)}
		if p.s.activeKey != "" {
			r.Switch, err = switchOf(c.client.Get(ctx, p.s.activeKey).Result())
			if err != nil {
				return scaler.Reading{}, p.fail(fmt.Sprintf("GET %q (activeKey)", p.s.activeKey), "a string (activeKey)", err)
			}
		}
		return r, nil
	}

	var (
		count  func() (float64, error)
		active *redis.StringCmd
		exists *redis.IntCmd
	)
	cmds, err := c.client.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		count = p.queueCount(ctx, pipe, time.Now())
		if p.s.key != "" {
			exists = pipe.Exists(ctx, p.s.key)
		}
		if p.s.activeKey != "" {
			active = pipe.Get(ctx, p.s.activeKey)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) && !anyFailed(cmds) {
		// A connection that could not be set up (AUTH, SELECT) fails the
		// pipeline but not its commands.
		return scaler.Reading{}, p.fail(p.s.command(), wantType(p.s.mode), err)
	}
	n, err := count()
	if err != nil {
		return scaler.Reading{}, p.fail(p.s.command(), wantType(p.s.mode), err)
	}
	r := scaler.Reading{Value: n}
	if exists != nil && exists.Val() == 0 && exists.Err() == nil {
		r.Note = p.missingKey()
	}
	if active != nil {
		r.Switch, err = switchOf(active.Result())
		if err != nil {
			return scaler.Reading{}, p.fail(fmt.Sprintf("GET %q (activeKey)", p.s.activeKey), "a string (activeKey)", err)
		}
	}
	return r, nil
}

// missingKey is the note on a reading of a key that does not exist: right
// (Redis deletes a set, hash or list once empty), but the usual cause of a
// trigger that scales to zero is a misspelt key.
func (p *probe) missingKey() string {
	why := "if it should, check the key's spelling"
	if p.s.mode != modeCounter {
		why = "Redis deletes " + wantType(p.s.mode) + " once empty; if it was never there, check the key's spelling"
	}
	return fmt.Sprintf("key %q does not exist on db %d: read as 0 (%s)", p.s.key, p.s.db, why)
}

// anyFailed reports whether a command of a pipeline has an error of its
// own.
func anyFailed(cmds []redis.Cmder) bool {
	for _, c := range cmds {
		if c.Err() != nil {
			return true
		}
	}
	return false
}

// queueCount adds the counting command to pipe and returns a function
// that reads its result after Exec. now resolves minScore=now.
func (p *probe) queueCount(ctx context.Context, pipe redis.Pipeliner, now time.Time) func() (float64, error) {
	intResult := func(cmd *redis.IntCmd) func() (float64, error) {
		return func() (float64, error) {
			n, err := cmd.Result()
			return float64(n), err
		}
	}
	switch p.s.mode {
	case modeSet:
		return intResult(pipe.SCard(ctx, p.s.key))
	case modeZSet:
		if p.s.minScore != "" {
			return intResult(pipe.ZCount(ctx, p.s.key, p.s.zcountMin(now), "+inf"))
		}
		return intResult(pipe.ZCard(ctx, p.s.key))
	case modeHash:
		return intResult(pipe.HLen(ctx, p.s.key))
	case modeList:
		return intResult(pipe.LLen(ctx, p.s.key))
	case modeCounter:
		cmd := pipe.Get(ctx, p.s.key)
		return func() (float64, error) { return p.counter(cmd.Result()) }
	default: // modeDBSize on one server
		return intResult(pipe.DBSize(ctx))
	}
}

// counter reads the value of mode=counter: a missing key is 0, anything
// but an integer is the application's or the trigger's mistake.
func (p *probe) counter(v string, err error) (float64, error) {
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, perr := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if perr != nil {
		return 0, fault.Tenantf(codes.FailedPrecondition,
			"GET %q on db %d: value %s is not an integer, as mode=counter needs", p.s.key, p.s.db, quoteShort(v))
	}
	return float64(n), nil
}

// countAll counts keys on every master: a SCAN walk for mode=pattern,
// DBSIZE otherwise (Cluster only: one server answers DBSIZE in a pipeline).
func (p *probe) countAll(ctx context.Context, c redis.UniversalClient) (int64, error) {
	count := func(ctx context.Context, c redis.Cmdable) (int64, error) {
		if p.s.mode == modeDBSize {
			return c.DBSize(ctx).Result()
		}
		return scanCount(ctx, c, p.s.keyPattern, p.b.cfg.ScanCount)
	}
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		return count(ctx, c)
	}
	var total atomic.Int64
	err := cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		n, err := count(ctx, node)
		if err != nil {
			return fmt.Errorf("on %s: %w", node.Options().Addr, err)
		}
		total.Add(n)
		return nil
	})
	return total.Load(), err
}

// scanCount walks the keyspace with SCAN MATCH pattern COUNT count (never
// KEYS, which blocks the server) and counts the keys returned. SCAN may
// return a key twice while the server resizes its table; the count is
// then a little high, never low.
func scanCount(ctx context.Context, c redis.Cmdable, pattern string, count int64) (int64, error) {
	var n int64
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, pattern, count).Result()
		if err != nil {
			return 0, err
		}
		n += int64(len(keys))
		if next == 0 {
			return n, nil
		}
		cursor = next
	}
}

// switchOf reads an activeKey value: "1" or "true" (any case) is on,
// anything else, or no key, is off.
func switchOf(v string, err error) (scaler.Switch, error) {
	if errors.Is(err, redis.Nil) {
		return scaler.SwitchOff, nil
	}
	if err != nil {
		return scaler.SwitchUnset, err
	}
	if v = strings.TrimSpace(v); v == "1" || strings.EqualFold(v, "true") {
		return scaler.SwitchOn, nil
	}
	return scaler.SwitchOff, nil
}

// fail wraps a Redis error of cmd, which expected a value of type want.
func (p *probe) fail(cmd, want string, err error) error {
	if st, ok := status.FromError(err); ok && st.Code() != codes.Unknown {
		return err // already a status, such as a non-integer counter
	}
	return redisError(cmd, p.s.db, want, err)
}

// Replies of Redis that refuse the scaler's own setup: its credentials or
// their rights, or the database it selects.
var setupPrefixes = []string{"NOAUTH", "WRONGPASS", "NOPERM", "ERR AUTH", "ERR invalid password", "ERR Client sent AUTH",
	"ERR DB index is out of range", "ERR invalid DB index"}

// isSetupError reports whether err is a Redis reply refusing the scaler's
// setup.
func isSetupError(err error) bool {
	for _, p := range setupPrefixes {
		if redis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return false
}

// redisError wraps err with the command and database, as the status
// shared by every scaler: a key of another type than the trigger reads
// and a database the trigger names that does not exist are
// FailedPrecondition marked as the tenant's mistake (fault.Tenant); a
// refused setup (password, ACL rights) is FailedPrecondition; a connection past REDIS_MAX_CONNECTIONS is
// ResourceExhausted; a reply that did not come in time is
// DeadlineExceeded; anything else (a server that cannot be reached, a
// connection lost) becomes Unavailable in scalerkit. The reason is given
// once.
func redisError(cmd string, db int, want string, err error) error {
	var ne net.Error
	switch {
	case redis.HasErrorPrefix(err, "WRONGTYPE"):
		return fault.Tenantf(codes.FailedPrecondition,
			"%s on db %d: the key holds another type than %s: fix the trigger's key or mode (%v)", cmd, db, want, err)
	case redis.HasErrorPrefix(err, "ERR DB index is out of range"), redis.HasErrorPrefix(err, "ERR invalid DB index"):
		return fault.Tenantf(codes.FailedPrecondition, "%s: databaseIndex %d does not exist on this Redis (%v)", cmd, db, err)
	case isSetupError(err):
		return status.Errorf(codes.FailedPrecondition,
			"%s on db %d: Redis refuses the scaler's credentials or their rights (check REDIS_USERNAME, REDIS_PASSWORD or the URL's, and the ACL): %v", cmd, db, err)
	case errors.Is(err, errConnLimit):
		return status.Errorf(codes.ResourceExhausted, "%s on db %d: %v", cmd, db, err)
	case errors.As(err, &ne) && ne.Timeout() && !isDial(err):
		return status.Errorf(codes.DeadlineExceeded, "%s on db %d: no reply in time: %v", cmd, db, err)
	}
	return fmt.Errorf("%s on db %d: %w", cmd, db, err)
}

// isDial reports whether err happened while connecting: a server that
// cannot be reached is an outage, not a slow reply.
func isDial(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "dial"
}

// wantType names the type of key a mode reads, for error messages.
func wantType(m mode) string {
	switch m {
	case modeSet:
		return "a set (mode=set)"
	case modeZSet:
		return "a sorted set (mode=zset)"
	case modeHash:
		return "a hash (mode=hash)"
	case modeList:
		return "a list (mode=list)"
	case modeCounter:
		return "a string holding an integer (mode=counter)"
	}
	return "mode=" + string(m) + " reads"
}

// targetProbe reads the target of a trigger with sessionSizeKey.
type targetProbe struct {
	scaler.NoChanges // on a Cluster; watchingTargetProbe watches elsewhere
	b                *Backend
	db               int
	key              string
	fallback         float64
}

// Key implements scaler.Probe.
func (p *targetProbe) Key() string {
	return fmt.Sprintf("redis-session db=%d sessionSizeKey=%q fallback=%s",
		p.db, p.key, strconv.FormatFloat(p.fallback, 'g', -1, 64))
}

// Read implements scaler.Probe: the key's number, or the fallback
// (sessionSize) when the key does not exist.
func (p *targetProbe) Read(ctx context.Context) (scaler.Reading, error) {
	c, release, err := p.b.acquire(ctx, p.db)
	if err != nil {
		return scaler.Reading{}, err
	}
	defer release()
	cmd := fmt.Sprintf("GET %q (sessionSizeKey)", p.key)
	v, err := c.client.Get(ctx, p.key).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return scaler.Reading{Value: p.fallback}, nil
	case err != nil:
		return scaler.Reading{}, redisError(cmd, p.db, "a string holding a number (sessionSizeKey)", err)
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f <= 0 {
		return scaler.Reading{}, fault.Tenantf(codes.FailedPrecondition,
			"%s on db %d: value %s is not a number > 0", cmd, p.db, quoteShort(v))
	}
	return scaler.Reading{Value: f}, nil
}

// quoteShort quotes v for an error message, cut to a readable length.
func quoteShort(v string) string {
	const limit = 64
	if len(v) > limit {
		return strconv.Quote(v[:limit]) + "..."
	}
	return strconv.Quote(v)
}
