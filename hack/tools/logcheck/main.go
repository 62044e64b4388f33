package main

import (
	"fmt"
	"os"

	"golang.org/x/tools/go/analysis/multichecker"
	logcheck "sigs.k8s.io/logtools/logcheck/pkg"

	"github.com/csi-attacher/csi-attacher/hack/tools/logcheck/logmsg"
)

// logcheckConfig turns checks off for single files: "<checks> <regexp of
// package path/file name>", later lines winning. It is compiled in, so go
// vet's cache, keyed on the tool's binary, sees every change to it.
const logcheckConfig = `
# The test hands zapr an odd key/value list on purpose: the production
# logger must report that misuse without panicking.
-parameters,-key github.com/csi-attacher/csi-attacher/internal/logging/logging_test\.go
`

func main() {
	analyzer, config := logcheck.Analyser()
	if err := config.ParseConfig(logcheckConfig); err != nil {
		fmt.Fprintf(os.Stderr, "logcheck: %v\n", err)
		os.Exit(2)
	}
	multichecker.Main(analyzer, logmsg.Analyzer)
}
