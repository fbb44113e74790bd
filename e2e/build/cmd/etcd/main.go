// Command etcd is the etcd server, as the etcd repository's own main builds
// it: every flag and environment variable of etcd v3.7 applies.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
