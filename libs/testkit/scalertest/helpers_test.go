package scalertest

import (
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestUnsetenvPrefix(t *testing.T) {
	t.Setenv("SCALERTEST_A", "1")
	t.Setenv("SCALERTEST_B", "")
	t.Setenv("OTHER_SCALERTEST", "kept")
	t.Run("unset", func(t *testing.T) {
		UnsetenvPrefix(t, "SCALERTEST_")
		for _, name := range []string{"SCALERTEST_A", "SCALERTEST_B"} {
			if v, ok := os.LookupEnv(name); ok {
				t.Errorf("%s=%q still set", name, v)
			}
		}
		if os.Getenv("OTHER_SCALERTEST") != "kept" {
			t.Error("OTHER_SCALERTEST was removed")
		}
	})
	if v, ok := os.LookupEnv("SCALERTEST_A"); !ok || v != "1" {
		t.Errorf("after the subtest SCALERTEST_A = %q, %v; want restored to 1", v, ok)
	}
	if _, ok := os.LookupEnv("SCALERTEST_B"); !ok {
		t.Error("after the subtest SCALERTEST_B is not restored")
	}
}

func TestCommand(t *testing.T) {
	run := func(args []string, stdout, stderr io.Writer) int {
		fmt.Fprintln(stdout, "args", args)
		fmt.Fprint(stderr, "warned")
		return len(args)
	}
	code, out, errOut := Command(t, run, "--help", "x")
	if code != 2 || out != "args [--help x]\n" || errOut != "warned" {
		t.Errorf("Command = %d, %q, %q; want 2, the arguments, the warning", code, out, errOut)
	}
}

// closer counts its Close calls and fails them when err is set.
type closer struct {
	closed int
	err    error
}

func (c *closer) Close() error { c.closed++; return c.err }

func TestClosing(t *testing.T) {
	c := &closer{}
	t.Run("closed when the test ends", func(t *testing.T) {
		if got := Closing(t, c, nil); got != c || c.closed != 0 {
			t.Errorf("Closing returned %p (closed %d times), want %p not yet closed", got, c.closed, c)
		}
	})
	if c.closed != 1 {
		t.Errorf("closed %d times after the subtest, want 1", c.closed)
	}
}

func TestPercentile(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		var d []time.Duration
		for _, v := range n {
			d = append(d, time.Duration(v)*time.Millisecond)
		}
		return d
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = i + 1
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      int
		want   time.Duration
	}{
		{"one sample", ms(7), 99, 7 * time.Millisecond},
		{"median of four", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p99 of twenty is the largest", ms(hundred[:20]...), 99, 20 * time.Millisecond},
		{"p99 of a hundred", ms(hundred...), 99, 99 * time.Millisecond},
		{"p50 of a hundred", ms(hundred...), 50, 50 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("Percentile(%v, %d) = %v, want %v", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
}
