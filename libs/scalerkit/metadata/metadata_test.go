package metadata_test

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/kedascalers/kedascalers/libs/scalerkit/metadata"
)

// md is the metadata every table below reads from: KEDA's own keys, blank and
// whitespace values and values with surrounding space.
func md() map[string]string {
	return map[string]string{
		"scalerAddress": "scaler.keda:9090",
		"enableTLS":     "false",
		"unsafeSsl":     "true",
		"empty":         "",
		"blank":         " \t\n ",
		"padded":        "  value  ",
		"word":          "hello",
		"true":          "true",
		"one":           "1",
		"zero":          "0",
		"yes":           "yes",
		"padTrue":       " TRUE ",
		"int":           "42",
		"negInt":        "-7",
		"plusInt":       "+5",
		"float":         "2.5",
		"padFloat":      " 2.5 ",
		"negFloat":      "-0.5",
		"exp":           "1e3",
		"nan":           "NaN",
		"inf":           "Inf",
		"negInf":        "-Inf",
		"infinity":      "+infinity",
		"huge":          "1e400",
		"dur":           "1500ms",
		"padDur":        " 2s ",
		"negDur":        "-1s",
		"zeroDur":       "0s",
		"bareNum":       "5",
		"mode":          "sum",
		"upperMode":     "SUM",
	}
}

// wantErr describes the error a case expects; the zero value expects none.
type wantErr struct {
	key     string
	value   string
	missing bool
	// want is a substring of Error.Want.
	want string
}

func (w wantErr) none() bool { return w.key == "" }

