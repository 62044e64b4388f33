package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestDockerfile keeps the image build right without a container engine:
// the builder stage runs on the build platform and cross-compiles for the
// target one, the version stamps reach main, the attacher image's default
// user is root (as the reference's), docker-buildx builds the reference's
// platforms, and every package the two binaries are built from is in the
// build context and copied into the builder.
func TestDockerfile(t *testing.T) {
	dockerfile := readText(t, "Dockerfile")
	makefile := readText(t, "Makefile")
	ignore := readText(t, ".dockerignore")

	for _, want := range []string{
		"FROM --platform=$BUILDPLATFORM golang:",
		"ARG TARGETOS", "ARG TARGETARCH",
		"GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} go build",
		"-X main.version=${VERSION} -X main.commit=${COMMIT} -X main.buildDate=${BUILD_DATE}",
	} {
		if !strings.Contains(dockerfile, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	// stages[0] is the header comment, stages[1] the builder.
	stages := strings.Split(dockerfile, "\nFROM ")
	last := stages[len(stages)-1]
	if !strings.Contains(last, "AS csi-attacher") || !strings.Contains(last, "\nUSER 0:0\n") {
		t.Errorf("the last stage must be the attacher, running as USER 0:0 by default:\n%s", last)
	}
	for _, want := range []string{"PLATFORMS ?= linux/amd64,linux/arm64,linux/ppc64le,linux/s390x",
		"buildx build --push --platform=$(PLATFORMS)", "-X main.commit=$(COMMIT)", "-X main.buildDate=$(BUILD_DATE)"} {
		if !strings.Contains(makefile, want) {
			t.Errorf("Makefile lacks %q", want)
		}
	}

	// What the builder copies, and what .dockerignore lets into the context.
	copied := regexp.MustCompile(`(?m)^COPY (?:--from=\S+ )?(.+) \S+$`).FindAllStringSubmatch(stages[1], -1)
	var sources []string
	for _, m := range copied {
		sources = append(sources, strings.Fields(m[1])...)
	}
	var allowed []string
	for _, l := range strings.Split(ignore, "\n") {
		if p, ok := strings.CutPrefix(strings.TrimSpace(l), "!"); ok {
			allowed = append(allowed, p)
		}
	}
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.Dir}}{{end}}", ".", "./hack/fakedriver").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(root, dir)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue // a dependency from the module cache
		}
		rel = filepath.ToSlash(rel)
		covered := func(patterns []string) bool {
			return slices.ContainsFunc(patterns, func(p string) bool {
				if rel == "." {
					return p == "*.go"
				}
				return strings.HasPrefix(rel+"/", strings.TrimSuffix(p, "/")+"/")
			})
		}
		if !covered(sources) {
			t.Errorf("package %s is not copied into the builder stage (COPY sources %v)", rel, sources)
		}
		if !covered(allowed) {
			t.Errorf("package %s is left out of the build context by .dockerignore (allowed %v)", rel, allowed)
		}
	}
}

func readText(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
