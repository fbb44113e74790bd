package scalerkit

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/credentials"

	"github.com/kedascalers/kedascalers/libs/scalerkit/config"
	"github.com/kedascalers/kedascalers/libs/scalerkit/metrics"
	"github.com/kedascalers/kedascalers/libs/scalerkit/scaler"
	"github.com/kedascalers/kedascalers/libs/scalerkit/server"
	"github.com/kedascalers/kedascalers/libs/scalerkit/tlsfiles"
)

// Version is the build's version, stamped at link time with
// -ldflags "-X github.com/kedascalers/kedascalers/libs/scalerkit.Version=v1.2.3".
var Version = "dev"

// BuildFunc builds a service's backend once the configuration is loaded.
// ctx ends when the process is asked to stop. Run closes the backend
// after the server has stopped and the backend calls still running have
// been cancelled, waiting for Close at most until SHUTDOWN_TIMEOUT + 0.5 s
// after the signal.
type BuildFunc func(ctx context.Context, env Env) (scaler.Backend, error)

// Env is what Run hands a service's BuildFunc.
type Env struct {
	// Config is the shared configuration, loaded and validated.
	Config config.Config
	// Log is the process's logger.
	Log *slog.Logger
	// Registerer registers the backend's own metrics, served on /metrics
	// next to the shared ones.
	Registerer prometheus.Registerer
}

// Spec is what a service's configuration type gives Run besides its
// envconfig tags: Validate, which config.Load calls once, with no side
// effect; and Resolve, the one step that derives what the backend runs on
// (pool sizes, parsed URLs, files read once) from the validated values
// and the shared configuration. Its error is a configuration error.
type Spec[S any] interface {
	Validate() error
	Resolve(shared config.Config) (S, error)
}

// Pinger is a backend that can check, once at start, that it reaches its
// database. Run logs a failure as a warning naming the variable: the
// scaler starts anyway and reads report the outage until it is over.
type Pinger interface {
	// Ping reaches the backend once; its error names the variable of the
	// address it tried.
	Ping(ctx context.Context) error
}

// Run runs the scaler process called name and returns its exit code: 0
// after a clean shutdown (or --help, --version), 1 when serving failed, 2
// for a configuration error. args are the command-line arguments without
// the program name; help and version go to stdout, logs and errors to
// stderr, so that a service's tests can run its main in-process. C is the
// service's configuration type: Run loads it from the environment (with
// the shared configuration), resolves it and hands the result to build,
// which must trust it. "--help" prints every variable.
func Run[C any, S any, B scaler.Backend, P interface {
	*C
	Spec[S]
}](name string, args []string, stdout, stderr io.Writer, build func(context.Context, S, Env) (B, error)) int {
	var cfg C
	var settings S
	resolve := func(shared config.Config) (err error) {
		settings, err = P(&cfg).Resolve(shared)
		return err
	}
	return run(name, args, stdout, stderr, P(&cfg), resolve, func(ctx context.Context, env Env) (scaler.Backend, error) {
		b, err := build(ctx, settings, env)
		if err != nil {
			return nil, err
		}
		return b, nil
	})
}

// run is Run over an untyped service configuration: svcConfig is loaded,
// then resolve (nil: nothing to resolve) runs, then build.
func run(name string, args []string, stdout, stderr io.Writer, svcConfig any, resolve func(config.Config) error, build BuildFunc) int {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr) // the flag package's own message for a bad flag
	fs.Usage = func() {}
	showVersion := fs.Bool("version", false, "print the version and exit")
	shortUsage := func() {
		fmt.Fprintf(stderr, "Usage: %s [--version] [--help]\nConfigured by environment variables: run '%s --help' for them.\n", name, name)
	}
	if svcConfig == nil {
		svcConfig = &struct{}{} // a service with no settings of its own
	}
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fmt.Fprintf(stdout, "%s %s: a KEDA external scaler.\n\nUsage: %s [--version] [--help]\n\nConfigured by environment variables:\n\n", name, Version, name)
		if err := config.Usage(stdout, &config.Config{}, svcConfig); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		return 0
	case err != nil:
		shortUsage()
		return 2
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "%s: unexpected argument %q: the scaler takes no arguments\n", name, fs.Arg(0))
		shortUsage()
		return 2
	}
	if *showVersion {
		fmt.Fprintf(stdout, "%s %s\n", name, Version)
		return 0
	}

	var cfg config.Config
	misses := config.NearMisses(os.Environ(), &cfg, svcConfig)
	// A near miss is often the cause of the error (REDIS_ULR for a
	// missing REDIS_URL): it is printed first, so that the reader meets
	// the cause before the effect.
	fail := func(err error) int {
		for _, m := range misses {
			fmt.Fprintf(stderr, "%s: %v\n", name, m)
		}
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 2
	}
	if err := config.Load(&cfg); err != nil {
		return fail(err)
	}
	if err := config.Load(svcConfig); err != nil {
		return fail(err)
	}
	if resolve != nil {
		if err := resolve(cfg); err != nil {
			return fail(fmt.Errorf("configuration: %w", err))
		}
	}
	log := cfg.Logger(stderr).With(slog.String("service", name))
	for _, m := range misses {
		log.Warn("unknown variable ignored", slog.String("variable", m.Set), slog.String("didYouMean", m.Want), slog.String("detail", m.String()))
	}
	for _, w := range config.Renamed(&cfg, svcConfig) {
		log.Warn(w)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := serve(ctx, name, cfg, log, build); err != nil {
		if invalid := (*config.InvalidError)(nil); errors.As(err, &invalid) {
			return fail(fmt.Errorf("configuration: %w", invalid))
		}
		log.Error("failed", slog.Any("error", err))
		return 1
	}
	return 0
}

