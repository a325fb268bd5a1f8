// Command etcd is a thin wrapper so the etcd server builds from the Go module proxy
// (the upstream binary's main lives in a module we cannot `go install` with our pins).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
