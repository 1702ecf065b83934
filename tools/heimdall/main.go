// heimdall, built from its pinned Go module for the benchmark's peer row (load/, docs/benchmarks.md).
package main

import "github.com/dadrus/heimdall/cmd"

func main() {
	cmd.Execute()
}
