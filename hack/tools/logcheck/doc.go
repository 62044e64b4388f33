// Command logcheck is the vet tool `make lint` runs over the module:
//
//	go build -o logcheck ./hack/tools/logcheck
//	go vet -vettool=./logcheck ./...
//
// It runs two analyzers on every logr call:
//
//   - logcheck of sigs.k8s.io/logtools (pinned in go.mod): the key/value
//     pairs are complete and their keys are inlined string constants, no
//     format verbs in the message, no V(n).Error, no function taking both
//     a context and a logger (the logger comes from the context);
//   - logmsg (hack/tools/logcheck/logmsg): the message is a constant
//     string.
//
// Running them through go vet rather than as standalone checkers means
// go vet caches the results per package, so a second `make lint` only
// checks what changed. (The released logcheck binary, built with
// golang.org/x/tools v0.26, reports through go1.26's vet in JSON and exits
// 0 on findings; built here it uses the module's x/tools.)
//
// Exceptions per file are in logcheckConfig (main.go), in logcheck's
// configuration format.
package main