func checkErr(t *testing.T, err error, w wantErr) {
	t.Helper()
	if w.none() {
		if err != nil {
			t.Fatalf("Err() = %v, want nil", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("Err() = nil, want an error for %q", w.key)
	}
	var me *metadata.Error
	if !errors.As(err, &me) {
		t.Fatalf("Err() = %T %v, want *metadata.Error", err, err)
	}
	if me.Key != w.key || me.Value != w.value || me.Missing != w.missing {
		t.Errorf("Error{Key:%q Value:%q Missing:%v}, want {Key:%q Value:%q Missing:%v}",
			me.Key, me.Value, me.Missing, w.key, w.value, w.missing)
	}
	if !strings.Contains(me.Want, w.want) {
		t.Errorf("Error.Want = %q, want it to contain %q", me.Want, w.want)
	}
	msg := err.Error()
	if !strings.Contains(msg, fmt.Sprintf("%q", w.key)) {
		t.Errorf("message %q does not name the key %q", msg, w.key)
	}
	if !w.missing && !strings.Contains(msg, fmt.Sprintf("%q", w.value)) {
		t.Errorf("message %q does not name the value %q", msg, w.value)
	}
	if !strings.Contains(msg, me.Want) {
		t.Errorf("message %q does not say what was expected (%q)", msg, me.Want)
	}
	st, ok := status.FromError(err)
	if !ok || st.Code() != codes.InvalidArgument {
		t.Errorf("status of %v = %v (ok=%v), want InvalidArgument", err, st.Code(), ok)
	}
	if st.Message() != msg {
		t.Errorf("status message = %q, want %q", st.Message(), msg)
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		name, key, def, want string
	}{
		{"present", "word", "d", "hello"},
		{"absent", "nope", "d", "d"},
		{"empty counts as absent", "empty", "d", "d"},
		{"whitespace counts as absent", "blank", "d", "d"},
		{"trimmed", "padded", "d", "value"},
		{"KEDA's own key readable", "scalerAddress", "", "scaler.keda:9090"},
		{"absent with empty default", "nope", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := metadata.NewParser(md())
			if got := p.String(tt.key, tt.def); got != tt.want {
				t.Errorf("String(%q, %q) = %q, want %q", tt.key, tt.def, got, tt.want)
			}
			checkErr(t, p.Err(), wantErr{})
		})
	}
}

func TestRequiredString(t *testing.T) {
	tests := []struct {
		name, key, want string
		err             wantErr
	}{
		{"present", "word", "hello", wantErr{}},
		{"trimmed", "padded", "value", wantErr{}},
		{"absent", "nope", "", wantErr{key: "nope", missing: true, want: "a query"}},
		{"empty", "empty", "", wantErr{key: "empty", missing: true, want: "a query"}},
		{"whitespace", "blank", "", wantErr{key: "blank", missing: true, want: "a query"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := metadata.NewParser(md())
			if got := p.RequiredString(tt.key, "a query"); got != tt.want {
				t.Errorf("RequiredString(%q) = %q, want %q", tt.key, got, tt.want)
			}
			checkErr(t, p.Err(), tt.err)
			if tt.err.missing && !strings.Contains(p.Err().Error(), "required") {
				t.Errorf("message %q does not say the key is required", p.Err())
			}
		})
	}
}

func TestOneOf(t *testing.T) {
	allowed := []string{"sum", "max", "avg"}
	tests := []struct {
		name, key, def, want string
		err                  wantErr
	}{
		{"allowed", "mode", "max", "sum", wantErr{}},
		{"absent gives default", "nope", "max", "max", wantErr{}},
		{"blank gives default", "blank", "max", "max", wantErr{}},
		{"not allowed", "word", "max", "max", wantErr{key: "word", value: "hello", want: "one of sum, max, avg"}},
		{"case matters", "upperMode", "max", "max", wantErr{key: "upperMode", value: "SUM", want: "one of sum, max, avg"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := metadata.NewParser(md())
			if got := p.OneOf(tt.key, tt.def, allowed...); got != tt.want {
				t.Errorf("OneOf(%q) = %q, want %q", tt.key, got, tt.want)
			}
			checkErr(t, p.Err(), tt.err)
		})
	}
}

func TestOneOfTrims(t *testing.T) {
	p := metadata.NewParser(map[string]string{"mode": "  avg "})
	if got := p.OneOf("mode", "sum", "sum", "avg"); got != "avg" {
		t.Errorf("OneOf = %q, want avg", got)
	}
	checkErr(t, p.Err(), wantErr{})
}

func TestBool(t *testing.T) {
	tests := []struct {
		name, key string
		def, want bool
		err       wantErr
	}{
		{"true", "true", false, true, wantErr{}},
		{"one", "one", false, true, wantErr{}},
		{"zero", "zero", true, false, wantErr{}},
		{"padded upper case", "padTrue", false, true, wantErr{}},
		{"KEDA's enableTLS", "enableTLS", true, false, wantErr{}},
		{"absent gives default true", "nope", true, true, wantErr{}},
		{"absent gives default false", "nope", false, false, wantErr{}},
		{"blank gives default", "blank", true, true, wantErr{}},
		{"yes refused", "yes", true, true, wantErr{key: "yes", value: "yes", want: "true or false"}},
		{"number refused", "int", false, false, wantErr{key: "int", value: "42", want: "true or false"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := metadata.NewParser(md())
			if got := p.Bool(tt.key, tt.def); got != tt.want {
				t.Errorf("Bool(%q, %v) = %v, want %v", tt.key, tt.def, got, tt.want)
			}
			checkErr(t, p.Err(), tt.err)
		})
	}
}

func TestFloat(t *testing.T) {
	tests := []struct {
		name, key string
		def       float64
		r         metadata.Range[float64]
		want      float64
		err       wantErr
	}{
		{"plain", "float", 9, metadata.Any[float64](), 2.5, wantErr{}},
		{"trimmed", "padFloat", 9, metadata.Any[float64](), 2.5, wantErr{}},
		{"integer", "int", 9, metadata.Any[float64](), 42, wantErr{}},
		{"exponent", "exp", 9, metadata.Any[float64](), 1000, wantErr{}},
		{"negative with Any", "negFloat", 9, metadata.Any[float64](), -0.5, wantErr{}},
		{"zero Range accepts all", "negFloat", 9, metadata.Range[float64]{}, -0.5, wantErr{}},
		{"absent", "nope", 9, metadata.Positive[float64](), 9, wantErr{}},
		{"blank", "blank", 9, metadata.Positive[float64](), 9, wantErr{}},
		{"not a number", "word", 9, metadata.Any[float64](), 9, wantErr{key: "word", value: "hello", want: "a number"}},
		{"NaN refused", "nan", 9, metadata.Any[float64](), 9, wantErr{key: "nan", value: "NaN", want: "a number"}},
		{"Inf refused", "inf", 9, metadata.Any[float64](), 9, wantErr{key: "inf", value: "Inf", want: "a number"}},
		{"-Inf refused", "negInf", 9, metadata.Any[float64](), 9, wantErr{key: "negInf", value: "-Inf", want: "a number"}},
		{"+infinity refused", "infinity", 9, metadata.Any[float64](), 9, wantErr{key: "infinity", value: "+infinity", want: "a number"}},
		{"overflow refused", "huge", 9, metadata.Any[float64](), 9, wantErr{key: "huge", value: "1e400", want: "a number"}},
		{"Positive accepts > 0", "float", 9, metadata.Positive[float64](), 2.5, wantErr{}},
		{"Positive refuses 0", "zero", 9, metadata.Positive[float64](), 9, wantErr{key: "zero", value: "0", want: "a number > 0"}},
		{"Positive refuses < 0", "negFloat", 9, metadata.Positive[float64](), 9, wantErr{key: "negFloat", value: "-0.5", want: "a number > 0"}},
		{"AtLeast accepts min", "zero", 9, metadata.AtLeast[float64](0), 0, wantErr{}},
		{"AtLeast refuses below", "negFloat", 9, metadata.AtLeast[float64](0), 9, wantErr{key: "negFloat", value: "-0.5", want: "a number >= 0"}},
		{"Between accepts min", "zero", 9, metadata.Between[float64](0, 2.5), 0, wantErr{}},
		{"Between accepts max", "float", 9, metadata.Between[float64](0, 2.5), 2.5, wantErr{}},
		{"Between refuses above", "int", 9, metadata.Between[float64](0, 2.5), 9, wantErr{key: "int", value: "42", want: "a number between 0 and 2.5"}},
		{"Between refuses below", "negFloat", 9, metadata.Between[float64](0, 2.5), 9, wantErr{key: "negFloat", value: "-0.5", want: "a number between 0 and 2.5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := metadata.NewParser(md())
			if got := p.Float(tt.key, tt.def, tt.r); got != tt.want {
				t.Errorf("Float(%q) = %v, want %v", tt.key, got, tt.want)
			}
			checkErr(t, p.Err(), tt.err)
		})
	}
}

func TestRequiredFloat(t *testing.T) {
	tests := []struct {
		name, key string
		r         metadata.Range[float64]
		want      float64
		err       wantErr
	}{
		{"present", "float", metadata.Positive[float64](), 2.5, wantErr{}},
		{"trimmed", "padFloat", metadata.Positive[float64](), 2.5, wantErr{}},
		{"absent", "nope", metadata.Positive[float64](), 0, wantErr{key: "nope", missing: true, want: "a number > 0"}},
		{"blank", "blank", metadata.AtLeast[float64](1), 0, wantErr{key: "blank", missing: true, want: "a number >= 1"}},
		{"empty", "empty", metadata.Any[float64](), 0, wantErr{key: "empty", missing: true, want: "a number"}},
		{"invalid", "word", metadata.Any[float64](), 0, wantErr{key: "word", value: "hello", want: "a number"}},
		{"NaN", "nan", metadata.Any[float64](), 0, wantErr{key: "nan", value: "NaN", want: "a number"}},
		{"out of range", "zero", metadata.Positive[float64](), 0, wantErr{key: "zero", value: "0", want: "a number > 0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := metadata.NewParser(md())
			if got := p.RequiredFloat(tt.key, tt.r); got != tt.want {
				t.Errorf("RequiredFloat(%q) = %v, want %v", tt.key, got, tt.want)
			}
			checkErr(t, p.Err(), tt.err)
		})
	}
}

func TestInt(t *testing.T) {
	tests := []struct {
		name, key string
		def       int64
		r         metadata.Range[int64]
		want      int64
		err       wantErr
	}{
		{"plain", "int", 9, metadata.Any[int64](), 42, wantErr{}},
		{"negative", "negInt", 9, metadata.Any[int64](), -7, wantErr{}},
		{"plus sign", "plusInt", 9, metadata.Any[int64](), 5, wantErr{}},
		{"trimmed", "padInt", 9, metadata.Any[int64](), 15, wantErr{}},
		{"absent", "nope", 9, metadata.Positive[int64](), 9, wantErr{}},
		{"blank", "blank", 9, metadata.Positive[int64](), 9, wantErr{}},
		{"float refused", "float", 9, metadata.Any[int64](), 9, wantErr{key: "float", value: "2.5", want: "an integer"}},
		{"exponent refused", "exp", 9, metadata.Any[int64](), 9, wantErr{key: "exp", value: "1e3", want: "an integer"}},
		{"word refused", "word", 9, metadata.Any[int64](), 9, wantErr{key: "word", value: "hello", want: "an integer"}},
		{"overflow refused", "bigInt", 9, metadata.Any[int64](), 9, wantErr{key: "bigInt", value: "9223372036854775808", want: "an integer"}},
		{"max int64", "maxInt", 9, metadata.Any[int64](), math.MaxInt64, wantErr{}},
		{"Positive refuses 0", "zero", 9, metadata.Positive[int64](), 9, wantErr{key: "zero", value: "0", want: "an integer > 0"}},
		{"Positive accepts 1", "one", 9, metadata.Positive[int64](), 1, wantErr{}},
		{"AtLeast accepts min", "zero", 9, metadata.AtLeast[int64](0), 0, wantErr{}},
		{"AtLeast refuses below", "negInt", 9, metadata.AtLeast[int64](0), 9, wantErr{key: "negInt", value: "-7", want: "an integer >= 0"}},
		{"Between accepts bounds low", "zero", 9, metadata.Between[int64](0, 15), 0, wantErr{}},
		{"Between accepts bounds high", "padInt", 9, metadata.Between[int64](0, 15), 15, wantErr{}},
		{"Between refuses above", "int", 9, metadata.Between[int64](0, 15), 9, wantErr{key: "int", value: "42", want: "an integer between 0 and 15"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := md()
			m["padInt"] = " 15\t"
			m["bigInt"] = "9223372036854775808"
			m["maxInt"] = "9223372036854775807"
			p := metadata.NewParser(m)
			if got := p.Int(tt.key, tt.def, tt.r); got != tt.want {
				t.Errorf("Int(%q) = %v, want %v", tt.key, got, tt.want)
			}
			checkErr(t, p.Err(), tt.err)
		})
	}
}

func TestDuration(t *testing.T) {
	const def = 7 * time.Second
	tests := []struct {
		name, key string
		r         metadata.Range[time.Duration]
		want      time.Duration
		err       wantErr
	}{
		{"ms", "dur", metadata.Any[time.Duration](), 1500 * time.Millisecond, wantErr{}},
		{"trimmed", "padDur", metadata.Any[time.Duration](), 2 * time.Second, wantErr{}},
		{"negative with Any", "negDur", metadata.Any[time.Duration](), -time.Second, wantErr{}},
		{"zero", "zeroDur", metadata.AtLeast[time.Duration](0), 0, wantErr{}},
		{"absent", "nope", metadata.Positive[time.Duration](), def, wantErr{}},
		{"blank", "blank", metadata.Positive[time.Duration](), def, wantErr{}},
		{"bare number refused", "bareNum", metadata.Any[time.Duration](), def, wantErr{key: "bareNum", value: "5", want: "a duration such as 500ms or 2s"}},
		{"word refused", "word", metadata.Any[time.Duration](), def, wantErr{key: "word", value: "hello", want: "a duration"}},
		{"Positive refuses 0", "zeroDur", metadata.Positive[time.Duration](), def, wantErr{key: "zeroDur", value: "0s", want: "a duration such as 500ms or 2s > 0s"}},
		{"Positive refuses negative", "negDur", metadata.Positive[time.Duration](), def, wantErr{key: "negDur", value: "-1s", want: "> 0s"}},
		{"AtLeast refuses below", "dur", metadata.AtLeast(2 * time.Second), def, wantErr{key: "dur", value: "1500ms", want: ">= 2s"}},
		{"Between accepts", "dur", metadata.Between(time.Second, 2*time.Second), 1500 * time.Millisecond, wantErr{}},
		{"Between refuses", "dur", metadata.Between(100*time.Millisecond, time.Second), def, wantErr{key: "dur", value: "1500ms", want: "between 100ms and 1s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := metadata.NewParser(md())
			if got := p.Duration(tt.key, def, tt.r); got != tt.want {
				t.Errorf("Duration(%q) = %v, want %v", tt.key, got, tt.want)
			}
			checkErr(t, p.Err(), tt.err)
		})
	}
}

func TestHas(t *testing.T) {
	tests := []struct {
		key  string
		want bool
	}{
		{"word", true},
		{"padded", true},
		{"zero", true},
		{"enableTLS", true},
		{"nope", false},
		{"empty", false},
		{"blank", false},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			p := metadata.NewParser(md())
			if got := p.Has(tt.key); got != tt.want {
				t.Errorf("Has(%q) = %v, want %v", tt.key, got, tt.want)
			}
			checkErr(t, p.Err(), wantErr{})
		})
	}
}

