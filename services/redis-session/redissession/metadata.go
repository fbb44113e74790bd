package redissession

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
	"github.com/kedascalers/kedascalers/libs/scalerkit/scaler"
)

// mode is what a trigger counts.
type mode string

// The modes, as spelled in the metadata key "mode".
const (
	modeDBSize  mode = "dbsize"  // DBSIZE: every key of the database
	modePattern mode = "pattern" // SCAN MATCH keyPattern: keys matching a glob
	modeSet     mode = "set"     // SCARD key
	modeZSet    mode = "zset"    // ZCARD key, or ZCOUNT key minScore +inf
	modeHash    mode = "hash"    // HLEN key
	modeList    mode = "list"    // LLEN key
	modeCounter mode = "counter" // GET key: an integer the application keeps
)

// keyModes read one key named by the metadata key "key".
var keyModes = []string{string(modeSet), string(modeZSet), string(modeHash), string(modeList), string(modeCounter)}

// Spellings of minScore that follow the clock.
const (
	minScoreNow   = "now"    // current Unix time in seconds
	minScoreNowMS = "now_ms" // current Unix time in milliseconds
)

// spec is one trigger's metadata, parsed and checked.
type spec struct {
	metricName string
	// sessionSize is the number of sessions one replica serves: the
	// target, or the fallback target when sessionSizeKey is set.
	sessionSize float64
	// activation is activationSessionSize.
	activation float64
	// sessionSizeKey, when set, holds the target in Redis.
	sessionSizeKey string
	mode           mode
	// key is the key read by the key modes.
	key string
	// keyPattern is the SCAN MATCH glob of mode=pattern.
	keyPattern string
	// minScore is empty, "now", "now_ms" or a number in canonical form.
	minScore string
	db       int
	// activeKey, when set, decides activity: "1" or "true" means active.
	activeKey string
	onError   scaler.ErrorPolicy
}

// parseSpec reads a trigger's metadata. defaultDB is the database of the
// connection configuration; cluster forbids other databases. Every error
// is a *metadata.Error naming the key at fault (InvalidArgument).
func parseSpec(p *metadata.Parser, defaultDB int, cluster bool) (*spec, error) {
	s := &spec{
		sessionSize:    p.Float("sessionSize", 100, metadata.Positive[float64]()),
		activation:     p.Float("activationSessionSize", 0, metadata.AtLeast(0.0)),
		metricName:     scaler.ParseMetricName(p, "session_size"),
		mode:           mode(p.OneOf("mode", string(modeDBSize), string(modeDBSize), string(modePattern), keyModes[0], keyModes[1], keyModes[2], keyModes[3], keyModes[4])),
		db:             int(p.Int("databaseIndex", int64(defaultDB), metadata.Between[int64](0, math.MaxInt32))),
		activeKey:      p.String("activeKey", ""),
		sessionSizeKey: p.String("sessionSizeKey", ""),
		onError:        scaler.ParseOnError(p),
	}
	if p.Err() != nil {
		return nil, p.Err()
	}
	if cluster && s.db != 0 {
		p.Fail(&metadata.Error{Key: "databaseIndex", Value: p.String("databaseIndex", ""), Want: "0: Redis Cluster has only database 0"})
	}
	switch s.mode {
	case modePattern:
		s.keyPattern = p.RequiredString("keyPattern", "a SCAN MATCH glob such as sess:* with mode=pattern")
		unused(p, "key", s.mode, "keyPattern")
	case modeDBSize:
		unused(p, "key", s.mode, "mode=set, zset, hash, list or counter")
		unused(p, "keyPattern", s.mode, "mode=pattern")
	default:
		s.key = p.RequiredString("key", fmt.Sprintf("the name of the key to read with mode=%s", s.mode))
		unused(p, "keyPattern", s.mode, "mode=pattern")
	}
	if p.Has("minScore") {
		if s.mode != modeZSet {
			p.Fail(&metadata.Error{Key: "minScore", Value: p.String("minScore", ""), Want: fmt.Sprintf("no minScore with mode=%s: it applies to mode=zset only", s.mode)})
		} else {
			s.minScore = parseMinScore(p)
		}
	}
	if s.activeKey != "" && p.Has("activationSessionSize") {
		p.Fail(&metadata.Error{Key: "activationSessionSize", Value: p.String("activationSessionSize", ""),
			Want: "no activationSessionSize together with activeKey: activeKey alone decides activity"})
	}
	if p.Err() != nil {
		return nil, p.Err()
	}
	return s, nil
}

// unused records an error when key is set although m does not read it: a
// key without the mode it needs is most often a forgotten mode, which
// would otherwise count something else silently.
func unused(p *metadata.Parser, key string, m mode, hint string) {
	if p.Has(key) {
		p.Fail(&metadata.Error{Key: key, Value: p.String(key, ""), Want: fmt.Sprintf("nothing with mode=%s (%s uses %s)", m, key, hint)})
	}
}

// parseMinScore reads minScore: a finite number, "now" or "now_ms".
func parseMinScore(p *metadata.Parser) string {
	v := p.String("minScore", "")
	switch strings.ToLower(v) {
	case minScoreNow:
		return minScoreNow
	case minScoreNowMS:
		return minScoreNowMS
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		p.Fail(&metadata.Error{Key: "minScore", Value: v, Want: "a number, now (Unix seconds) or now_ms (Unix milliseconds)"})
		return ""
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// zcountMin returns the min argument of ZCOUNT at time now.
func (s *spec) zcountMin(now time.Time) string {
	switch s.minScore {
	case minScoreNow:
		return strconv.FormatInt(now.Unix(), 10)
	case minScoreNowMS:
		return strconv.FormatInt(now.UnixMilli(), 10)
	}
	return s.minScore
}

// probeKey identifies the question the value probe asks: everything the
// reading depends on, quoted so that no two questions share a key.
func (s *spec) probeKey() string {
	return fmt.Sprintf("redis-session db=%d mode=%s key=%q keyPattern=%q minScore=%q activeKey=%q",
		s.db, s.mode, s.key, s.keyPattern, s.minScore, s.activeKey)
}

// command describes the command a probe sends, for error messages.
func (s *spec) command() string {
	switch s.mode {
	case modeDBSize:
		return "DBSIZE"
	case modePattern:
		return fmt.Sprintf("SCAN MATCH %q", s.keyPattern)
	case modeSet:
		return fmt.Sprintf("SCARD %q", s.key)
	case modeZSet:
		if s.minScore != "" {
			return fmt.Sprintf("ZCOUNT %q %s +inf", s.key, s.minScore)
		}
		return fmt.Sprintf("ZCARD %q", s.key)
	case modeHash:
		return fmt.Sprintf("HLEN %q", s.key)
	case modeList:
		return fmt.Sprintf("LLEN %q", s.key)
	case modeCounter:
		return fmt.Sprintf("GET %q", s.key)
	}
	return string(s.mode)
}
