// Package cli implements scalerctl's commands: check, which performs one
// KEDA poll against an external scaler and shows what KEDA and the HPA would
// do with it, and watch, which follows the scaler's push streams.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/kedascalers/kedascalers/proto/externalscaler"
	"github.com/kedascalers/kedascalers/tools/scalerctl/internal/dial"
	"github.com/kedascalers/kedascalers/tools/scalerctl/internal/metadata"
)

// Exit codes of scalerctl.
const (
	// ExitOK means success.
	ExitOK = 0
	// ExitFailure means an RPC or another run-time step failed.
	ExitFailure = 1
	// ExitUsage means the command line was wrong.
	ExitUsage = 2
)

// KEDA's reopen delay after a push stream ends cleanly.
const defaultReopenDelay = 2 * time.Second

// Run runs scalerctl with the command-line arguments args (without the
// program name), writing results to stdout and diagnostics to stderr, and
// returns the process exit code. Cancelling ctx (Ctrl-C) stops a watch
// cleanly and aborts a check.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr, now: time.Now, reopenDelay: defaultReopenDelay,
		lookupHost: net.DefaultResolver.LookupHost}
	return a.run(ctx, args)
}

// app holds what the commands share; tests adjust the clock and delays.
type app struct {
	stdout, stderr io.Writer
	now            func() time.Time
	reopenDelay    time.Duration
	// target is the scaler address being asked, for explaining failures.
	target string
	// lookupHost resolves a host name (net.DefaultResolver's in production).
	lookupHost func(ctx context.Context, host string) ([]string, error)
}

const mainUsage = `scalerctl plays KEDA against an external scaler (gRPC service
externalscaler.ExternalScaler), to debug a ScaledObject before deploying it.

Usage:
  scalerctl check --addr HOST:PORT [flags]
        one KEDA poll: GetMetricSpec, GetMetrics, IsActive; prints the metric
        spec, the value, the activity and the replicas KEDA and the HPA choose
  scalerctl watch --addr HOST:PORT [flags]
        follows StreamIsActive and StreamMetricSpec (external-push triggers)
  scalerctl help [check|watch]

Run 'scalerctl check --help' or 'scalerctl watch --help' for the flags.
Flags may be written -flag or --flag.

Exit status: 0 success; 1 an RPC failed (its gRPC status is printed to
stderr) or another run-time failure; 2 usage error.
`

func (a *app) run(ctx context.Context, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(a.stderr, mainUsage)
		return ExitUsage
	}
	switch args[0] {
	case "check":
		return a.check(ctx, args[1:])
	case "watch":
		return a.watch(ctx, args[1:])
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			switch args[1] {
			case "check", "watch":
				return a.run(ctx, []string{args[1], "--help"})
			}
			fmt.Fprintf(a.stderr, "scalerctl: unknown help topic %q\n", args[1])
			return ExitUsage
		}
		fmt.Fprint(a.stdout, mainUsage)
		return ExitOK
	default:
		fmt.Fprintf(a.stderr, "scalerctl: unknown command %q\n\n%s", args[0], mainUsage)
		return ExitUsage
	}
}

// commonFlags are the flags of every command: where the scaler is, how to
// dial it, and the ScaledObjectRef to send.
type commonFlags struct {
	dial      dial.Options
	meta      metadata.Flag
	metaFile  string
	name      string
	namespace string
	json      bool
}

func (c *commonFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.dial.Addr, "addr", "", "scaler address `HOST:PORT` (required), like a trigger's scalerAddress")
	fs.Var(&c.meta, "metadata", "`k=v,k2=v2` pairs of trigger metadata, sent as scalerMetadata; repeatable; values may contain '='; write a comma inside a value as \\,")
	fs.StringVar(&c.metaFile, "metadata-file", "", "read trigger metadata from `FILE`, one key=value a line ('#' comments); --metadata wins over it")
	fs.StringVar(&c.name, "name", "scalerctl", "ScaledObject `name` sent in ScaledObjectRef")
	fs.StringVar(&c.namespace, "namespace", "default", "ScaledObject `namespace` sent in ScaledObjectRef")
	fs.BoolVar(&c.json, "json", false, "print JSON for scripts")
	fs.BoolVar(&c.dial.TLS, "tls", false, "use TLS with the system roots (like enableTLS=true); implied by the other TLS flags")
	fs.StringVar(&c.dial.CAFile, "ca-file", "", "PEM CA certificates to verify the scaler with (a TriggerAuthentication's caCert)")
	fs.StringVar(&c.dial.CertFile, "cert-file", "", "PEM client certificate for mTLS (tlsClientCert); needs --key-file")
	fs.StringVar(&c.dial.KeyFile, "key-file", "", "PEM client key for mTLS (tlsClientKey); needs --cert-file")
	fs.StringVar(&c.dial.ServerName, "server-name", "", "name to verify the scaler's certificate against (default: the host of --addr)")
	fs.BoolVar(&c.dial.InsecureSkipVerify, "insecure-skip-verify", false, "do not verify the scaler's certificate (like unsafeSsl=true)")
}