func TestRangeString(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"Any", metadata.Any[float64]().String(), ""},
		{"zero", metadata.Range[int64]{}.String(), ""},
		{"Positive", metadata.Positive[float64]().String(), " > 0"},
		{"AtLeast", metadata.AtLeast[int64](3).String(), " >= 3"},
		{"Between", metadata.Between[float64](0, 1.5).String(), " between 0 and 1.5"},
		{"Between durations", metadata.Between(time.Second, time.Minute).String(), " between 1s and 1m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("String() = %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestFirstErrorWins(t *testing.T) {
	p := metadata.NewParser(md())
	_ = p.String("word", "")
	if p.Err() != nil {
		t.Fatalf("Err() = %v before any error", p.Err())
	}
	_ = p.Int("word", 0, metadata.Any[int64]())                 // first error
	_ = p.RequiredString("nope", "something")                   // second
	_ = p.Float("nan", 0, metadata.Any[float64]())              // third
	_ = p.Duration("bareNum", 0, metadata.Any[time.Duration]()) // fourth
	p.Fail(errors.New("cross-key check"))                       // fifth
	checkErr(t, p.Err(), wantErr{key: "word", value: "hello", want: "an integer"})

	// Good reads after an error still return their values.
	if got := p.String("padded", ""); got != "value" {
		t.Errorf("String after an error = %q, want value", got)
	}
	if got := p.Float("float", 0, metadata.Any[float64]()); got != 2.5 {
		t.Errorf("Float after an error = %v, want 2.5", got)
	}
}

func TestFail(t *testing.T) {
	custom := errors.New("minReplicas must not exceed maxReplicas")
	tests := []struct {
		name  string
		steps func(p *metadata.Parser)
		want  error
	}{
		{"Fail alone", func(p *metadata.Parser) { p.Fail(custom) }, custom},
		{"Fail first wins over later parse errors", func(p *metadata.Parser) {
			p.Fail(custom)
			p.RequiredString("nope", "x")
		}, custom},
		{"Fail after a parse error is ignored", func(p *metadata.Parser) {
			p.RequiredString("nope", "x")
			p.Fail(custom)
		}, nil},
		{"Fail(nil) records nothing", func(p *metadata.Parser) {
			p.Fail(nil)
			p.Fail(custom)
		}, custom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := metadata.NewParser(md())
			tt.steps(p)
			if tt.want != nil {
				if p.Err() != tt.want {
					t.Fatalf("Err() = %v, want %v", p.Err(), tt.want)
				}
				return
			}
			checkErr(t, p.Err(), wantErr{key: "nope", missing: true, want: "x"})
		})
	}
}

