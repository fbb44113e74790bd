package cluster

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// component is one process of the control plane, in start order.
type component struct {
	name  string
	args  []string
	env   []string
	ready func(ctx context.Context) error
}

// run starts comp and waits until it is ready, at most timeout.
func (c *Cluster) run(ctx context.Context, comp component, timeout time.Duration) error {
	t0 := time.Now()
	p, err := StartProc(c.opts.Dir, comp.name, filepath.Join(c.opts.BinDir, comp.name), comp.args, comp.env)
	if err != nil {
		return err
	}
	c.procs = append(c.procs, p)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if done, werr := p.Exited(); done {
			return fmt.Errorf("%s exited while starting: %v", comp.name, werr)
		}
		if last = comp.ready(ctx); last == nil {
			c.opts.Logf("cluster: %s ready in %v", comp.name, time.Since(t0).Round(time.Millisecond))
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v: %w", comp.name, timeout, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// httpReady is ready when url answers 200.
func httpReady(url string, tlsConf *tls.Config) func(ctx context.Context) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConf}}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
		}
		return nil
	}
}

// logSays is ready once the named process's log holds text.
func (c *Cluster) logSays(name, text string) func(ctx context.Context) error {
	return func(context.Context) error {
		p := c.Proc(name)
		if p == nil {
			return fmt.Errorf("%s not started", name)
		}
		data, err := os.ReadFile(p.Log)
		if err != nil {
			return err
		}
		if !bytes.Contains(data, []byte(text)) {
			return fmt.Errorf("%s: no %q in its log yet", name, text)
		}
		return nil
	}
}

// freePorts returns n distinct TCP ports on 127.0.0.1 that were free a
// moment ago.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	p, err := freePorts(1)
	if err != nil {
		return 0, err
	}
	return p[0], nil
}
