package cli

import (
	"context"
	"encoding/json"
	"math"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/testkit/wait"
	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
)

// pushScaler sends the current state on both streams and holds them open.
func pushScaler() *fakeScaler {
	return &fakeScaler{
		activeStream: &streamPlan[bool]{msgs: []bool{false, true}, hold: true},
		specStream: &streamPlan[[]*pb.MetricSpec]{
			msgs: [][]*pb.MetricSpec{{{MetricName: "queue-length", TargetSize: 5, TargetSizeFloat: 4.5}}},
			hold: true,
		},
	}
}

var lineRE = regexp.MustCompile(`^(\S+) (StreamIsActive|StreamMetricSpec) (.*)$`)

func TestWatchTextUntilDuration(t *testing.T) {
	f := pushScaler()
	addr := startFake(t, f)
	start := time.Now()
	code, out, errOut := runCLI(t, "watch", "--addr", addr, "--metadata", "a=1", "--duration", "700ms")
	if code != ExitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	if d := time.Since(start); d < 700*time.Millisecond {
		t.Errorf("watch returned after %v, before --duration", d)
	}
	f.mu.Lock()
	if f.streamWithDL {
		t.Error("a stream carried a deadline; KEDA sends none")
	}
	f.mu.Unlock()
	var bodies []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		m := lineRE.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("unexpected line %q in:\n%s", line, out)
		}
		if _, err := time.Parse(time.RFC3339Nano, m[1]); err != nil {
			t.Errorf("timestamp %q: %v", m[1], err)
		}
		bodies = append(bodies, m[2]+" "+m[3])
	}
	want := []string{
		"StreamIsActive result=false",
		"StreamIsActive result=true",
		`StreamMetricSpec metricName="queue-length" targetSize=5 targetSizeFloat=4.5 target=4.5`,
	}
	if len(bodies) != len(want) {
		t.Fatalf("got lines %q, want %q (in any interleaving)", bodies, want)
	}
	// The streams interleave freely, but each keeps its own order.
	var active []string
	for _, b := range bodies {
		if strings.HasPrefix(b, "StreamIsActive") {
			active = append(active, b)
		} else if b != want[2] {
			t.Errorf("line %q, want %q", b, want[2])
		}
	}
	if strings.Join(active, "|") != strings.Join(want[:2], "|") {
		t.Errorf("StreamIsActive lines %q, want %q", active, want[:2])
	}
}

func TestWatchJSON(t *testing.T) {
	addr := startFake(t, pushScaler())
	var out, errOut wait.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	codeCh := make(chan int, 1)
	go func() { codeCh <- Run(ctx, []string{"watch", "--addr", addr, "--json"}, &out, &errOut) }()
	out.WaitFor(t, 10*time.Second, `"result":true`, `"stream":"StreamMetricSpec"`)
	cancel() // Ctrl-C
	if code := <-codeCh; code != ExitOK {
		t.Fatalf("exit %d after Ctrl-C, stderr:\n%s", code, errOut.String())
	}
	type line struct {
		Time        string `json:"time"`
		Stream      string `json:"stream"`
		Event       string `json:"event"`
		Result      *bool  `json:"result"`
		MetricSpecs []struct {
			MetricName      string  `json:"metricName"`
			TargetSize      int64   `json:"targetSize"`
			TargetSizeFloat float64 `json:"targetSizeFloat"`
			Target          float64 `json:"target"`
		} `json:"metricSpecs"`
	}
	var results []bool
	var specs int
	for _, raw := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var l line
		if err := json.Unmarshal([]byte(raw), &l); err != nil {
			t.Fatalf("line %q is not JSON: %v", raw, err)
		}
		if _, err := time.Parse(time.RFC3339Nano, l.Time); err != nil || l.Event != "message" {
			t.Errorf("line %q: time %v, event %q", raw, err, l.Event)
		}
		switch l.Stream {
		case "StreamIsActive":
			if l.Result == nil {
				t.Fatalf("line %q lacks result", raw)
			}
			results = append(results, *l.Result)
		case "StreamMetricSpec":
			specs++
			if len(l.MetricSpecs) != 1 || l.MetricSpecs[0].MetricName != "queue-length" || l.MetricSpecs[0].TargetSizeFloat != 4.5 || l.MetricSpecs[0].Target != 4.5 {
				t.Errorf("line %q: metricSpecs %+v", raw, l.MetricSpecs)
			}
		default:
			t.Errorf("line %q: stream %q", raw, l.Stream)
		}
	}
	if len(results) != 2 || results[0] || !results[1] || specs != 1 {
		t.Errorf("results %v, %d spec lines; want [false true] and 1", results, specs)
	}
}

func TestWatchStreamErrors(t *testing.T) {
	tests := []struct {
		name    string
		fake    func(*fakeScaler)
		wantErr string
	}{
		{name: "StreamIsActive fails",
			fake: func(f *fakeScaler) {
				f.activeStream = &streamPlan[bool]{msgs: []bool{true}, end: status.Error(codes.Unavailable, "redis down")}
			},
			wantErr: "scalerctl: StreamIsActive: code = Unavailable desc = redis down\n"},
		{name: "StreamIsActive unimplemented is fatal",
			fake:    func(f *fakeScaler) { f.activeStream = nil },
			wantErr: "scalerctl: StreamIsActive: code = Unimplemented desc = "},
		{name: "StreamMetricSpec fails",
			fake: func(f *fakeScaler) {
				f.specStream = &streamPlan[[]*pb.MetricSpec]{end: status.Error(codes.PermissionDenied, "no")}
			},
			wantErr: "scalerctl: StreamMetricSpec: code = PermissionDenied desc = no\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := pushScaler()
			tt.fake(f)
			addr := startFake(t, f)
			code, _, errOut := runCLI(t, "watch", "--addr", addr, "--duration", "30s")
			if code != ExitFailure {
				t.Errorf("exit %d, want %d", code, ExitFailure)
			}
			if !strings.HasPrefix(errOut, tt.wantErr) {
				t.Errorf("stderr = %q, want prefix %q", errOut, tt.wantErr)
			}
		})
	}
}