func TestUnknownKeysIgnoredAndInputUnchanged(t *testing.T) {
	in := md()
	p := metadata.NewParser(in)
	_ = p.String("word", "")
	_ = p.Bool("nope", false)
	_ = p.Int("nope2", 1, metadata.Positive[int64]())
	if err := p.Err(); err != nil {
		t.Fatalf("Err() = %v; unread keys (scalerAddress, nan, ...) must be ignored", err)
	}
	if want := md(); fmt.Sprint(in) != fmt.Sprint(want) {
		t.Errorf("parser modified its input:\n got %v\nwant %v", in, want)
	}
}

func TestNilMap(t *testing.T) {
	p := metadata.NewParser(nil)
	if p.Has("x") || p.String("x", "d") != "d" || p.Int("x", 3, metadata.Any[int64]()) != 3 {
		t.Error("a nil map must read as all-absent")
	}
	if p.Err() != nil {
		t.Fatalf("Err() = %v", p.Err())
	}
	p.RequiredFloat("x", metadata.Any[float64]())
	checkErr(t, p.Err(), wantErr{key: "x", missing: true, want: "a number"})
}

func TestErrorMessages(t *testing.T) {
	tests := []struct {
		err  *metadata.Error
		want string
	}{
		{&metadata.Error{Key: "query", Want: "a SQL query", Missing: true}, `metadata "query" is required: want a SQL query`},
		{&metadata.Error{Key: "target", Value: "x", Want: "a number > 0"}, `metadata "target"="x" is invalid: want a number > 0`},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
		st := tt.err.GRPCStatus()
		if st.Code() != codes.InvalidArgument || st.Message() != tt.want {
			t.Errorf("GRPCStatus() = %v %q, want InvalidArgument %q", st.Code(), st.Message(), tt.want)
		}
	}
}

