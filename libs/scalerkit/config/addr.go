package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// checkAddr checks that v is a listen address: [HOST]:PORT with a port in
// 0-65535 and a host that is an IP address or a DNS name.
func checkAddr(name, v, example string) error {
	bad := func(why string) error {
		return fmt.Errorf("%s %q: %s; want [HOST]:PORT such as %s", name, v, why, example)
	}
	if v == "" {
		return bad("empty")
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return bad(ae.Err)
		}
		return bad(err.Error())
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		if n, err := strconv.ParseUint(port, 10, 64); err == nil && n > 65535 {
			return bad(fmt.Sprintf("port %d is out of range 0-65535", n))
		}
		return bad(fmt.Sprintf("port %q is not a number", port))
	}
	if host != "" && net.ParseIP(host) == nil && !isDNSName(host) {
		return bad(fmt.Sprintf("host %q is neither an IP address nor a DNS name", host))
	}
	return nil
}

// isDNSName reports whether s is a syntactically valid DNS name: labels of
// 1-63 letters, digits and inner hyphens, 253 bytes at most.
func isDNSName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}
