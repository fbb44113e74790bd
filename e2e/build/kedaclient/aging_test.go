package kedaclient

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/kedacore/keda/v2/pkg/scalers"
	"github.com/kedacore/keda/v2/pkg/scalers/scalersconfig"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

const (
	// age is the scaler's MAX_CONNECTION_AGE. It is longer than KEDA's
	// fixed 2 s reopen, as the default 10 minutes is: grpc-go's client
	// opens the next connection as soon as the old one's GOAWAY comes,
	// so at an age under 2 s KEDA's next stream would land on a
	// connection itself about to age, a case production never sees.
	age = 3 * time.Second
	// grace is the shortest valid MAX_CONNECTION_AGE_GRACE at this age
	// (age/5 + 2 x StreamEndMargin = 0.6 s + 0.3 s, config.Config's
	// validation), rounded up to a second: streams end at 1.1 x age +
	// 0.15 s = 3.45 s of their connection's life, the earliest cut is at
	// 0.9 x age + grace = 3.7 s.
	grace = time.Second
	// wantCuts is how many aged stream ends the test drives.
	wantCuts = 8
	// kedaReopen is KEDA v2.21's wait before it reopens a push stream
	// that ended cleanly (runStreamIsActive in pkg/scalers/external_scaler.go).
	kedaReopen = 2 * time.Second
	// activationBound is the slowest an activation written right after
	// a cut may be: KEDA's reopen plus room for a loaded machine, short of
	// the 4 s KEDA would wait after one stream error.
	activationBound = kedaReopen + time.Second
)

// TestKEDAPushClientThroughConnectionAging runs KEDA's own push scaler
// (scalers.NewExternalPushScaler, then Run, as KEDA's operator does for
// an external-push trigger) against redis-session with MAX_CONNECTION_AGE
// of a few seconds, through at least eight aged connections. After each
// cut a session is written and KEDA's active channel must say true
// within KEDA's 2 s reopen; KEDA's log (controller-runtime's logger, as
// in the operator) must hold no stream error, and every retry wait it
// logs must be the 2 s it resets to after a stream that ended with OK:
// before the fix, each cut ended the stream Unavailable and the wait
// doubled up to a minute.
func TestKEDAPushClientThroughConnectionAging(t *testing.T) {
	kedaLog := captureKEDALog()
	rdb := startRedis(t)
	sc := startScaler(t, "REDIS_URL=redis://"+rdb.Options().Addr+"/0",
		"MAX_CONNECTION_AGE="+age.String(), "MAX_CONNECTION_AGE_GRACE="+grace.String())

	const key = "chat:sessions"
	cfg := &scalersconfig.ScalerConfig{
		ScalableObjectName:      "chat",
		ScalableObjectNamespace: "kedaclient",
		ScalableObjectType:      "ScaledObject",
		TriggerType:             "external-push",
		TriggerMetadata: map[string]string{
			"scalerAddress": sc.grpcAddr,
			"mode":          "set",
			"key":           key,
			"sessionSize":   "100",
		},
		AuthParams:        map[string]string{},
		GlobalHTTPTimeout: 3 * time.Second,
		TriggerUniqueKey:  "ScaledObject-kedaclient-chat-0",
	}
	push, err := scalers.NewExternalPushScaler(cfg)
	if err != nil {
		t.Fatalf("KEDA's NewExternalPushScaler: %v", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	active := make(chan bool)
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		push.Run(ctx, active)
	}()
	t.Cleanup(func() {
		stop()
		<-ran
		if err := push.Close(context.Background()); err != nil {
			t.Errorf("KEDA's Close: %v", err)
		}
	})
	events := watchActive(active)

	if _, err := events.await(false, 10*time.Second); err != nil {
		t.Fatalf("KEDA's first push stream: %v", err)
	}
	// A cut is an end of KEDA's stream, as KEDA sees it: a retry backoff
	// line (one after every end of runStreamIsActive's stream).
	const backoff = "StreamIsActive retry backoff"
	ends := func() int { return len(grep(kedaLog.snapshot(), backoff)) }
	var lat []time.Duration
	seen := 0
	deadline := time.Now().Add(wantCuts*(age+kedaReopen+time.Second) + 30*time.Second)
trials:
	for len(lat) < wantCuts {
		// Wait for the next cut.
		for ends() <= seen {
			if time.Now().After(deadline) {
				t.Errorf("KEDA's stream ended %d times, want %d by %v", seen, wantCuts, deadline.Format(time.TimeOnly))
				break trials
			}
			time.Sleep(20 * time.Millisecond)
		}
		seen = ends()
		// A session written in the gap: KEDA's next stream brings it.
		if err := rdb.SAdd(context.Background(), key, "s1").Err(); err != nil {
			t.Fatal(err)
		}
		d, err := events.await(true, 2*activationBound)
		if err != nil {
			t.Errorf("after cut %d: %v", seen, err)
			break
		}
		lat = append(lat, d)
		if err := rdb.Del(context.Background(), key).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := events.await(false, 2*activationBound); err != nil {
			t.Errorf("after cut %d, session deleted: %v", seen, err)
			break
		}
		t.Logf("cut %d: a session written right after it, KEDA active after %v", seen, d.Round(time.Millisecond))
	}
	// KEDA's log before its ends are counted: the server counts an aged
	// end before KEDA sees it, so aged >= KEDA's ends, by one at most.
	lines := kedaLog.snapshot()
	aged := sc.aged(t)
	stop()
	<-ran

	for i, d := range lat {
		if d > activationBound {
			t.Errorf("activation after cut %d took %v, want at most %v (KEDA's reopen after a clean end)", i+1, d, activationBound)
		}
	}
	for _, bad := range []string{"error running StreamIsActive", "StreamMetricSpec: stream error", "unable to get connection from the pool"} {
		if l := grep(lines, bad); len(l) > 0 {
			t.Errorf("KEDA logged %q %d times, first: %s", bad, len(l), l[0])
		}
	}
	backoffs := grep(lines, backoff)
	for _, l := range backoffs {
		if d := durationIn(l); d != kedaReopen {
			t.Errorf("KEDA waited %v before a reopen, want %v (its wait reset by a stream that ended OK): %s", d, kedaReopen, l)
		}
	}
	if n := float64(len(backoffs)); n < wantCuts || aged < n || aged > n+1 {
		t.Errorf("KEDA's stream ended %v times, the scaler aged %v streams: want every end aged, at least %d", n, aged, wantCuts)
	}
	if t.Failed() {
		t.Logf("KEDA's log, last lines:\n%s", strings.Join(lines[max(0, len(lines)-12):], "\n"))
	}
	t.Logf("%v StreamIsActive streams aged out, KEDA's stream ended %d times; activations written right after a cut: %v", aged, len(backoffs), lat)
}

// kedaLog holds what KEDA's code logs through controller-runtime's logger.
type kedaLog struct {
	mu    sync.Mutex
	lines []string
}

// captureKEDALog makes controller-runtime's logger, which KEDA's scalers
// log through (scalers.InitializeLogger), keep every line at V(1) and
// above: the retry backoff lines are V(1).
func captureKEDALog() *kedaLog {
	l := &kedaLog{}
	logf.SetLogger(funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, prefix+" "+args)
	}, funcr.Options{Verbosity: 1}))
	return l
}