func TestErrorWrappedKeepsStatus(t *testing.T) {
	p := metadata.NewParser(map[string]string{"n": "x"})
	p.Int("n", 0, metadata.Any[int64]())
	wrapped := fmt.Errorf("trigger 0: %w", p.Err())
	if got := status.Code(wrapped); got != codes.InvalidArgument {
		t.Errorf("status.Code(wrapped) = %v, want InvalidArgument", got)
	}
}

// FuzzParser feeds arbitrary keys and values to every reader: none may panic,
// and any error must be a *metadata.Error naming the key asked for.
func FuzzParser(f *testing.F) {
	for _, seed := range [][2]string{
		{"k", "1"}, {"k", " 2.5 "}, {"k", "NaN"}, {"k", "-Inf"}, {"k", "1e400"},
		{"k", "true"}, {"k", "500ms"}, {"k", "-1s"}, {"", ""}, {"k", " \t"},
		{"k", "9223372036854775808"}, {"ключ", "значение"}, {"k", "\x00\xff"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, key, value string) {
		readers := []struct {
			name string
			read func(p *metadata.Parser)
		}{
			{"String", func(p *metadata.Parser) { p.String(key, "d") }},
			{"RequiredString", func(p *metadata.Parser) { p.RequiredString(key, "x") }},
			{"OneOf", func(p *metadata.Parser) { p.OneOf(key, "a", "a", "b") }},
			{"Bool", func(p *metadata.Parser) { p.Bool(key, false) }},
			{"Float", func(p *metadata.Parser) {
				if v := p.Float(key, 1, metadata.Any[float64]()); math.IsNaN(v) || math.IsInf(v, 0) {
					t.Errorf("Float(%q) = %v, want finite", value, v)
				}
			}},
			{"FloatPositive", func(p *metadata.Parser) {
				if v := p.Float(key, 1, metadata.Positive[float64]()); !(v > 0) {
					t.Errorf("Float(%q, Positive) = %v, want > 0", value, v)
				}
			}},
			{"RequiredFloat", func(p *metadata.Parser) { p.RequiredFloat(key, metadata.Between[float64](-1, 1)) }},
			{"Int", func(p *metadata.Parser) {
				if v := p.Int(key, 5, metadata.Between[int64](0, 10)); v < 0 || v > 10 {
					t.Errorf("Int(%q, Between 0 10) = %v", value, v)
				}
			}},
			{"Duration", func(p *metadata.Parser) {
				if v := p.Duration(key, time.Second, metadata.AtLeast(time.Duration(0))); v < 0 {
					t.Errorf("Duration(%q, AtLeast 0) = %v", value, v)
				}
			}},
			{"Has", func(p *metadata.Parser) {
				got := p.Has(key)
				want := p.String(key, "") != ""
				if got != want {
					t.Errorf("Has(%q) with value %q = %v, want %v", key, value, got, want)
				}
				if got && strings.TrimSpace(value) == "" {
					t.Errorf("Has(%q) = true for the blank value %q", key, value)
				}
			}},
		}
		for _, r := range readers {
			for _, m := range []map[string]string{{key: value}, {}} {
				p := metadata.NewParser(m)
				r.read(p)
				err := p.Err()
				if err == nil {
					continue
				}
				var me *metadata.Error
				if !errors.As(err, &me) {
					t.Fatalf("%s: Err() = %T %v, want *metadata.Error", r.name, err, err)
				}
				if me.Key != key {
					t.Fatalf("%s: Error.Key = %q, want %q", r.name, me.Key, key)
				}
				if status.Code(err) != codes.InvalidArgument {
					t.Fatalf("%s: status code %v, want InvalidArgument", r.name, status.Code(err))
				}
				if !me.Missing && me.Value != strings.TrimSpace(value) {
					t.Fatalf("%s: Error.Value = %q, want the trimmed value %q", r.name, me.Value, strings.TrimSpace(value))
				}
			}
		}
	})
}

func TestClip(t *testing.T) {
	long := strings.Repeat("x", metadata.ClipLen+1)
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"at the limit", strings.Repeat("x", metadata.ClipLen), strings.Repeat("x", metadata.ClipLen)},
		{"one past", long, strings.Repeat("x", metadata.ClipLen) + fmt.Sprintf("...(%d bytes)", metadata.ClipLen+1)},
		// A 3-byte rune across the cut is not split.
		{"utf-8 boundary", strings.Repeat("x", metadata.ClipLen-1) + "€", strings.Repeat("x", metadata.ClipLen-1) + fmt.Sprintf("...(%d bytes)", metadata.ClipLen+2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := metadata.Clip(tt.in); got != tt.want {
				t.Errorf("Clip = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestErrorClipsEchoedValues(t *testing.T) {
	huge := strings.Repeat("v", 1<<20)
	err := (&metadata.Error{Key: strings.Repeat("k", 1<<20), Value: huge, Want: "a number"}).Error()
	if len(err) > 3*metadata.ClipLen {
		t.Fatalf("a 1 MiB value gave a %d-byte message", len(err))
	}
	if !strings.Contains(err, "(1048576 bytes)") {
		t.Fatalf("the message does not state the full length: %s", err)
	}
}
