// Package devtools pins the code generators and linters the Makefile runs
// (buf, protoc-gen-go, protoc-gen-go-grpc, actionlint) as Go tools. It
// holds no code: it is a module of its own so that the library modules
// never inherit the tools' dependency graphs.
package devtools
