package scaler_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
	"github.com/kedascalers/kedascalers/libs/scalerkit/scaler"
)

// fake is an in-memory backend. Metadata:
//
//	key         name of the value to read (required)
//	target      static target (default 10)
//	targetKey   read the target from this value instead
//	activation  activation threshold (default 0)
//	switchKey   activity follows this value: 1 on, 0 off
//	onError     error | inactive
type fake struct {
	mu      sync.Mutex
	values  map[string]float64
	fail    map[string]error
	panics  map[string]bool
	block   map[string]chan struct{} // reads wait until it is closed or their context ends
	stuck   map[string]bool          // reads of a blocked key ignore their context
	reads   map[string]*atomic.Int64
	changed map[string]map[int]func()
	nextID  int
	closes  atomic.Int64

	delay           time.Duration // every read takes this long (slow), or until its context ends
	running, maxRan atomic.Int64  // reads running now, and at most
}

func newFake() *fake {
	return &fake{values: map[string]float64{}, fail: map[string]error{}, panics: map[string]bool{},
		block: map[string]chan struct{}{}, stuck: map[string]bool{}, reads: map[string]*atomic.Int64{}, changed: map[string]map[int]func(){}}
}

// hold makes reads of key wait until release or their context ends.
func (f *fake) hold(key string) {
	f.mu.Lock()
	f.block[key] = make(chan struct{})
	f.mu.Unlock()
}

// stick makes reads of key wait until release, whatever their context:
// a backend that ignores cancellation.
func (f *fake) stick(key string) {
	f.hold(key)
	f.mu.Lock()
	f.stuck[key] = true
	f.mu.Unlock()
}

// release lets the waiting and future reads of key through.
func (f *fake) release(key string) {
	f.mu.Lock()
	if ch := f.block[key]; ch != nil {
		close(ch)
		delete(f.block, key)
		delete(f.stuck, key)
	}
	f.mu.Unlock()
}

// slow makes every read take d.
func (f *fake) slow(d time.Duration) {
	f.mu.Lock()
	f.delay = d
	f.mu.Unlock()
}

func (f *fake) set(key string, v float64) {
	f.mu.Lock()
	f.values[key] = v
	f.mu.Unlock()
}

func (f *fake) setErr(key string, err error) {
	f.mu.Lock()
	f.fail[key] = err
	f.mu.Unlock()
}

// notify signals the watchers of key, as a keyspace notification would.
func (f *fake) notify(key string) {
	f.mu.Lock()
	var fns []func()
	for _, fn := range f.changed[key] {
		fns = append(fns, fn)
	}
	f.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}

// watchers returns the Watch calls of key in progress.
func (f *fake) watchers(key string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.changed[key])
}

func (f *fake) readCount(key string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.reads[key]; c != nil {
		return c.Load()
	}
	return 0
}

var (
	_ scaler.Backend = (*fake)(nil)
	_ scaler.Probe   = (*fakeProbe)(nil)
)

// Close counts the calls.
func (f *fake) Close() error {
	f.closes.Add(1)
	return nil
}

func (f *fake) Parse(p *metadata.Parser) (*scaler.Trigger, error) {
	key := p.RequiredString("key", "the name of a value")
	t := &scaler.Trigger{
		MetricName: scaler.ParseMetricName(p, "fake_value"),
		Target:     p.Float("target", 10, metadata.Positive[float64]()),
		Activation: p.Float("activation", 0, metadata.AtLeast[float64](0)),
		OnError:    scaler.ParseOnError(p),
	}
	t.Probe = &fakeProbe{f: f, key: key, switchKey: p.String("switchKey", "")}
	if tk := p.String("targetKey", ""); tk != "" {
		t.TargetProbe = &fakeProbe{f: f, key: tk}
	}
	return t, p.Err()
}

type fakeProbe struct {
	f         *fake
	key       string
	switchKey string
}

func (p *fakeProbe) Key() string { return p.key + "|" + p.switchKey }

func (p *fakeProbe) Read(ctx context.Context) (scaler.Reading, error) {
	f := p.f
	f.mu.Lock()
	c := f.reads[p.key]
	if c == nil {
		c = new(atomic.Int64)
		f.reads[p.key] = c
	}
	v, err, panics, block, stuck := f.values[p.key], f.fail[p.key], f.panics[p.key], f.block[p.key], f.stuck[p.key]
	sw, hasSwitch := f.values[p.switchKey]
	delay := f.delay
	f.mu.Unlock()
	c.Add(1)
	n := f.running.Add(1)
	defer f.running.Add(-1)
	for m := f.maxRan.Load(); n > m && !f.maxRan.CompareAndSwap(m, n); m = f.maxRan.Load() {
	}
	if delay > 0 {
		select {
		case <-ctx.Done():
			return scaler.Reading{}, ctx.Err()
		case <-time.After(delay):
		}
	}
	switch {
	case panics:
		panic("fake backend exploded")
	case block != nil && stuck:
		<-block
		return p.Read(ctx)
	case block != nil:
		select {
		case <-ctx.Done():
			return scaler.Reading{}, ctx.Err()
		case <-block:
			return p.Read(ctx) // released: read what is there now
		}
	case err != nil:
		return scaler.Reading{}, err
	}
	r := scaler.Reading{Value: v}
	if p.switchKey != "" {
		r.Switch = scaler.SwitchOff
		if hasSwitch && sw == 1 {
			r.Switch = scaler.SwitchOn
		}
	}
	return r, nil
}

// Watch implements scaler.Probe.
func (p *fakeProbe) Watch(ctx context.Context, changed func()) error {
	f := p.f
	f.mu.Lock()
	f.nextID++
	id := f.nextID
	if f.changed[p.key] == nil {
		f.changed[p.key] = map[int]func(){}
	}
	f.changed[p.key][id] = changed
	f.mu.Unlock()
	<-ctx.Done()
	f.mu.Lock()
	delete(f.changed[p.key], id)
	f.mu.Unlock()
	return ctx.Err()
}

var errDown = errors.New("connection refused")