// snapshot returns the lines logged so far.
func (l *kedaLog) snapshot() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// grep returns the lines that contain text.
func grep(lines []string, text string) []string {
	var out []string
	for _, l := range lines {
		if strings.Contains(l, text) {
			out = append(out, l)
		}
	}
	return out
}

// durationRE finds funcr's "duration"=... value.
var durationRE = regexp.MustCompile(`"duration"="?([0-9.a-zµ]+)"?`)

// durationIn returns the "duration" of a log line, or -1.
func durationIn(line string) time.Duration {
	m := durationRE.FindStringSubmatch(line)
	if m == nil {
		return -1
	}
	d, err := time.ParseDuration(m[1])
	if err != nil {
		return -1
	}
	return d
}

// activeEvents are the values KEDA's push loop sent on its active
// channel, each with when it came.
type activeEvents struct{ c chan activeEvent }

type activeEvent struct {
	active bool
	at     time.Time
}

// watchActive reads KEDA's active channel until Run closes it: KEDA
// blocks its stream until each value is taken.
func watchActive(active <-chan bool) *activeEvents {
	e := &activeEvents{c: make(chan activeEvent, 1024)}
	go func() {
		for v := range active {
			e.c <- activeEvent{v, time.Now()}
		}
		close(e.c)
	}()
	return e
}

// await waits for want on the active channel, skipping other values, and
// returns how long it took.
func (e *activeEvents) await(want bool, timeout time.Duration) (time.Duration, error) {
	t0 := time.Now()
	tm := time.NewTimer(timeout)
	defer tm.Stop()
	for {
		select {
		case ev, ok := <-e.c:
			if !ok {
				return 0, fmt.Errorf("KEDA's push loop ended, waiting for active=%v", want)
			}
			if ev.active == want {
				return ev.at.Sub(t0), nil
			}
		case <-tm.C:
			return 0, fmt.Errorf("no active=%v from KEDA's push loop within %v", want, timeout)
		}
	}
}

// binDir is where the scalers are: $KEDASCALERS_E2E_SCALERS as for make
// e2e, else where make build puts them, from this package's directory.
var binDir = cmp.Or(os.Getenv("KEDASCALERS_E2E_SCALERS"), filepath.Join("..", "..", "..", "bin"))