func TestWatchUnimplementedMetricSpecAndReopen(t *testing.T) {
	f := pushScaler()
	f.specStream = nil                                     // Unimplemented: KEDA falls back to GetMetricSpec
	f.activeStream = &streamPlan[bool]{msgs: []bool{true}} // ends cleanly: KEDA reopens
	addr := startFake(t, f)
	var out, errOut wait.Buffer
	a := &app{stdout: &out, stderr: &errOut, now: time.Now, reopenDelay: 20 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	codeCh := make(chan int, 1)
	go func() { codeCh <- a.run(ctx, []string{"watch", "--addr", addr}) }()
	out.WaitFor(t, 10*time.Second, "StreamMetricSpec unimplemented: not implemented by the scaler: KEDA falls back to GetMetricSpec (code = Unimplemented desc = ",
		"StreamIsActive end: the scaler ended the stream; reopening in 20ms, as KEDA does")
	wait.For(t, 10*time.Second, "StreamIsActive reopened", func() bool { return f.count("StreamIsActive") >= 3 })
	cancel()
	if code := <-codeCh; code != ExitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut.String())
	}
	if n := f.count("StreamMetricSpec"); n != 1 {
		t.Errorf("StreamMetricSpec opened %d times, want 1 (not retried after Unimplemented)", n)
	}
	if n := strings.Count(out.String(), "StreamIsActive result=true"); n < 2 {
		t.Errorf("%d result lines, want one per opening:\n%s", n, out.String())
	}
}

// staticTargetMessage is scaler.StaticTargetMessage as a kedascalers
// scaler sends it (scaler's TestStreamMetricSpecStaticTarget holds its
// prefix); scalerctl does not import the scaler's module.
const staticTargetMessage = "static target, not streamed (the trigger reads no target from the backend); GetMetricSpec answers it"

// TestWatchStaticTarget: a kedascalers scaler sends a static target once
// and ends StreamMetricSpec Unimplemented; watch says so, not as an error,
// and does not reopen it, as KEDA does not.
func TestWatchStaticTarget(t *testing.T) {
	f := pushScaler()
	spec := f.specStream.msgs[0]
	f.specStream = &streamPlan[[]*pb.MetricSpec]{msgs: [][]*pb.MetricSpec{spec},
		end: status.Error(codes.Unimplemented, staticTargetMessage)}
	addr := startFake(t, f)
	code, out, errOut := runCLI(t, "watch", "--addr", addr, "--duration", "500ms")
	if code != ExitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	for _, want := range []string{
		`StreamMetricSpec metricName="queue-length"`,
		"StreamMetricSpec static target, not streamed: KEDA keeps this spec (GetMetricSpec answers it)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if n := f.count("StreamMetricSpec"); n != 1 {
		t.Errorf("StreamMetricSpec opened %d times, want 1", n)
	}
}

func TestWatchUnreachable(t *testing.T) {
	code, _, errOut := runCLI(t, "watch", "--addr", closedAddr(t), "--duration", "30s")
	if code != ExitFailure {
		t.Errorf("exit %d, want %d", code, ExitFailure)
	}
	if !strings.Contains(errOut, ": code = Unavailable desc = ") {
		t.Errorf("stderr = %q", errOut)
	}
}

func TestPrintEventJSONIsEncodable(t *testing.T) {
	var out, errOut wait.Buffer
	a := &app{stdout: &out, stderr: &errOut}
	specs := []specJSON{specFromProto(&pb.MetricSpec{MetricName: "m", TargetSizeFloat: math.Inf(1)}, 0)}
	a.printEvent(watchEvent{Time: "t", Stream: streamMetricSpec, Event: eventMessage, MetricSpecs: &specs}, true)
	if errOut.String() != "" || !strings.Contains(out.String(), `"targetSizeFloat":"+Inf"`) {
		t.Errorf("stdout %q stderr %q", out.String(), errOut.String())
	}
	var v map[string]any
	if err := json.Unmarshal([]byte(out.String()), &v); err != nil {
		t.Error(err)
	}
}

func TestWatchScalerWarnings(t *testing.T) {
	f := pushScaler()
	f.warnings = []string{`unknown metadata key "colour": ignored`, `unknown metadata key "size": ignored`}
	addr := startFake(t, f)

	code, out, errOut := runCLI(t, "watch", "--addr", addr, "--duration", "500ms")
	if code != ExitOK {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
	// Each warning once, though both streams sent it with every message.
	for _, w := range f.warnings {
		line := "warning: " + w + " (from the scaler, kedascalers-warning)"
		if n := strings.Count(out, line); n != 1 {
			t.Errorf("%q printed %d times, want once:\n%s", line, n, out)
		}
	}

	code, out, errOut = runCLI(t, "watch", "--addr", addr, "--duration", "500ms", "--json")
	if code != ExitOK {
		t.Fatalf("--json: exit %d, stderr:\n%s", code, errOut)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var ev watchEvent
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		if ev.Event == eventWarning {
			got = append(got, ev.Message)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, f.warnings) {
		t.Errorf("warning events %q, want %q", got, f.warnings)
	}

	// A scaler without warnings: no warning lines.
	plain := startFake(t, pushScaler())
	if _, out, _ := runCLI(t, "watch", "--addr", plain, "--duration", "300ms"); strings.Contains(out, "warning:") {
		t.Errorf("warning lines without warnings:\n%s", out)
	}
}
