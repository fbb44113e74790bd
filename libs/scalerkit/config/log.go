package config

import (
	"fmt"
	"io"
	"log/slog"
)

// Level returns LOG_LEVEL as a slog.Level.
func (c *Config) Level() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return l, fmt.Errorf("LOG_LEVEL=%q: want debug, info, warn or error", c.LogLevel)
	}
	return l, nil
}

// Logger returns the logger the settings ask for, writing to w. Both
// formats print durations as Go durations ("10s"): the JSON handler would
// print nanoseconds.
func (c *Config) Logger(w io.Writer) *slog.Logger {
	level, _ := c.Level()
	opts := &slog.HandlerOptions{Level: level}
	if c.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	opts.ReplaceAttr = durationString
	return slog.New(slog.NewJSONHandler(w, opts))
}

// durationString is a slog ReplaceAttr that prints durations as strings.
func durationString(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}
