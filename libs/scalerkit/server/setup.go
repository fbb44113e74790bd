package server

import (
	"bytes"
	"context"
	"net"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// connAddr is a tracked connection's remote address. grpc-go puts it in
// every call's peer, so a call finds its connection without a lookup.
type connAddr struct {
	net.Addr
	tc *trackedConn
}

// connOf returns the tracked connection a call runs on, or nil.
func connOf(ctx context.Context) *trackedConn {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	a, _ := p.Addr.(*connAddr)
	if a == nil {
		return nil
	}
	return a.tc
}

// http2Preface is what an HTTP/2 client sends first, before its SETTINGS.
const http2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// setupWatch follows the first bytes a client sends on a connection: the
// HTTP/2 preface, then a SETTINGS frame. grpc-go's transport exists once
// it has read both.
type setupWatch struct {
	head [len(http2Preface) + 9]byte // the preface and the frame header
	n    int                         // bytes seen
}

// seen notes b and reports whether the preface and the whole SETTINGS
// frame are in. A connection that sends anything else never is.
func (w *setupWatch) seen(b []byte) bool {
	if w.n < len(w.head) {
		copy(w.head[w.n:], b)
	}
	w.n += len(b)
	if w.n < len(w.head) {
		return false
	}
	p := len(http2Preface)
	if !bytes.Equal(w.head[:p], []byte(http2Preface)) || w.head[p+3] != 0x4 { // 0x4: SETTINGS
		return false
	}
	length := int(w.head[p])<<16 | int(w.head[p+1])<<8 | int(w.head[p+2])
	return w.n >= len(w.head)+length
}

// setupCreds are TLS credentials whose connections are watched for the
// end of their HTTP/2 setup above TLS.
type setupCreds struct {
	credentials.TransportCredentials
}

// ServerHandshake runs the TLS handshake and wraps the connection.
func (c setupCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	conn, info, err := c.TransportCredentials.ServerHandshake(raw)
	tc, ok := raw.(*trackedConn)
	if err != nil || !ok {
		return conn, info, err
	}
	return &tlsConn{Conn: conn, tc: tc}, info, nil
}

// Clone returns a copy of the credentials.
func (c setupCreds) Clone() credentials.TransportCredentials {
	return setupCreds{c.TransportCredentials.Clone()}
}

// tlsConn is a TLS connection whose plaintext is watched for its setup.
type tlsConn struct {
	net.Conn
	tc *trackedConn
}

// Read reads from the connection, watching for the end of its setup.
func (c *tlsConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.tc.noteRead(b[:n])
	return n, err
}