func serve(ctx context.Context, name string, cfg config.Config, log *slog.Logger, build BuildFunc) error {
	m := metrics.New()
	m.SetBuild(name, Version)
	creds, err := serverCredentials(cfg, log, m)
	if err != nil {
		return config.Invalid(err)
	}
	// The hard stop falls SHUTDOWN_TIMEOUT after the signal; what the
	// backend still does after it gets afterStop, whatever it is doing.
	var stopAt atomic.Pointer[time.Time]
	defer context.AfterFunc(ctx, func() {
		t := time.Now().Add(cfg.ShutdownTimeout + afterStop)
		stopAt.Store(&t)
	})()
	backend, err := build(ctx, Env{Config: cfg, Log: log, Registerer: m.Registry})
	if err != nil {
		return fmt.Errorf("building the backend: %w", err)
	}
	opts := scaler.ConfigOptions(cfg)
	opts.Logger, opts.Metrics = log, m
	svc := scaler.New(backend, opts)
	defer func() {
		deadline := time.Now().Add(afterStop)
		if t := stopAt.Load(); t != nil && t.After(deadline) {
			deadline = *t // the drain ended early: the backend may use the rest
		}
		stopBackend(deadline, svc, backend, log)
	}()
	log.Info("starting", slog.String("version", Version))
	if p, ok := backend.(Pinger); ok {
		done := make(chan struct{})
		defer func() { <-done }()
		go func() {
			defer close(done)
			ping(ctx, p, cfg.BackendTimeout, log)
		}()
	}
	return server.New(cfg, svc, m, log, creds).Run(ctx)
}

// ping checks once that the backend is reachable, within timeout, and
// logs a warning when it is not: readiness does not depend on the
// backend, so this line is the one sign at start of a wrong address.
func ping(ctx context.Context, p Pinger, timeout time.Duration, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := p.Ping(ctx); err != nil && ctx.Err() != context.Canceled {
		log.Warn("the backend is not reachable at start; the scaler serves, and reads report the outage until it is over",
			slog.Any("error", err))
	}
}

// afterStop is how long the backend's calls and its Close may run after
// the server's hard stop: the process exits within SHUTDOWN_TIMEOUT plus
// one second of the signal, the rest of the second being the server's own
// stop and the exit.
const afterStop = 500 * time.Millisecond

// stopBackend cancels the backend calls still running and closes the backend,
// waiting until deadline at most: a backend that ignores cancellation is
// logged and left behind, so that the process exits on time.
func stopBackend(deadline time.Time, svc *scaler.Service, backend scaler.Backend, log *slog.Logger) {
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	if err := svc.Shutdown(ctx); err != nil {
		log.Warn("backend calls ignored their cancellation; not waiting for them", slog.Any("error", err))
	}
	closed := make(chan error, 1)
	go func() { closed <- backend.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			log.Warn("closing the backend", slog.Any("error", err))
		}
	case <-ctx.Done():
		log.Warn("closing the backend overran its time; exiting without waiting for it",
			slog.Duration("waited", time.Since(start).Round(time.Millisecond)))
	}
}

// serverCredentials returns TLS credentials when TLS_CERT_FILE is set,
// requiring client certificates when TLS_CLIENT_CA_FILE is set. The files
// are reloaded when they change (see tlsfiles); m exports the served
// certificate's expiry.
func serverCredentials(cfg config.Config, log *slog.Logger, m *metrics.Metrics) (credentials.TransportCredentials, error) {
	if cfg.TLSCertFile == "" {
		return nil, nil
	}
	r, err := tlsfiles.New(tlsfiles.Files{Cert: cfg.TLSCertFile, Key: cfg.TLSKeyFile, ClientCA: cfg.TLSClientCAFile}, log)
	if err != nil {
		return nil, err
	}
	m.WatchCertificate(r.NotAfter)
	return credentials.NewTLS(r.Config()), nil
}