// ref builds the ScaledObjectRef KEDA would send.
func (c *commonFlags) ref() (*pb.ScaledObjectRef, error) {
	m, err := c.meta.Build(c.metaFile)
	if err != nil {
		return nil, err
	}
	return &pb.ScaledObjectRef{Name: c.name, Namespace: c.namespace, ScalerMetadata: m}, nil
}

// scalerConn is a connection to the scaler that the flags name, with
// the ScaledObjectRef KEDA would send it.
type scalerConn struct {
	client pb.ExternalScalerClient
	ref    *pb.ScaledObjectRef
	conn   *grpc.ClientConn
}

// connect checks c's connection flags, builds the ScaledObjectRef and
// dials the scaler; its errors are usage errors. Close the connection
// when done.
func (a *app) connect(c *commonFlags) (*scalerConn, error) {
	if err := c.dial.Check(); err != nil {
		return nil, err
	}
	ref, err := c.ref()
	if err != nil {
		return nil, err
	}
	conn, err := dial.Dial(c.dial)
	if err != nil {
		return nil, err
	}
	a.target = c.dial.Addr
	return &scalerConn{client: pb.NewExternalScalerClient(conn), ref: ref, conn: conn}, nil
}

// parse parses a command's flags. It returns done=true with the exit code
// when the command must stop: after --help (printed to stdout, exit 0) or a
// usage error (printed to stderr, exit 2).
func (a *app) parse(fs *flag.FlagSet, args []string, synopsis string) (code int, done bool) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	printUsage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: scalerctl %s %s\n\n%s\nFlags:\n", fs.Name(), "--addr HOST:PORT [flags]", synopsis)
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	err := fs.Parse(args)
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		printUsage(a.stdout)
		return ExitOK, true
	case err != nil:
		return a.usageErr(fs.Name(), err), true
	}
	return 0, false
}

func (a *app) usageErr(cmd string, err error) int {
	fmt.Fprintf(a.stderr, "scalerctl %s: %v\nRun 'scalerctl %s --help' for usage.\n", cmd, err, cmd)
	return ExitUsage
}

// rpcFailed prints an RPC's gRPC status to stderr and returns ExitFailure.
// When the scaler could not be reached because its host name does not
// resolve, it says so first: grpc-go only says "no children to pick from".
func (a *app) rpcFailed(rpc string, err error) int {
	if status.Code(err) == codes.Unavailable {
		if why := a.unresolved(); why != "" {
			fmt.Fprintf(a.stderr, "scalerctl: %s: %s\n", rpc, why)
		}
	}
	fmt.Fprintf(a.stderr, "scalerctl: %s: %s\n", rpc, statusText(err))
	return ExitFailure
}

// unresolved returns why the host of a.target does not resolve, or "" when
// it resolves, is an IP address, or is not a host name at all (unix:...).
func (a *app) unresolved() string {
	target := a.target
	if rest, ok := strings.CutPrefix(target, "dns:"); ok {
		target = strings.TrimPrefix(rest, "//")
		if i := strings.Index(target, "/"); i >= 0 { // dns://authority/host:port
			target = target[i+1:]
		}
	} else if strings.Contains(target, ":/") || strings.HasPrefix(target, "unix:") {
		return ""
	}
	host, _, err := net.SplitHostPort(target)
	if err != nil {
		host = target
	}
	if host == "" || net.ParseIP(host) != nil || a.lookupHost == nil {
		return ""
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.lookupHost(ctx, host); err != nil {
		var dnsErr *net.DNSError
		if errors.As(err, &dnsErr) && dnsErr.IsNotFound {
			return fmt.Sprintf("the scaler's host name %q did not resolve: no such host (check --addr)", host)
		}
		return fmt.Sprintf("the scaler's host name %q did not resolve: %v (check --addr)", host, err)
	}
	return ""
}

// statusText renders err's gRPC status as "code = C desc = D".
func statusText(err error) string {
	st := status.Convert(err)
	return fmt.Sprintf("code = %s desc = %s", st.Code(), st.Message())
}

// connDesc describes the transport for the report header.
func connDesc(o dial.Options) string {
	if !o.UsesTLS() {
		return "plaintext"
	}
	var parts []string
	switch {
	case o.CAFile != "":
		parts = append(parts, "TLS, CA "+o.CAFile)
	default:
		parts = append(parts, "TLS, system roots")
	}
	if o.CertFile != "" {
		parts = append(parts, "client certificate "+o.CertFile)
	}
	if o.ServerName != "" {
		parts = append(parts, "server name "+o.ServerName)
	}
	if o.InsecureSkipVerify {
		parts = append(parts, "certificate NOT verified")
	}
	return strings.Join(parts, ", ")
}
